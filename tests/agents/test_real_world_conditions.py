"""Diagnosis under real-world conditions (issue #15): change storms, self-failing origins, thin telemetry."""

from agents.evidence import anchor, changes
from agents.evidence.timeutil import fmt_ts, parse_ts
from agents.evidence.topology import CallGraph, locate_origin
from tests.agents.test_evidence_anchor import END, START, _series, _world

ONSET = 100_000.0


def _score(change, *, dt_s, first_error_after_s=None, service_onset_after_s=None, origin=1.0):
    ts = ONSET - dt_s
    firsts = {change["service"]: [ts + first_error_after_s]} if first_error_after_s is not None else {}
    own = ts + service_onset_after_s if service_onset_after_s is not None else None
    return changes.score_change(change, change_ts=ts, onset=ONSET, origin_rank={change["service"]: origin},
                                neighbours=set(), new_error_after=firsts, failing_share={}, service_onset=own)


def _config(key, summary="tune it"):
    return {"id": "chg-1", "service": "pg-main", "kind": "config", "summary": summary,
            "details": {"key": key, "from": "a", "to": "b"}}


def test_observability_only_changes_are_inert_and_others_are_not():
    assert changes.inert_change(_config("logging.level")) == "logging"
    assert changes.inert_change(_config("backup.schedule")) == "backup"
    assert changes.inert_change(_config("log_min_duration_statement")) == "log"
    assert changes.inert_change({"kind": "infra", "summary": "Upgrade pg-main metrics exporter 0.21 -> 0.24",
                                 "details": {"action": "upgrade"}}) == "metrics"
    assert changes.inert_change(_config("db.pool.max_size")) is None
    assert changes.inert_change(_config("http.client.timeout_ms")) is None
    # A deploy ships code whatever its summary says.
    assert changes.inert_change({"kind": "deploy", "summary": "bump logging library", "details": {}}) is None


def test_an_exporter_upgrade_before_a_datastore_degrades_loses_to_no_change():
    # An exporter upgrade on the origin 14 min before the onset; the service's errors begin with the onset.
    exporter = {"id": "chg-9", "service": "pg-main", "kind": "infra",
                "summary": "Upgrade pg-main metrics exporter 0.21.0 -> 0.24.1", "details": {"action": "upgrade"}}
    scored = _score(exporter, dt_s=840, first_error_after_s=840, service_onset_after_s=840)
    assert scored["score"] < 0.33  # ranking.NULL_CHANGE_SCORE: "no change: the service itself" wins
    assert any("metrics" in item and "serves requests" in item for item in scored["against"])
    # The same change followed by new errors within minutes keeps its link (a log flood can fill a disk).
    fast = _score(exporter, dt_s=120, first_error_after_s=90)
    assert fast["score"] > 0.33 and not any("serves requests" in item for item in fast["against"])


def test_a_pool_change_just_before_the_onset_still_explains_it():
    pool = _config("db.pool.max_size")
    scored = _score(pool, dt_s=240, first_error_after_s=240, service_onset_after_s=240)
    assert scored["score"] > 0.6 and scored["against"] == []


def test_errors_that_begin_long_after_a_change_do_not_begin_right_after_it():
    deploy = {"id": "chg-3", "service": "pg-main", "kind": "deploy", "summary": "deploy 1.2.3", "details": {}}
    prompt = _score(deploy, dt_s=600, first_error_after_s=600, service_onset_after_s=600)
    late = _score(deploy, dt_s=1080, first_error_after_s=1080, service_onset_after_s=1080)
    assert "new error templates on its service begin right after it" in prompt["reasons"]
    assert "new error templates on its service begin right after it" not in late["reasons"]
    assert any("stayed healthy for 18 min after it" in item for item in late["against"])


def test_a_burst_over_before_the_stated_start_does_not_move_the_anchor():
    # A second, unrelated incident 30 min before the stated start ("since about 21:20 UTC"), over in 8 min;
    # the reported incident has only just begun when the report names its start.
    onset = START + 4800
    earlier = [_series("x", "error_rate", 0.01, onset - 1800, 0.3, until=onset - 1320, seed=1),
               _series("x", "latency_p95_ms", 80.0, onset - 1800, 150.0, until=onset - 1320, seed=2)]
    ctx = {"anchor": onset + 60, "anchor_from": "text", "trigger_text": "errors since about 21:21 UTC",
           "window": {"start": fmt_ts(START), "end": fmt_ts(END)}}
    assert anchor.refine_anchor(earlier, ctx) == onset + 60
    # Undated, the same finished burst is still taken (a report filed after a rollback).
    assert anchor.refine_anchor(earlier, {"anchor": END, "anchor_from": "window_end"}) == (
        onset - 1800 + anchor.REPORT_DELAY_S)
    series, burst = _world()
    # A stated start long after a burst still under way keeps moving back to the burst (a late reporter).
    late = {"anchor": burst + 3000, "anchor_from": "text", "trigger_text": "x",
            "window": {"start": fmt_ts(START), "end": fmt_ts(END)}}
    assert anchor.refine_anchor(series, late) == burst + anchor.REPORT_DELAY_S


def test_a_caller_that_ships_no_logs_is_still_the_victim_of_its_failing_store():
    # web → fraud → mysql; web's errors name fraud. fraud ships no logs, so it could not name mysql.
    graph = CallGraph([{"name": "web", "calls": ["fraud"]}, {"name": "fraud", "calls": ["mysql"]},
                       {"name": "mysql", "calls": []}])
    base = {"web": {"score": 2.0, "onset": 160.0, "has_logs": True},
            "mysql": {"score": 1.4, "onset": 100.0, "has_logs": False}}
    silent = locate_origin(graph, {**base, "fraud": {"score": 2.2, "onset": 130.0, "has_logs": False}},
                           {"web": {"fraud": 30.0}})
    assert silent[0]["service"] == "mysql"
    assert "mysql" in next(o for o in silent if o["service"] == "fraud")["victim_of"]
    # A fraud that logs and names nobody below is what its callers say it is: the origin.
    speaking = locate_origin(graph, {**base, "fraud": {"score": 2.2, "onset": 130.0, "has_logs": True}},
                             {"web": {"fraud": 30.0}})
    assert speaking[0]["service"] == "fraud"


def test_the_report_says_the_reported_entry_service_is_a_victim():
    from agents.evidence import ranking

    origins = [{"service": "contacts", "score": 3.0, "victim_of": [], "explains": ["gateway"], "named_by": [],
                "named_near": [], "onset": 100.0, "strength": 1.5, "own_fault": 0.0},
               {"service": "gateway", "score": 1.0, "victim_of": ["contacts"], "explains": [], "named_by": [],
                "named_near": [], "onset": 130.0, "strength": 1.0, "own_fault": 0.0}]
    ctx = {"alerts": [], "missing_sources": [], "trigger_service": "gateway"}
    cor = {"origins": origins, "changes": [], "neighbours": [], "capacity_services": []}
    top = ranking.rank(ctx, {"services": {}, "series": [], "templates": []}, cor, [])[0]
    assert top["service"] == "contacts"
    assert "gateway, where the report came from, is a victim: it calls contacts" in top["statement"]
    assert any(item["summary"].startswith("gateway (reported) is a victim of contacts") for item in top["evidence"])


def test_a_victim_whose_callee_failed_clearly_earlier_ranks_below_it():
    # mobile, web → api → db. api's error and latency rise is the strongest, but db went bad 5 min earlier.
    graph = CallGraph([{"name": "web", "calls": ["api"]}, {"name": "mobile", "calls": ["api"]},
                       {"name": "api", "calls": ["db"]}, {"name": "db", "calls": []}])
    callers = {"web": {"score": 2.5, "onset": 460.0}, "mobile": {"score": 2.5, "onset": 460.0}}
    earlier = locate_origin(graph, {**callers, "api": {"score": 2.0, "onset": 400.0},
                                    "db": {"score": 1.1, "onset": 100.0}}, {})
    assert earlier[0]["service"] == "db"
    api = next(o for o in earlier if o["service"] == "api")
    assert api["victim_of"] == ["db"]
    # db failing within the onset tolerance of api (simultaneous on a 60 s grid): no extra penalty.
    together = locate_origin(graph, {**callers, "api": {"score": 2.0, "onset": 400.0},
                                     "db": {"score": 1.1, "onset": 350.0}}, {})
    assert together[0]["service"] == "api"


def test_a_follow_up_change_during_a_slow_onset_yields_to_the_earlier_one_its_errors_follow():
    # The estimated onset is at ONSET; the culprit lands 4 min before it, a follow-up deploy 3 min after it.
    # The service's first new error comes 30 s after the follow-up (slow to grow): both "lead" its errors.
    first_error = ONSET + 210
    culprit = {"id": "chg-1", "service": "inventory", "kind": "deploy", "summary": "deploy 2.0.0", "details": {}}
    follow = {"id": "chg-2", "service": "inventory", "kind": "deploy", "summary": "deploy 2.0.1", "details": {}}
    scored = [_score(culprit, dt_s=240, first_error_after_s=240 + 210),
              _score(follow, dt_s=-180, first_error_after_s=30)]
    assert scored[1]["position"] == "before" and scored[1]["past_onset"]  # admitted past the estimate
    changes.earlier_lead(scored, {"chg-1": ONSET - 240, "chg-2": ONSET + 180})
    assert scored[1]["position"] == "after" and scored[1]["score"] == 0.0
    assert any("lands after chg-1" in item for item in scored[1]["against"])
    assert scored[0]["position"] == "before" and scored[0]["score"] > 0.6
    # Alone (no earlier change on its service), the change past the estimate keeps its place.
    alone = [_score(follow, dt_s=-180, first_error_after_s=30)]
    changes.earlier_lead(alone, {"chg-2": ONSET + 180})
    assert alone[0]["position"] == "before"
    assert first_error > ONSET


def _close_call(log_total):
    """The top answer of two origins whose hypotheses end 0.04 apart (a change on each), read with logs or not."""
    from agents.evidence import ranking

    def origin(service, score):
        return {"service": service, "score": score, "victim_of": [], "explains": [], "named_by": [],
                "named_near": [], "onset": 100.0, "strength": 1.2, "own_fault": 0.0}

    def change(cid, service, score):
        return {"id": cid, "service": service, "kind": "deploy", "score": score, "position": "before",
                "reasons": ["lands 6 min before the onset"], "against": []}

    ctx = {"alerts": [], "missing_sources": [] if log_total else ["logs (no lines in the window)"]}
    sig = {"services": {}, "series": [], "templates": [], "logs": {"total": log_total, "sampled": False}}
    cor = {"origins": [origin("ledger", 2.0), origin("cache", 2.0)], "neighbours": [], "capacity_services": [],
           "changes": [change("chg-1", "ledger", 0.62), change("chg-2", "cache", 0.6)]}
    return ranking.rank(ctx, sig, cor, [])[0]


def test_a_close_call_read_without_logs_is_inconclusive():
    # Without logs a narrow lead is the usual sign of a wrong answer (calibration by evidence regime):
    # such a top answer is no longer stated as LIKELY.
    from agents.evidence import calibration

    without = _close_call(0)
    assert without["features"]["no_logs"] == 1.0 and without["features"]["no_logs_close"] > 0.9
    assert without["confidence"] <= 50
    assert calibration.verdict(without["confidence"], verified=True) == "INCONCLUSIVE"
    # The same lead read with logs keeps its confidence: the regime features are 0 there.
    kept = _close_call(5000)
    assert kept["features"]["no_logs"] == 0.0 and kept["features"]["no_logs_close"] == 0.0
    assert kept["confidence"] > 50


def test_a_two_letter_service_named_in_error_text_is_recognised():
    # Round 3: an object store called "s3" (an external API with no telemetry of its own) was never read from
    # its callers' error text, so the caller took the blame at 86-99 %.
    from agents.evidence.signals import _mentions
    from agents.evidence.topology import mentioned_services
    names = ["tax-srv", "notify", "s3"]
    assert mentioned_services("request failed: 503 from s3 [upstream=s3]", names, "tax-srv") == {"s3"}
    assert mentioned_services("GET https://s3.eu-west-1.amazonaws.com/bucket timed out", names, "tax-srv") == {"s3"}
    # Still whole words only: "s3" inside another word is no mention.
    assert mentioned_services("checksum s3x mismatch in bs3", names, "tax-srv") == set()
    lines = [{"ts": fmt_ts(ONSET + 10 * i), "service": "tax-srv", "level": "ERROR",
              "message": f"call failed: s3 returned HTTP 503 (attempt {i})"} for i in range(5)]
    assert _mentions(lines, onset=ONSET, known=names, ratio=1.0) == {"tax-srv": {"s3": 5.0}}


def _origin(service, score, **extra):
    return {"service": service, "score": score, "victim_of": [], "explains": [], "named_by": [], "named_near": [],
            "onset": 100.0, "strength": 1.5, "own_fault": 0.0, **extra}


def test_a_saturated_service_is_not_the_victim_of_a_silent_callee_its_errors_name():
    # checkout-svc's CPU is at its limit (a fault of its own: locate_origin keeps it off otel-collector's
    # victims); its span-export errors name otel-collector, which has no telemetry. Round 2 put the collector
    # first at 97 %.
    from agents.evidence import ranking

    origins = [_origin("checkout-svc", 7.0, own_fault=0.9, named_by=["www"]),
               _origin("otel-collector", 2.0, onset=None, strength=0.5, named_by=["checkout-svc"])]
    cor = {"origins": origins, "changes": [], "neighbours": [], "capacity_services": []}
    ctx = {"alerts": [], "missing_sources": []}
    ranked = ranking.rank(ctx, {"services": {}, "series": [], "templates": []}, cor, [])
    assert (ranked[0]["service"], ranked[0]["change_id"]) == ("checkout-svc", None)
    # A caller that is the silent callee's victim (its failure is those calls) still yields to it.
    origins[0] = _origin("tax-srv", 7.0, victim_of=["otel-collector"])
    origins[1]["named_by"] = ["tax-srv"]
    ranked = ranking.rank(ctx, {"services": {}, "series": [], "templates": []}, cor, [])
    assert ranked[0]["service"] == "otel-collector"


def test_an_answer_with_no_metrics_of_its_own_is_not_stated_above_the_ceiling():
    # s3 has no telemetry; two services' errors name it and one of them (tax-srv) is judged its victim, so s3 is the
    # answer. Nothing of s3 is seen: its namers may have failed on their own (round 12: stated at 85 while its namer's
    # connection pool had been filling for 10 min).
    from agents.evidence import calibration, ranking

    origins = [_origin("tax-srv", 9.0, victim_of=["s3"], strength=2.5),
               _origin("s3", 2.0, onset=None, strength=0.5, named_by=["tax-srv", "billing"])]
    cor = {"origins": origins, "changes": [], "neighbours": [], "capacity_services": []}
    ctx = {"alerts": [], "missing_sources": []}
    sig = {"services": {"tax-srv": {"has_metrics": True}, "billing": {"has_metrics": True}}, "series": [],
           "templates": [], "logs": {"total": 5000, "sampled": False}}
    top = ranking.rank(ctx, sig, cor, [])[0]
    assert (top["service"], top["change_id"]) == ("s3", None)
    assert top["features"]["silent_answer"] == 1.0 and top["confidence"] <= calibration.RIVAL_CEILING
    assert any("s3 has no metrics of its own" in item["summary"] for item in top["counter_evidence"])
    # tax-srv, metered, is no silent answer.
    tax = next(h for h in ranking.rank(ctx, sig, cor, []) if h["service"] == "tax-srv")
    assert tax["features"]["silent_answer"] == 0.0


def _sms_world(log_total, unseen, lead_s=240.0, kind="config", series=(), share_fit=0.0):
    from agents.evidence import ranking

    change = {"id": "chg-6", "service": "sms-svc", "kind": kind, "score": 0.55, "position": "before",
              "dt_s": lead_s, "reasons": [f"{int(lead_s // 60)} min before the onset"], "against": [],
              "share_fit": share_fit}
    cor = {"origins": [_origin("sms-svc", 3.8, explains=["app", "pricing"]), _origin("pricing", 1.7)],
           "changes": [change], "neighbours": [], "capacity_services": [],
           "unseen_callees": {"sms-svc": ["twilio"]} if unseen else {}}
    ctx = {"alerts": [], "missing_sources": [] if log_total else ["logs (no lines in the window)"]}
    rows = [{"ref": f"metrics:sms-svc/{name}", "service": "sms-svc", "name": name, "onset": fmt_ts(ONSET),
             "recovered": None, "baseline": before, "level_after": after, "severity": 9.0, "strength": 0.5,
             "shift": after / before - 1.0} for name, before, after in series]
    sig = {"services": {}, "series": rows, "templates": [], "logs": {"total": log_total, "sampled": False}}
    return ranking.rank(ctx, sig, cor, [])[0]


def test_without_logs_a_callee_with_no_metrics_below_the_origin_is_counter_evidence():
    # Read without logs, sms-svc's failure looks the same whether its own change broke it or twilio (below it,
    # no metrics of its own) failed: nothing can rule twilio out, so the answer is less sure, and says why.
    seen = _sms_world(0, unseen=False)
    unseen = _sms_world(0, unseen=True)
    assert (unseen["service"], unseen["change_id"]) == (seen["service"], seen["change_id"]) == ("sms-svc", "chg-6")
    assert seen["features"]["callee_unruled"] == 0.0 and unseen["features"]["callee_unruled"] == 1.0
    assert unseen["confidence"] < seen["confidence"]
    assert any("twilio, which has no metrics of its own" in item["summary"] for item in unseen["counter_evidence"])
    # With logs the callers' error text would name twilio failing: its silence there rules nothing in.
    with_logs = _sms_world(5000, unseen=True)
    assert with_logs["features"]["callee_unruled"] == 0.0
    assert not any("no metrics of its own" in item["summary"] for item in with_logs["counter_evidence"])


def test_without_logs_a_change_its_service_outlived_for_minutes_is_weaker_beside_an_unruled_callee():
    # The same change 4 and 11 min before sms-svc failed, twilio below it unseen: a change its service stayed healthy
    # after for 11 min, beside a callee that may have failed on its own, is a weak cause (round 11: such answers
    # were right 10 times in 17 beyond 8 min, 168 in 171 within). Its score is held equal, so only the gap differs.
    near, far = _sms_world(0, unseen=True), _sms_world(0, unseen=True, lead_s=660.0)
    assert near["features"]["unruled_gap"] == 0.0 and far["features"]["unruled_gap"] == 1.0
    assert far["confidence"] < near["confidence"]
    assert any("stayed healthy for 11 min after chg-6" in item["summary"] for item in far["counter_evidence"])
    # With twilio metered (no rival left), or with logs, how long it stayed healthy weighs nothing more here.
    assert _sms_world(0, unseen=False, lead_s=660.0)["features"]["unruled_gap"] == 0.0
    assert _sms_world(5000, unseen=True, lead_s=660.0)["features"]["unruled_gap"] == 0.0


def test_without_logs_a_wait_on_an_unseen_callee_leaves_a_deploy_no_likelier_than_the_callee():
    # sms-svc got 5x slower (240 -> 1,200 ms) with nothing of its own busy, as a caller waiting on twilio (no metrics
    # of its own) does, and a deploy landed on it 4 min before: nothing separates the two causes, so the deploy is
    # stated at 50 at most (round 12: sendgrid / stripe-api / maps-provider outages under a harmless flag, deploy or
    # infra change on their caller were blamed at 71-80).
    slow = [("latency_p95_ms", 240.0, 1200.0), ("error_rate", 0.01, 0.2)]
    deploy = _sms_world(0, unseen=True, kind="deploy", series=slow)
    assert (deploy["service"], deploy["change_id"]) == ("sms-svc", "chg-6")
    assert deploy["features"]["callee_wait"] == 1.0 and deploy["confidence"] <= 50
    assert any("5.0x slower" in item["summary"] and "twilio" in item["summary"]
               for item in deploy["counter_evidence"])
    # The same deploy without the wait (errors only, or a mild slowdown) keeps its standing.
    mild = _sms_world(0, unseen=True, kind="deploy",
                      series=[("latency_p95_ms", 240.0, 480.0), ("error_rate", 0.01, 0.2)])
    assert mild["features"]["callee_wait"] == 0.0 and mild["confidence"] > 50
    # A setting may act on the very calls it waits on (a pool, a timeout): not a tie.
    assert _sms_world(0, unseen=True, kind="config", series=slow)["features"]["callee_wait"] == 0.0
    # Its own CPU at the limit: a fault of its own, not a wait.
    busy = _sms_world(0, unseen=True, kind="deploy", series=[*slow, ("cpu_util", 0.3, 0.95)])
    assert busy["features"]["callee_wait"] == 0.0
    # Its GC pauses tripling is its own memory's trouble, not its requests waiting.
    gc = _sms_world(0, unseen=True, kind="infra", series=[("gc_pause_ms", 11.0, 36.0), ("error_rate", 0.01, 0.2)])
    assert gc["features"]["callee_wait"] == 0.0
    # Its worker threads filling is what waiting does (each one holds a request stuck on twilio): still a tie.
    stuck = _sms_world(0, unseen=True, kind="infra", series=[*slow, ("thread_pool_active", 26.0, 131.0)])
    assert stuck["features"]["callee_wait"] == 1.0 and stuck["confidence"] <= 50
    # twilio metered, or logs that would name it: no such rival.
    assert _sms_world(0, unseen=False, kind="deploy", series=slow)["features"]["callee_wait"] == 0.0
    assert _sms_world(5000, unseen=True, kind="deploy", series=slow)["features"]["callee_wait"] == 0.0


def test_without_logs_a_flag_whose_rollout_does_not_fit_the_failing_share_is_less_sure():
    # A 100 % flag on sms-svc while 12 % of its requests fail: read without logs, the share check is the one thing
    # tying the flag to the failure beyond its timing, and it does not fit (round 12: 7 of 8 such answers wrong).
    fits = _sms_world(0, unseen=False, kind="feature_flag", share_fit=1.0)
    misfit = _sms_world(0, unseen=False, kind="feature_flag", share_fit=-0.5)
    assert (misfit["service"], misfit["change_id"]) == ("sms-svc", "chg-6")
    assert fits["features"]["flag_mismatch"] == 0.0 and misfit["features"]["flag_mismatch"] == 1.0
    assert misfit["confidence"] < fits["confidence"]
    # With logs, error text beginning after the flag can tie it to the failure: the feature stays 0.
    assert _sms_world(5000, unseen=False, kind="feature_flag", share_fit=-0.5)["features"]["flag_mismatch"] == 0.0


# --- Round 4 (helper branch `metrics`): metrics-first worlds written here, read through the sandbox tools. ---

_T0 = 1_780_000_000.0  # a minute boundary; the window is 120 one-minute steps
_ONSET_MIN = 90


def _metric_world(tmp_path, shapes, *, topology, alert_service, trigger, start_min=0, keep=None):
    """A world of metrics only (no logs, no changes): ``shapes`` is service → name → f(minute) → value;
    the window opens at minute ``start_min``; ``keep(service, minute)``, when given, says which minutes keep
    their samples (the others are missing, as scrapes that failed or minutes with no sampled span)."""
    import json
    import random

    import yaml

    world = tmp_path / "world"
    world.mkdir(parents=True)
    rng = random.Random(7)
    rows = []
    for minute in range(start_min, 120):
        ts = fmt_ts(_T0 + 60 * minute)
        for service, names in shapes.items():
            for name, shape in names.items():
                shape, noise = shape if isinstance(shape, tuple) else (shape, 0.03)
                if keep is not None and not keep(service, minute):
                    continue
                rows.append({"ts": ts, "service": service, "name": name,
                             "value": round(max(0.0, shape(minute) * (1 + rng.gauss(0, noise))), 4)})
    (world / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for empty in ("logs.jsonl", "changes.jsonl", "chat.jsonl", "tickets.jsonl"):
        (world / empty).write_text("")
    alert = {"id": "al-1", "ts": fmt_ts(_T0 + 60 * (_ONSET_MIN + 3)), "source": "alertmanager",
             "service": alert_service, "severity": "P2", "title": f"Error budget burn on {alert_service}",
             "labels": {"service": alert_service}}
    (world / "alerts.jsonl").write_text(json.dumps(alert) + "\n")
    if topology is not None:  # None: no topology file (a team with no service map)
        (world / "topology.yaml").write_text(yaml.safe_dump({"services": topology}))
    (world / "world.yaml").write_text(yaml.safe_dump({
        "name": "metrics-first", "window": {"start": fmt_ts(_T0 + 60 * start_min), "end": fmt_ts(_T0 + 7200)},
        "trigger": {"text": trigger}}))
    return world


def _step(before, after, at=_ONSET_MIN, until=None):
    return lambda m: after if m >= at and (until is None or m < until) else before


_SHOP = [{"name": "web", "calls": ["orders", "search"], "tier": "frontend"},
         {"name": "orders", "calls": ["pg"], "tier": "backend"},
         {"name": "search", "calls": [], "tier": "backend"},
         {"name": "pg", "calls": [], "tier": "datastore"}]


def _healthy(rps, err, lat, wait=None):
    shape = {"requests_per_s": _step(rps, rps), "error_rate": _step(err, err), "latency_p95_ms": _step(lat, lat)}
    if wait is not None:
        shape["caller_latency_p95_ms"] = _step(wait, wait)
    return shape


def _run(world):
    from agents import engine
    from sandbox.tools import WorldTools

    return engine.run_all(WorldTools(world), None, None)


def test_a_callee_whose_requests_collapse_is_the_origin_and_the_entry_service_its_victim(tmp_path):
    # web's error rate climbs 0 → 0.4; orders, which web calls, completes 47 → 9 req/s while web keeps sending,
    # web waits 45 → 103 ms for it (orders' own work slows as much: no wait gap) and its failed share grows
    # 0.02 → 0.05.
    # orders' error share and latencies are noisy when healthy (few, varied requests); web's are not.
    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.4),
                                                       "latency_p95_ms": _step(150.0, 260.0)},
              "orders": _healthy(47.0, 0.02, 40.0, 45.0) | {"requests_per_s": _step(47.0, 9.0),
                                                             "error_rate": (_step(0.02, 0.05), 0.6),
                                                             "latency_p95_ms": (_step(40.0, 95.0), 0.4),
                                                             "caller_latency_p95_ms": (_step(45.0, 103.0), 0.4)},
              "search": _healthy(80.0, 0.002, 30.0, 35.0),
              "pg": _healthy(300.0, 0.001, 5.0, 7.0)}
    world = _metric_world(tmp_path, shapes, topology=_SHOP, alert_service="web", trigger="checkout errors on web")
    report = _run(world)
    top = report["hypotheses"][0]
    assert top["service"] == "orders"
    assert any(item["summary"].startswith("the request rate of orders fell") for item in top["evidence"])
    web = next(h for h in report["hypotheses"] if h["service"] == "web")
    assert any(item["summary"].startswith("web's errors are explained by orders") for item in web["counter_evidence"])
    # The same drop with no sign of trouble at orders (neither failing more nor making web wait): web fails
    # before it calls, and it is the origin.
    quiet = _healthy(47.0, 0.02, 40.0, 45.0) | {"requests_per_s": _step(47.0, 9.0)}
    other = _metric_world(tmp_path / "quiet", {**shapes, "orders": quiet}, topology=_SHOP, alert_service="web",
                          trigger="checkout errors on web")
    assert _run(other)["hypotheses"][0]["service"] == "web"


def test_a_small_latency_rise_below_an_origin_that_only_fails_is_downstream_noise(tmp_path):
    # orders fails (errors 0.02 → 0.3, its own latency flat); pg, which it calls, gets a little slower
    # (102 → 181 ms) at the same time. A caller that did not get slower was not held up by a slow callee.
    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.2)},
              "orders": _healthy(47.0, 0.02, 40.0, 45.0) | {"error_rate": _step(0.02, 0.3)},
              "search": _healthy(80.0, 0.002, 30.0, 35.0),
              "pg": _healthy(300.0, 0.001, 102.0, 110.0) | {"latency_p95_ms": _step(102.0, 181.0)}}
    world = _metric_world(tmp_path, shapes, topology=_SHOP, alert_service="web", trigger="checkout errors on web")
    report = _run(world)
    assert report["hypotheses"][0]["service"] == "orders"


def test_a_wobble_over_before_the_onset_is_not_named_the_origin(tmp_path):
    # search's latency triples for three minutes, 4 min before orders starts failing, then settles. A regression
    # guard: the engine already passed this without a rule of its own (round 4 tried dropping such early
    # excursions from scoring; it moved no suite and cost alt12-029, a datastore that flapped before it failed).
    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.15)},
              "orders": _healthy(47.0, 0.02, 40.0, 45.0) | {"error_rate": _step(0.02, 0.12)},
              "search": _healthy(80.0, 0.002, 30.0, 35.0) | {
                  "latency_p95_ms": _step(30.0, 95.0, at=_ONSET_MIN - 4, until=_ONSET_MIN - 1)},
              "pg": _healthy(300.0, 0.001, 5.0, 7.0)}
    world = _metric_world(tmp_path, shapes, topology=_SHOP, alert_service="web", trigger="checkout errors on web")
    report = _run(world)
    assert report["hypotheses"][0]["service"] == "orders"


def test_one_slow_request_of_a_low_traffic_service_is_no_latency_rise_but_a_lasting_one_is():
    from agents.evidence import contrast

    anchor = _T0 + 60 * _ONSET_MIN

    def series(service, name, values):
        return {"service": service, "name": name,
                "points": [[fmt_ts(anchor - 60 * (len(values) - 2 - i)), v] for i, v in enumerate(values)]}

    # Ten healthy minutes, then the stretch around the anchor: one minute at 608 ms, the others healthy.
    spike = [25.0, 21.0, 27.0, 23.0, 26.0, 22.0, 24.0, 25.0, 23.0, 26.0, 24.0, 608.0, 25.0]
    lasting = [25.0, 21.0, 27.0, 23.0, 26.0, 22.0, 24.0, 25.0, 23.0, 26.0, 24.0, 608.0, 590.0]
    few, busy = [0.07] * 13, [40.0] * 13  # req/s: ~4 requests a minute against ~2,400
    found = contrast.service_contrasts([series("food", "latency_p95_ms", spike), series("food", "requests_per_s", few),
                                        series("api", "latency_p95_ms", spike), series("api", "requests_per_s", busy),
                                        series("menu", "latency_p95_ms", lasting),
                                        series("menu", "requests_per_s", few)], anchor=anchor, parse_ts=parse_ts)
    assert found["food"]["score"] == 0.0  # a p95 of four requests is its slowest request
    assert found["api"]["score"] > 0.3  # thousands of requests: the same minute is a real rise
    assert found["menu"]["score"] > 0.3  # two samples above every earlier one: a rise, whatever the traffic


def test_an_alert_trigger_is_not_moved_to_an_incident_that_ended_before_it():
    # A second, unrelated incident 30 min before the alert, over in 8 min; the alerted incident began 3 min before
    # the alert and its metrics have barely moved (no burst yet). An alert fires while its condition holds.
    onset = START + 4800
    earlier = [_series("x", "error_rate", 0.01, onset - 1800, 0.3, until=onset - 1320, seed=1),
               _series("x", "latency_p95_ms", 80.0, onset - 1800, 150.0, until=onset - 1320, seed=2)]
    window = {"start": fmt_ts(START), "end": fmt_ts(END)}
    alerted = {"anchor": onset + 180, "anchor_from": "trigger", "trigger_text": "[kyc] HTTP error rate critical",
               "alert": {"id": "a-1", "service": "kyc"}, "window": window}
    assert anchor.refine_anchor(earlier, alerted) == onset + 180
    # A ticket at the same time may be filed after a rollback: the finished burst still dates it.
    ticket = {**alerted, "alert": None, "ticket": {"key": "OPS-1"}}
    assert anchor.refine_anchor(earlier, ticket) == onset - 1800 + anchor.REPORT_DELAY_S


def test_a_failure_first_seen_after_a_gap_in_the_metrics_is_kept_with_its_onset_unknown():
    # mongo's metrics are missing from 18 min before the onset to 7 min after the alert; when they return its
    # error rate is 100x what it was. Its failure may have begun anywhere in the gap: a candidate, undated.
    from agents.evidence import signals

    alert = START + 5040
    gap = (START + 3900, alert + 420)

    def series(name, level, bad):
        points = [[fmt_ts(START + 60 * m), level * (1 + 0.02 * (m % 3)) * (bad if START + 60 * m >= gap[1] else 1)]
                  for m in range(120) if not gap[0] < START + 60 * m < gap[1]]
        return {"service": "mongo", "name": name, "points": points}

    ctx = {"anchor": alert, "window": {"start": fmt_ts(START), "end": fmt_ts(END)}}
    found = signals.analyse_metrics(None, ctx, [], series_list=[series("error_rate", 0.005, 100.0),
                                                                series("latency_p95_ms", 140.0, 5.0)])
    mongo = found["services"]["mongo"]
    assert mongo["score"] > 1.0 and mongo["onset"] is None and mongo["onset_unseen"]
    assert signals.incident_onset(found["services"], alert) is None  # an unknown onset dates nothing
    # Without the gap, the same failure first seen 7 min after the alert is a later event.
    late = [[t, v] for t, v in series("error_rate", 0.005, 100.0)["points"] if parse_ts(t) >= gap[1]]
    before = [[fmt_ts(START + 60 * m), 0.005] for m in range(120) if START + 60 * m < gap[1]]
    dense = signals.analyse_metrics(None, ctx, [], series_list=[{"service": "mongo", "name": "error_rate",
                                                                 "points": before + late}])
    assert dense["services"]["mongo"]["score"] == 0.0


def test_a_change_past_the_onset_estimate_is_judged_by_its_own_services_failure():
    infra = {"id": "chg-7", "service": "favorites", "kind": "infra", "summary": "resize favorites nodes",
             "details": {"action": "resize"}}
    # The incident onset estimate sits 17 min early (another service's memory drifting); the change's own service
    # went bad 4 min after it and its new errors follow it: it counts.
    drifted = _score(infra, dt_s=-1040, first_error_after_s=200, service_onset_after_s=220)
    assert drifted["position"] == "before" and drifted["score"] > 0.6
    # A scale-down 7 min after its own service began to fail (a saturation under way) cannot have caused it,
    # even though its new error lines only come later.
    late = _score(infra, dt_s=-402, first_error_after_s=520, service_onset_after_s=-402)
    assert late["position"] == "after" and late["score"] == 0.0
    assert any("was already failing 6 min before it" in item for item in late["against"])
    # Its own onset 2 min before the change is the estimate's noise (a ramp's first samples): it still counts.
    ramp = _score(infra, dt_s=-125, first_error_after_s=250, service_onset_after_s=-125)
    assert ramp["position"] == "before"


def test_without_logs_a_callee_anomalous_as_early_however_faint_is_counter_evidence():
    from agents.evidence import ranking

    def top(log_total, early):
        change = {"id": "chg-4", "service": "ledger", "kind": "deploy", "score": 0.66, "position": "before",
                  "reasons": ["4 min before the onset"], "against": []}
        cor = {"origins": [_origin("ledger", 3.9, explains=["tenant"]), _origin("memcached", 2.5, strength=0.85)],
               "changes": [change], "neighbours": [], "capacity_services": [],
               "early_callees": {"ledger": ["memcached"]} if early else {}}
        ctx = {"alerts": [], "missing_sources": []}
        sig = {"services": {}, "series": [], "templates": [], "logs": {"total": log_total, "sampled": False}}
        return ranking.rank(ctx, sig, cor, [])[0]

    plain, faint = top(0, early=False), top(0, early=True)
    assert (faint["service"], faint["change_id"]) == (plain["service"], plain["change_id"]) == ("ledger", "chg-4")
    assert plain["features"]["callee_early"] == 0.0 and faint["features"]["callee_early"] == 1.0
    assert faint["confidence"] < plain["confidence"]
    assert any("memcached, which is anomalous from as early" in item["summary"] for item in faint["counter_evidence"])
    # With logs, ledger's error text would name a failing memcached: a faint callee rules nothing in.
    assert top(5000, early=True)["features"]["callee_early"] == 0.0


def test_correlation_lists_the_callees_anomalous_as_early_as_each_candidate():
    from agents import engine

    ctx = {"topology": [{"name": "ledger", "calls": ["memcached", "geo"]}, {"name": "memcached", "calls": []},
                        {"name": "geo", "calls": []}]}
    services = {"ledger": {"score": 1.7, "onset": 1000.0, "has_metrics": True},
                "memcached": {"score": 0.85, "onset": 1000.0, "has_metrics": True},  # as early, half as strong
                "geo": {"score": 0.9, "onset": 1400.0, "has_metrics": True}}  # later: ledger's victim, not its cause
    cor = engine.correlate(ctx, {"services": services, "onset": None}, {"changes": []})
    assert cor["early_callees"] == {"ledger": ["memcached"]}


# --- Round 5 (helper branch `calib5`): a rival left unruled caps the confidence. ---


def _strong_world(log_total, *, late_dt_s=None, early=False):
    """A strong, clear top answer (search-api, no change), optionally with a rival the evidence leaves open."""
    from agents.evidence import ranking

    changes = []
    if late_dt_s is not None:  # a change on search-api ruled "after" by the onset estimate alone
        changes.append({"id": "c1", "service": "search-api", "kind": "deploy", "score": 0.0, "position": "after",
                        "dt_s": late_dt_s, "reasons": [], "against": [f"lands {int(-late_dt_s)} s after the onset"]})
    cor = {"origins": [_origin("search-api", 4.5, strength=2.6, explains=["web", "public-api", "feed"]),
                       _origin("public-api", 1.0)],
           "changes": changes, "neighbours": [], "capacity_services": [],
           "early_callees": {"search-api": ["es"]} if early else {}}
    ctx = {"alerts": [], "missing_sources": []}
    sig = {"services": {}, "series": [], "templates": [], "logs": {"total": log_total, "sampled": False}}
    return ranking.rank(ctx, sig, cor, [])[0]


def test_an_answer_with_a_rival_left_unruled_is_not_stated_above_the_ceiling():
    from agents.evidence import calibration

    plain = _strong_world(0)
    assert plain["confidence"] > calibration.RIVAL_CEILING  # strong enough to be stated above it on its own
    early = _strong_world(0, early=True)
    assert early["service"] == plain["service"] == "search-api"
    assert early["features"]["callee_early"] == 1.0
    assert early["confidence"] <= calibration.RIVAL_CEILING
    # The ceiling bounds, it does not raise: a weak answer with a rival stays where its features put it.
    weak = {"no_logs": 1.0, "no_logs_close": 1.0, "origin_strength": 0.3, "callee_early": 1.0}
    assert calibration.confidence(weak) <= calibration.confidence({**weak, "callee_early": 0.0}) < 50


def test_without_logs_a_change_just_after_the_onset_estimate_is_a_rival_of_no_change():
    from agents.evidence import calibration

    # Read without logs, a deploy on search-api 80 s after the onset estimate is ruled "after" by that estimate
    # alone: at a 60 s step nothing shows search-api failed before it, so "no change" is not stated above 80.
    late = _strong_world(0, late_dt_s=-80.0)
    assert (late["service"], late["change_id"]) == ("search-api", None)
    assert late["features"]["change_unruled"] == 1.0
    assert late["confidence"] <= calibration.RIVAL_CEILING < _strong_world(0)["confidence"]
    assert any("landed 80 s after the estimated onset" in item["summary"] for item in late["counter_evidence"])
    # Far after the onset, timing does rule it out; with logs, new errors after it would have admitted it.
    assert _strong_world(0, late_dt_s=-900.0)["features"]["change_unruled"] == 0.0
    assert _strong_world(5000, late_dt_s=-80.0)["features"]["change_unruled"] == 0.0


def test_single_failed_requests_of_a_low_traffic_service_do_not_date_its_failure():
    # 0.5 req/s: one failed request in a minute reads 0.033. Two such lone minutes (m 95, 97, each followed by
    # a minute without failures) precede the failure at m 99 (0.2: six failed requests a minute). The failure is dated
    # from m 99; the same rates at 40 req/s stand for dozens of failed requests a minute, and the excursion keeps its earlier start.
    from agents.evidence import signals

    def rate(m):
        return 0.2 if m >= 99 else 1 / 30 if m in (40, 95, 97) else 0.0

    def series(service, rps):
        return [{"service": service, "name": "error_rate", "points": [[fmt_ts(START + 60 * m), rate(m)]
                                                                       for m in range(120)]},
                {"service": service, "name": "requests_per_s", "points": [[fmt_ts(START + 60 * m), rps]
                                                                          for m in range(120)]}]

    ctx = {"anchor": START + 60 * 105, "window": {"start": fmt_ts(START), "end": fmt_ts(END)}}
    found = signals.analyse_metrics(None, ctx, [], series_list=series("quiet", 0.5) + series("busy", 40.0))
    onset = {s["service"]: parse_ts(s["onset"]) for s in found["series"] if s["name"] == "error_rate"}
    assert onset["quiet"] == START + 60 * 99
    assert onset["busy"] < START + 60 * 99
    # A low-traffic origin whose failure is one failed request a minute, minute after minute, is dated from its
    # first one: failing samples in a row are no background.
    steady = [{"service": "tiny", "name": "error_rate",
               "points": [[fmt_ts(START + 60 * m), 1 / 6 if m >= 95 else 1 / 6 if m == 40 else 0.0]
                          for m in range(120)]},
              {"service": "tiny", "name": "requests_per_s", "points": [[fmt_ts(START + 60 * m), 0.1]
                                                                       for m in range(120)]}]
    found = signals.analyse_metrics(None, ctx, [], series_list=steady)
    assert parse_ts(found["series"][0]["onset"]) == START + 60 * 95



def test_two_failing_minutes_at_a_low_traffic_services_healthy_share_do_not_date_its_failure():
    # 0.5 req/s (30 requests a minute). Healthy, one request in about 200 fails: a lone failed request every 15 min
    # or so. Ahead of the failure (m 99: six failed requests a minute) single failures come a little closer
    # together: m 90 (one), m 91 (two), m 94, m 96 (one each) — 5 of 270 requests, as many as the healthy share
    # gives now and then. The count split dates the failure from m 99, not from the pair of failing minutes at m 90.
    from agents.evidence import signals

    lone = {20: 1, 36: 1, 51: 1, 66: 1, 80: 1, 90: 1, 91: 2, 94: 1, 96: 1}

    def rate(m):
        return 0.2 if m >= 99 else lone.get(m, 0) / 30

    series = [{"service": "orders", "name": "error_rate",
               "points": [[fmt_ts(START + 60 * m), rate(m)] for m in range(120)]},
              {"service": "orders", "name": "requests_per_s",
               "points": [[fmt_ts(START + 60 * m), 0.5] for m in range(120)]}]
    ctx = {"anchor": START + 60 * 105, "window": {"start": fmt_ts(START), "end": fmt_ts(END)}}
    found = signals.analyse_metrics(None, ctx, [], series_list=series)
    onset = [parse_ts(s["onset"]) for s in found["series"] if s["name"] == "error_rate"]
    assert onset == [START + 60 * 99]


# --- Issue #15 items 4-5 (helper branch `wrong80`): changes that do not explain the failure. ---


def test_a_change_three_minutes_into_its_own_services_failure_is_after_it():
    migration = {"id": "chg-9", "service": "orders", "kind": "db_migration", "summary": "add index",
                 "details": {"migration": "0039_add_index"}}
    # orders' telemetry went bad 244 s before the migration; its new log lines only came after it (the failure's
    # later symptoms): the migration lands inside a failure under way and cannot have caused it.
    inside = _score(migration, dt_s=-244, first_error_after_s=60, service_onset_after_s=-244)
    assert inside["position"] == "after" and inside["score"] == 0.0
    assert any("was already failing 4 min before it" in item for item in inside["against"])
    # Within two samples and a ramp's lag of its service's onset estimate it still counts (alt3-034: 125 s).
    ramp = _score(migration, dt_s=-125, first_error_after_s=60, service_onset_after_s=-125)
    assert ramp["position"] == "before" and ramp["score"] > 0.6


def test_a_flag_on_a_service_whose_requests_collapsed_is_not_judged_by_its_error_share():
    from agents.evidence import verify

    flag = {"id": "chg-4", "service": "fx", "kind": "feature_flag", "ts": "2026-02-24T07:54:32Z",
            "summary": "Roll out fx.compactCards to 20%", "details": {"flag": "fx.compactCards", "rollout_pct": 20}}
    # 31 % of fx's requests fail, 20 % are rolled out: over what still completes, but fx's completed requests fell
    # by two thirds while its callers kept sending, so the share says nothing about the rollout.
    collapsed = {"score": 4.9, "error_level": 0.31, "collapse": {"before": 0.42, "after": 0.14, "callers": ["api"]}}
    plain = {"score": 4.9, "error_level": 0.31}
    assert changes.failing_share_of(collapsed) is None and changes.failing_share_of(plain) == 0.31

    def checks(info):
        ctx = {"window": {"start": "2026-02-24T07:00:00Z", "end": "2026-02-24T08:30:00Z"}}
        sig = {"services": {"fx": info}, "templates": [], "onset": "2026-02-24T07:59:00Z"}
        cor = {"origins": [], "changes": [{"id": "chg-4", "position": "before"}]}
        hyp = {"hypotheses": [{"service": "fx", "change_id": "chg-4", "confidence": 90}]}
        result = verify.check(None, ctx, sig, {"changes": [flag]}, cor, hyp)
        return result["outcome"], [c["name"] for c in result["checks"] if not c["passed"]]

    assert checks(plain) == ("DECLINED", ["flag_share_matches"])
    assert checks(collapsed)[1] == []


def test_a_change_past_the_onset_estimate_counts_when_its_services_telemetry_went_bad_right_after_it():
    migration = {"id": "chg-8", "service": "accounts", "kind": "db_migration", "summary": "add column",
                 "details": {"migration": "0225_add_column"}}
    # The estimate sits 166 s before the migration (another service's wobble); accounts' metrics went bad 74 s
    # after it, and a stray warning first seen 33 s before it keeps its new errors from "following" it.
    moved = _score(migration, dt_s=-166, first_error_after_s=-33, service_onset_after_s=74)
    assert moved["position"] == "before" and moved["score"] > 0.6
    assert any("before the telemetry of accounts went bad" in item for item in moved["reasons"])
    # Far past the estimate (beyond its error) timing still rules, and a service already failing rules it out.
    assert _score(migration, dt_s=-900, first_error_after_s=-33, service_onset_after_s=74)["position"] == "after"
    assert _score(migration, dt_s=-166, first_error_after_s=-33, service_onset_after_s=-100)["position"] == "after"
    # A faint sign of its trouble before it (a thread pool filling 4 min earlier) and the change is no longer first.
    faint = changes.score_change(migration, change_ts=ONSET + 166, onset=ONSET, origin_rank={"accounts": 1.0},
                                 neighbours=set(), new_error_after={}, failing_share={},
                                 service_onset=ONSET + 166 + 205, first_sign=ONSET - 100)
    assert faint["position"] == "after"


def test_a_failure_that_recurs_after_a_recovery_is_contrasted_with_the_recovered_level():
    # Pocketed samples (three minutes around each event, as Nezha's): the same fault failed the service 9 min
    # before the anchor, it was back at 0 when the report's stretch began, and fails again at the anchor. The
    # minutes before the stretch are the earlier episode: against them nothing rose; against the stretch's own
    # first (recovered) sample the errors did.
    from agents.evidence import contrast

    anchor = 1_700_000_000.0

    def pockets(*runs):
        return [(anchor + 60 * (start + i), v) for start, values in runs for i, v in enumerate(values)]

    recurring = pockets((-20, [0.0, 0.0, 0.0]), (-9, [0.8, 0.8, 0.75]), (-2, [0.0, 0.7, 0.75]))
    found = contrast.series_contrast(recurring, family="error", anchor=anchor)
    assert found is not None and found["before"] == 0.0 and found["strength"] > 0.5
    # Still failing at the stretch's start (no recovery): an earlier fault's ongoing errors, no new rise.
    ongoing = pockets((-20, [0.0, 0.0, 0.0]), (-9, [0.8, 0.8, 0.75]), (-2, [0.8, 0.7, 0.75]))
    assert contrast.series_contrast(ongoing, family="error", anchor=anchor)["strength"] == 0.0
    # A dip within the service's own noise is no recovery: an always-noisy service still does not score.
    noisy = pockets((-12, [0.5, 1.0, 0.5, 0.9, 0.6, 1.0, 0.5, 0.9, 0.5, 1.0]), (-2, [0.45, 0.9, 0.7]))
    assert contrast.series_contrast(noisy, family="error", anchor=anchor)["strength"] == 0.0


def test_a_failure_that_began_well_before_a_late_report_is_not_stale_in_a_short_window(tmp_path):
    # A 37-min window (too short for a baseline: every series is judged by the contrast around the report). orders
    # fails from 10 min before the alert on it (errors 0.02 → 0.3); search, a bystander, gets slower in the report's
    # own minutes. orders' failure began with the incident, so it is no earlier event's leftover, though it
    # predates the report's stretch (issue #15 round 6: field 2121 / 2224 and hard 909 without logs).
    late = _ONSET_MIN - 7
    shapes = {"web": _healthy(120.0, 0.001, 150.0),
              "orders": _healthy(47.0, 0.02, 40.0, 45.0) | {"error_rate": _step(0.02, 0.3, at=late)},
              "search": _healthy(80.0, 0.002, 30.0, 35.0) | {"latency_p95_ms": _step(30.0, 95.0, at=_ONSET_MIN + 1)},
              "pg": _healthy(300.0, 0.001, 5.0, 7.0)}
    topology = [{"name": "web", "calls": ["search"], "tier": "frontend"},
                {"name": "orders", "calls": ["pg"], "tier": "backend"},
                {"name": "search", "calls": [], "tier": "backend"}, {"name": "pg", "calls": [], "tier": "datastore"}]
    world = _metric_world(tmp_path, shapes, topology=topology, alert_service="orders",
                          trigger="checkout errors on orders", start_min=_ONSET_MIN - 37)
    report = _run(world)
    assert report["hypotheses"][0]["service"] == "orders"


_PAY = [{"name": "web", "calls": ["orders", "search"], "tier": "frontend"},
        {"name": "orders", "calls": ["stripe"], "tier": "backend"},
        {"name": "search", "calls": [], "tier": "backend"},
        {"name": "stripe", "calls": [], "tier": "external"}]


def test_without_logs_the_one_silent_callee_outranks_an_origin_that_shows_only_symptoms(tmp_path):
    # orders' errors and latency rise and nothing of its own moves; stripe, which it calls, has no metrics at all.
    base = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.1)},
            "orders": _healthy(47.0, 0.002, 40.0) | {"error_rate": _step(0.002, 0.2),
                                                      "latency_p95_ms": _step(40.0, 400.0),
                                                      "cpu_util": _step(0.3, 0.3)},
            "search": _healthy(80.0, 0.002, 30.0)}
    report = _run(_metric_world(tmp_path / "a", base, topology=_PAY, alert_service="web", trigger="web errors"))
    top = report["hypotheses"][0]
    assert (top["service"], top["change_id"]) == ("stripe", None)
    assert any("what a caller of a failing dependency shows" in e["summary"] for e in top["evidence"])
    assert any("orders may have failed on its own" in e["summary"] for e in top["counter_evidence"])
    assert report["hypotheses"][1]["service"] == "orders"
    assert report["verification"]["outcome"] != "DECLINED"
    assert top["confidence"] <= 50
    # orders' CPU at its limit is a fault of its own: it keeps its place.
    hot = {**base, "orders": base["orders"] | {"cpu_util": _step(0.3, 0.97)}}
    report = _run(_metric_world(tmp_path / "b", hot, topology=_PAY, alert_service="web", trigger="web errors"))
    assert report["hypotheses"][0]["service"] == "orders"
    # Two silent callees: nothing says which, and orders keeps its place.
    two = [dict(s) for s in _PAY] + [{"name": "s3", "calls": [], "tier": "external"}]
    two[1] = {"name": "orders", "calls": ["stripe", "s3"], "tier": "backend"}
    report = _run(_metric_world(tmp_path / "c", base, topology=two, alert_service="web", trigger="web errors"))
    assert report["hypotheses"][0]["service"] == "orders"
    # With logs, orders' error text would name stripe if it failed: the rule is for log-less reading only.
    logged = _metric_world(tmp_path / "d", base, topology=_PAY, alert_service="web", trigger="web errors")
    (logged / "logs.jsonl").write_text("".join(
        f'{{"ts": "{fmt_ts(_T0 + 60 * m)}", "service": "orders", "level": "INFO", "message": "order placed"}}\n'
        for m in range(0, 120, 2)))
    assert _run(logged)["hypotheses"][0]["service"] == "orders"


def test_no_change_on_a_service_whose_own_change_verification_declined_is_not_stated_above_the_ceiling():
    from agents.evidence import calibration, ranking

    cor = {"origins": [_origin("search-api", 4.5, strength=2.6, explains=["web", "public-api", "feed"]),
                       _origin("public-api", 1.0)],
           "changes": [], "neighbours": [], "capacity_services": []}
    ctx = {"alerts": [], "missing_sources": []}
    sig = {"services": {}, "series": [], "templates": [], "logs": {"total": 5000, "sampled": False}}
    plain = ranking.rank(ctx, sig, cor, [])[0]
    assert plain["confidence"] > calibration.RIVAL_CEILING
    # The flag on search-api was the first answer; verification declined it on its rollout share alone.
    after = ranking.rank(ctx, sig, cor, [{"service": "search-api", "change_id": "chg-7"}])[0]
    assert (after["service"], after["change_id"]) == ("search-api", None)
    assert after["features"]["change_declined"] == 1.0
    assert after["confidence"] <= calibration.RIVAL_CEILING
    assert any(item["ref"] == "chg-7" and "one verification check" in item["summary"]
               for item in after["counter_evidence"])
    # A declined change on another service leaves this answer as it was.
    other = ranking.rank(ctx, sig, cor, [{"service": "public-api", "change_id": "chg-8"}])[0]
    assert other["confidence"] == plain["confidence"]


def test_a_change_whose_service_showed_trouble_minutes_before_it_is_not_stated_above_the_ceiling():
    from agents.evidence import calibration, ranking

    landed = 1_700_000_000.0

    def top(first_sign_before_s):
        change = {"id": "c1", "service": "search-api", "kind": "config", "score": 0.9, "position": "before",
                  "dt_s": 60.0, "ts": fmt_ts(landed), "reasons": ["1 min before the onset"], "against": []}
        cor = {"origins": [_origin("search-api", 4.5, strength=2.6, explains=["web", "public-api", "feed"]),
                           _origin("public-api", 1.0)],
               "changes": [change], "neighbours": [], "capacity_services": []}
        series = [{"ref": "metrics:search-api/db_connections", "service": "search-api", "name": "db_connections",
                   "onset": fmt_ts(landed - first_sign_before_s), "baseline": 7.0, "level_after": 20.0}]
        sig = {"services": {}, "series": series, "templates": [], "logs": {"total": 5000, "sampled": False}}
        return ranking.rank({"alerts": [], "missing_sources": []}, sig, cor, [])[0]

    # Its connection pool began filling 10 min before the config change landed.
    early = top(600.0)
    assert (early["service"], early["change_id"]) == ("search-api", "c1")
    assert early["features"]["change_late"] == 1.0 and early["confidence"] <= calibration.RIVAL_CEILING
    assert any("showed trouble (db_connections) 10 min before c1" in item["summary"]
               for item in early["counter_evidence"])
    # Trouble that begins with the change (within the 3-min margin) leaves it a plain, strong answer.
    prompt = top(60.0)
    assert prompt["features"]["change_late"] == 0.0 and prompt["confidence"] > calibration.RIVAL_CEILING


# --- Helper branch `leak`: a leak under a load surge; a migration that makes its datastore busy. ---

_LEDGER = [{"name": "web", "calls": ["invoice"], "tier": "frontend"},
           {"name": "invoice", "calls": ["ledger"], "tier": "internal"},
           {"name": "ledger", "calls": [], "tier": "internal"}]


def _surge_and_leak(surge_min=_ONSET_MIN - 10):
    """Traffic triples from ``surge_min`` on every service; invoice's CPU and connections rise with it. From the
    onset ledger's memory runs out: its errors and latency rise, and invoice's and web's follow."""
    return {"web": _healthy(100.0, 0.001, 150.0) | {"requests_per_s": _step(100.0, 320.0, at=surge_min),
                                                     "error_rate": _step(0.001, 0.1)},
            "invoice": _healthy(95.0, 0.001, 50.0) | {"requests_per_s": _step(95.0, 320.0, at=surge_min),
                                                      "cpu_util": _step(0.27, 0.47, at=surge_min),
                                                      "db_connections": _step(10.0, 35.0, at=surge_min),
                                                      "error_rate": _step(0.001, 0.19),
                                                      "latency_p95_ms": _step(50.0, 144.0)},
            "ledger": _healthy(370.0, 0.002, 200.0) | {"requests_per_s": _step(370.0, 1250.0, at=surge_min),
                                                       "mem_util": _step(0.5, 0.98),
                                                       "error_rate": _step(0.002, 0.12),
                                                       "latency_p95_ms": _step(200.0, 880.0)}}


def test_resource_series_that_rose_with_a_traffic_surge_do_not_date_the_services_failure(tmp_path):
    # invoice's CPU and connections rose 10 min before the onset, when its traffic tripled: they date the surge,
    # and invoice's failure dates from its errors, with ledger's. ledger, whose memory ran out, is the origin
    # (issue #15 round 7: memory leaks under a load surge in the alt suites without logs).
    from agents.evidence import signals

    ctx = {"anchor": _T0 + 60 * (_ONSET_MIN + 3), "window": {"start": fmt_ts(_T0), "end": fmt_ts(_T0 + 7200)}}
    rows = [{"service": svc, "name": name, "points": [[fmt_ts(_T0 + 60 * m), shape(m)] for m in range(120)]}
            for svc, names in _surge_and_leak().items() for name, shape in names.items()]
    found = signals.analyse_metrics(None, ctx, [], series_list=rows)
    assert found["services"]["invoice"]["onset"] == _T0 + 60 * _ONSET_MIN
    # Its CPU rose with its traffic: load, not a fault of its own that would keep it from being ledger's victim.
    assert "cpu" not in found["services"]["invoice"]["families"]
    # Without the surge the same rise of its CPU and connections is invoice's own first sign.
    calm = [r if r["name"] != "requests_per_s" else {**r, "points": [[p[0], 95.0] for p in r["points"]]}
            for r in rows]
    found = signals.analyse_metrics(None, ctx, [], series_list=calm)
    assert found["services"]["invoice"]["onset"] == _T0 + 60 * (_ONSET_MIN - 10)
    report = _run(_metric_world(tmp_path, _surge_and_leak(), topology=_LEDGER, alert_service="web",
                                trigger="web errors"))
    assert report["hypotheses"][0]["service"] == "ledger"


_ORDERS_PG = [{"name": "web", "calls": ["orders"], "tier": "frontend"},
              {"name": "orders", "calls": ["pg"], "tier": "backend"},
              {"name": "pg", "calls": [], "tier": "datastore"}]


def test_a_migration_on_a_caller_of_a_busy_datastore_outranks_the_datastore_with_no_change(tmp_path):
    # orders runs a schema migration 2 min before the onset; from then pg, which it calls, is slow and busy and
    # orders fails. pg has no change of its own: the migration it ran for orders made it busy.
    import json

    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.08)},
              "orders": _healthy(60.0, 0.002, 190.0) | {"error_rate": _step(0.002, 0.2),
                                                        "latency_p95_ms": _step(190.0, 790.0)},
              "pg": {"latency_p95_ms": _step(23.0, 46.0), "cpu_util": _step(0.38, 0.53),
                     "db_connections": _step(20.0, 38.0)}}

    def world(path, kind):
        made = _metric_world(path, shapes, topology=_ORDERS_PG, alert_service="orders", trigger="orders errors")
        change = {"id": "chg-7", "ts": fmt_ts(_T0 + 60 * (_ONSET_MIN - 2)), "kind": kind, "service": "orders",
                  "author": "ci", "summary": f"{kind} on orders", "details": {}}
        (made / "changes.jsonl").write_text(json.dumps(change) + "\n")
        return made

    report = _run(world(tmp_path / "a", "db_migration"))
    assert [(h["service"], h["change_id"]) for h in report["hypotheses"][:2]] == [("orders", "chg-7"), ("pg", None)]
    # Another kind of change on the caller does not run against the store: the store keeps its place.
    report = _run(world(tmp_path / "b", "feature_flag"))
    assert report["hypotheses"][0]["service"] == "pg"
    # With logs, the store's and its callers' error text would say what broke: the rule is for log-less reading.
    logged = world(tmp_path / "c", "db_migration")
    (logged / "logs.jsonl").write_text("".join(
        f'{{"ts": "{fmt_ts(_T0 + 60 * m)}", "service": "orders", "level": "INFO", "message": "order placed"}}\n'
        for m in range(0, 120, 2)))
    assert _run(logged)["hypotheses"][0]["service"] == "pg"
    # A store that fails its requests with nothing of its own busier is down on its own: the migration its caller
    # ran is no reason (round 10: a cache returning errors, a caller's harmless migration blamed at 62-78).
    shapes["pg"] = {"error_rate": _step(0.002, 0.4), "latency_p95_ms": _step(23.0, 23.0),
                    "cpu_util": _step(0.38, 0.38)}
    report = _run(world(tmp_path / "d", "db_migration"))
    assert report["hypotheses"][0]["service"] == "pg" and report["hypotheses"][0]["change_id"] is None
    # A store busy because its traffic tripled is loaded by its callers' requests, which a migration does not
    # multiply (round 16: a caller's rename migration blamed at 75 for a cassandra saturated by a surge).
    shapes["pg"] = {"requests_per_s": _step(300.0, 900.0), "latency_p95_ms": _step(23.0, 46.0),
                    "cpu_util": _step(0.38, 0.95), "db_connections": _step(20.0, 38.0)}
    report = _run(world(tmp_path / "e", "db_migration"))
    assert (report["hypotheses"][0]["service"], report["hypotheses"][0]["change_id"]) == ("pg", None)
    assert report["hypotheses"][0]["category"] == "capacity"


# --- Round 7: no topology file. ---


def _web_after_orders(at):
    """orders' error share rises to 0.25 at minute 90; web's errors (to 0.15) and latency rise at minute ``at``."""
    return {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.15, at=at),
                                                     "latency_p95_ms": _step(150.0, 420.0, at=at)},
            "orders": _healthy(47.0, 0.002, 40.0) | {"error_rate": _step(0.002, 0.25)},
            "search": _healthy(80.0, 0.002, 30.0)}


def test_without_a_map_a_log_less_service_that_went_bad_after_another_is_not_named_the_origin(tmp_path):
    # orders' errors rise at minute 90 (errors only); web's errors and latency rise two minutes later, more
    # loudly. No topology file and no logs: nothing says web calls orders, but orders went bad first.
    shapes = _web_after_orders(92)
    report = _run(_metric_world(tmp_path / "a", shapes, topology=None, alert_service="web", trigger="web errors"))
    # The missing map is named, with how to get one.
    assert any(m.startswith("topology (no call graph") and "sources.yaml" in m for m in report["missing_sources"])
    ranked = [(h["service"], h["change_id"]) for h in report["hypotheses"]]
    assert ranked[0] == ("orders", None)
    web = next(h for h in report["hypotheses"] if h["service"] == "web")
    assert any("orders went bad earlier and may be the callee it fails on" in item["summary"]
               for item in web["counter_evidence"])
    # The same world with its map: the topology makes web orders' victim, and the precedence rule stays off.
    shop = [{"name": "web", "calls": ["orders", "search"]}, {"name": "orders", "calls": []},
            {"name": "search", "calls": []}]
    mapped = _run(_metric_world(tmp_path / "b", shapes, topology=shop, alert_service="web", trigger="web errors"))
    assert mapped["hypotheses"][0]["service"] == "orders"
    assert not any("no service map" in item["summary"] for h in mapped["hypotheses"] for item in h["counter_evidence"])
    # A wobble on orders that was over before web went bad is no cause of it: web keeps its place.
    wobble = {**shapes, "orders": _healthy(47.0, 0.002, 40.0) | {"error_rate": _step(0.002, 0.25, at=86, until=89)}}
    report = _run(_metric_world(tmp_path / "c", wobble, topology=None, alert_service="web", trigger="web errors"))
    assert report["hypotheses"][0]["service"] == "web"


def test_without_a_map_a_service_failing_more_of_its_requests_from_no_later_is_not_a_victim_of_a_louder_one(tmp_path):
    # Round 8: web's errors and latency rise one minute after orders' errors (within the onset tolerance, so
    # precedence alone says nothing), more loudly (two series), but on a smaller share of its requests (0.15
    # against 0.25): a caller fails only the requests that reach its failing callee. No map and no logs.
    shapes = _web_after_orders(91)
    report = _run(_metric_world(tmp_path / "a", shapes, topology=None, alert_service="web", trigger="web errors"))
    assert report["hypotheses"][0]["service"] == "orders"
    web = next(h for h in report["hypotheses"] if h["service"] == "web")
    assert any("orders went bad earlier and may be the callee it fails on" in item["summary"]
               for item in web["counter_evidence"])
    # When web fails the larger share itself, nothing says it passes on orders' failure: it keeps its place.
    louder = {**shapes, "web": shapes["web"] | {"error_rate": _step(0.001, 0.4, at=91)}}
    report = _run(_metric_world(tmp_path / "b", louder, topology=None, alert_service="web", trigger="web errors"))
    assert report["hypotheses"][0]["service"] == "web"


def test_without_a_map_a_service_anomalous_as_early_caps_the_answer_at_the_ceiling():
    from agents import engine
    from agents.evidence import calibration

    services = {"api": {"score": 1.8, "onset": 1000.0, "has_metrics": True},
                "pay": {"score": 1.0, "onset": 1060.0, "has_metrics": True},  # as early, more than half as strong
                "mail": {"score": 0.5, "onset": 1000.0, "has_metrics": True},  # too faint
                "cache": {"score": 1.2, "onset": 1500.0, "has_metrics": True}}  # clearly later
    cor = engine.correlate({"topology": []}, {"services": services, "onset": None}, {"changes": []})
    assert cor["unmapped_rivals"]["api"] == ["pay"]
    # With a map, the graph decides and there are no such rivals.
    topo = [{"name": "api", "calls": ["pay"]}, {"name": "pay", "calls": []}, {"name": "mail", "calls": []},
            {"name": "cache", "calls": []}]
    assert engine.correlate({"topology": topo}, {"services": services, "onset": None},
                            {"changes": []})["unmapped_rivals"] == {}
    # A service that ships logs names its failing callees itself: no rival then.
    logged = {**services, "api": {**services["api"], "new_errors": 0}}
    assert "api" not in engine.correlate({"topology": []}, {"services": logged, "onset": None},
                                         {"changes": []})["unmapped_rivals"]
    strong = {"origin_strength": 2.6, "origin_margin": 1.5, "margin": 1.5, "explains": 1.0}
    assert calibration.confidence(strong) > calibration.RIVAL_CEILING
    assert calibration.confidence({**strong, "map_unruled": 1.0}) == calibration.RIVAL_CEILING


def test_without_a_map_a_named_callee_that_went_bad_later_did_not_break_the_caller():
    # fx logs "TLS session resumption failed for risk" (its caller's name) and went bad three minutes before risk.
    anomalies = {"fx": {"score": 1.4, "onset": 1000.0, "has_logs": True},
                 "risk": {"score": 1.3, "onset": 1180.0, "has_logs": False}}
    mentions = {"fx": {"risk": 3.0}}
    graph = CallGraph()
    graph.add_edge("fx", "risk")  # the only edge: what the text gave
    unmapped = {c["service"]: c for c in locate_origin(graph, anomalies, mentions, mapped=False)}
    assert unmapped["fx"]["victim_of"] == []
    # With a map that says fx calls risk, the text is trusted whatever the onsets say (as before).
    mapped = {c["service"]: c for c in locate_origin(graph, anomalies, mentions)}
    assert mapped["fx"]["victim_of"] == ["risk"]
    # A named callee that went bad as early is the caller's cause with or without a map.
    early = {**anomalies, "risk": {**anomalies["risk"], "onset": 1060.0}}
    assert {c["service"]: c for c in locate_origin(graph, early, mentions, mapped=False)}["fx"]["victim_of"] == ["risk"]


# --- Round 9: a callee's milliseconds. ---


def _deploy_over_slow_store(store_after_ms):
    """orders deploys 5 min before the onset; from the onset orders gets 60 → 600 ms slower and fails 1 → 12 % of
    its requests with queued work and busy threads, while pg, which it calls, goes 25 → ``store_after_ms`` ms. No logs."""
    import json

    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.06),
                                                       "latency_p95_ms": _step(150.0, 700.0)},
              "orders": _healthy(60.0, 0.01, 60.0) | {"error_rate": _step(0.01, 0.12),
                                                      "latency_p95_ms": _step(60.0, 600.0),
                                                      "http_5xx_per_s": _step(0.6, 7.0),
                                                      "queue_depth": _step(20.0, 180.0),
                                                      "thread_pool_active": _step(25.0, 130.0)},
              "pg": {"latency_p95_ms": _step(25.0, store_after_ms), "cpu_util": _step(0.4, 0.4),
                     "error_rate": _step(0.0004, 0.0004)}}

    def world(path):
        made = _metric_world(path, shapes, topology=_ORDERS_PG, alert_service="orders", trigger="orders errors")
        change = {"id": "chg-9", "ts": fmt_ts(_T0 + 60 * (_ONSET_MIN - 5)), "kind": "deploy", "service": "orders",
                  "author": "ci", "summary": "orders v2.4.1", "details": {}}
        (made / "changes.jsonl").write_text(json.dumps(change) + "\n")
        return made
    return world


def test_a_callee_slower_by_most_of_its_callers_delay_accounts_for_it_however_louder_the_caller(tmp_path):
    # pg's p95 rises 25 → 470 ms (one series) under orders' 60 → 600 ms (errors, latency, busy threads: a much
    # louder anomaly by score): a caller waits on its callee, so 445 of its 540 extra milliseconds are pg's.
    # The deploy on orders is no explanation then: pg is the origin, orders its victim.
    report = _run(_deploy_over_slow_store(470.0)(tmp_path / "a"))
    top = report["hypotheses"][0]
    assert (top["service"], top["change_id"]) == ("pg", None)
    assert report["confidence"] <= 50
    orders = next(h for h in report["hypotheses"] if h["service"] == "orders")
    assert orders["features"]["victim"] == 1.0
    assert any(item["summary"].startswith("orders calls pg, which is anomalous as early and got 4")
               and "most of orders's delay is waiting on pg" in item["summary"] for item in orders["counter_evidence"])
    # A store the deploy merely loads (25 → 45 ms under the same caller) is downstream noise: the deploy stays.
    report = _run(_deploy_over_slow_store(45.0)(tmp_path / "b"))
    top = report["hypotheses"][0]
    assert (top["service"], top["change_id"]) == ("orders", "chg-9")


def _low_traffic_callee_world(path, *, fails, rps_noise=0.2):
    """web (120 req/s) calls orders, a service of a few requests a minute (0.15 req/s). From minute 90 orders
    completes 0.03 req/s while web keeps sending and web fails 5 % of its requests; web deployed at minute 86.
    ``fails``: orders fails one request in two in every third minute from then on (its per-minute share is 0 in
    most minutes, so its median share stays 0). No logs, no caller-side latency."""
    import json

    def orders_errors(minute):
        return 0.5 if fails and minute >= _ONSET_MIN and minute % 3 == 0 else 0.0

    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.05)},
              "orders": {"requests_per_s": (_step(0.15, 0.03), rps_noise), "error_rate": (orders_errors, 0.0),
                         "latency_p95_ms": (_step(80.0, 80.0), 0.3)}}
    made = _metric_world(path, shapes, topology=[{"name": "web", "calls": ["orders"]}, {"name": "orders", "calls": []}],
                         alert_service="web", trigger="web errors")
    change = {"id": "chg-3", "ts": fmt_ts(_T0 + 60 * (_ONSET_MIN - 4)), "kind": "deploy", "service": "web",
              "author": "ci", "summary": "web v7", "details": {}}
    (made / "changes.jsonl").write_text(json.dumps(change) + "\n")
    return made


def test_a_low_traffic_callee_whose_few_requests_fail_after_its_rate_fell_is_the_origin(tmp_path):
    # Round 9 (item 3): judged by counts — about 1 failed request in 10 since its rate fell, against none in the
    # half hour before — orders' failures are clear, though its median per-minute share stays 0. Its rate fell
    # while web kept sending: web's errors are orders' failures passed on, and web's deploy is not the cause.
    report = _run(_low_traffic_callee_world(tmp_path / "a", fails=True))
    assert report["hypotheses"][0]["service"] == "orders"
    assert any(item["summary"].startswith("web's errors are explained by orders")
               for h in report["hypotheses"] if h["service"] == "web" for item in h["counter_evidence"])
    assert any("its failed share 0 → 0.1" in item["summary"] for item in report["hypotheses"][0]["evidence"])
    # The same fall with no failure at orders (and nobody waiting on it): web sends less because it fails first.
    report = _run(_low_traffic_callee_world(tmp_path / "b", fails=False))
    assert (report["hypotheses"][0]["service"], report["hypotheses"][0]["change_id"]) == ("web", "chg-3")


def test_failed_requests_are_counted_from_where_a_low_request_rate_fell():
    from agents.evidence import traffic

    minute = 60.0
    requests = [(i * minute, 0.15 if i < 50 else 0.03) for i in range(60)]
    # 4 of about 18 requests fail after minute 50, none of 270 before: a clear rise by counts.
    errors = [(i * minute, 1.0 if i in (51, 54, 57, 59) else 0.0) for i in range(60)]
    split, stop = 57 * minute, 60 * minute
    assert traffic._fell_at(requests, split=split, stop=stop) == 50 * minute
    shares = traffic._failing_by_count(errors, requests, split=50 * minute, stop=stop)
    assert shares is not None and shares[0] == 0.0 and shares[1] > 0.2
    # One failed minute after it (about 2 requests) when 3 of the 270 before failed too: within what the earlier
    # share allows.
    one = [(i * minute, 1 / 9 if i in (25, 35, 45) else 1.0 if i == 51 else 0.0) for i in range(60)]
    assert traffic._failing_by_count(one, requests, split=50 * minute, stop=stop) is None


def test_a_callee_whose_requests_collapsed_is_not_quiet_when_its_callers_errors_name_it(tmp_path):
    # With logs: web's new errors after its deploy say "call to orders timed out". orders' own series stay within
    # their noise (a few requests a minute), but its request rate fell while web kept sending — a metric excursion
    # of its own, so the callers naming it count and web is its victim (issue #15 round 9: field 2232 gen-0008,
    # the caller's deploy blamed at 97 %).
    import json

    world = _low_traffic_callee_world(tmp_path / "a", fails=True, rps_noise=0.3)
    lines = [{"ts": fmt_ts(_T0 + 60 * m + 5), "service": "web", "level": "INFO", "message": "checkout ok"}
             for m in range(0, 120)]
    lines += [{"ts": fmt_ts(_T0 + 60 * m + s), "service": "web", "level": "ERROR",
               "message": f"call to orders timed out after {3000 + s} ms"}
              for m in range(_ONSET_MIN, 120) for s in (10, 40)]
    lines.sort(key=lambda line: line["ts"])
    (world / "logs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = _run(world)
    assert report["hypotheses"][0]["service"] == "orders"
    assert any("web errors name orders" in item["summary"] for item in report["hypotheses"][0]["evidence"])


def test_a_fall_at_the_end_of_the_stretch_is_measured_from_where_it_fell():
    # The trigger came right after orders' rate fell (minute 61), so three of the stretch's four samples are from
    # before the fall and its median shows none. Measured from the fall on, the rate fell 80 % while web kept
    # sending, and 5 of about 20 requests failed against none before (round 9: field 2232 gen-0007).
    from agents.evidence import traffic

    minute = 60.0

    def series(service, name, shape):
        return {"service": service, "name": name, "points": [[fmt_ts(_T0 + i * minute), shape(i)] for i in range(75)]}

    fails = (62, 64, 66, 69, 72)
    found = traffic.collapses(
        [series("orders", "requests_per_s", lambda i: 0.15 if i < 61 else 0.03),
         series("orders", "error_rate", lambda i: 1.0 if i in fails else 0.0),
         series("web", "requests_per_s", lambda i: 120.0)],
        callers={"orders": {"web"}}, split=_T0 + 57.5 * minute, stop=_T0 + 61.5 * minute, parse_ts=parse_ts)
    # One sample after the stretch's end is too few to place the fall to the minute: it is dated no later.
    assert _T0 + 59 * minute <= found["orders"]["fell_at"] <= _T0 + 61 * minute
    assert found["orders"]["drop"] == 0.8 and found["orders"]["error_after"] > 0.2


def test_a_callees_wait_is_measured_from_where_its_requests_fell():
    # kyc (6 requests a minute) fell to 2 a minute at minute 60, 30 s before the stretch around the trigger began;
    # web's wait on it doubled from that minute. The stretch's earlier samples hold the fall's first minute (220 ms)
    # and two healthy spikes, so the earlier high decile is 220 and the stretch's wait (170 ms) is not above it.
    # Measured from where the rate fell, the earlier samples are healthy ones: kyc made its callers wait, and its
    # fall is a collapse (round 10: field 2235 gen-0029, web-frontend blamed at 85 for kyc's failure).
    from agents.evidence import traffic

    minute = 60.0

    def series(service, name, shape):
        return {"service": service, "name": name, "points": [[fmt_ts(_T0 + i * minute), shape(i)] for i in range(80)]}

    def wait(i):
        if i < 60:
            return {40: 700.0, 50: 250.0}.get(i, 80.0)
        return 220.0 if i == 60 else 150.0 + 10 * (i % 5)

    found = traffic.collapses(
        [series("kyc", "requests_per_s", lambda i: 0.1 if i < 60 else 0.033),
         series("kyc", "caller_latency_p95_ms", wait),
         series("kyc", "error_rate", lambda i: 0.0),
         series("web", "requests_per_s", lambda i: 450.0)],
        callers={"kyc": {"web"}}, split=_T0 + 60.5 * minute, stop=_T0 + 64.5 * minute, parse_ts=parse_ts)
    assert found["kyc"]["fell_at"] <= _T0 + 60 * minute
    assert found["kyc"]["wait_before"] == 80.0 and found["kyc"]["wait_after"] >= 150.0


def test_a_scrape_outage_on_one_service_does_not_make_the_incidents_own_failure_stale(tmp_path):
    # Hard seed 2020, world 50: web-bff's flag rollout fails 27 % of its requests from 13:46; limits' metrics are
    # all missing from 13:02 to 13:27 (a scrape outage). A gap anywhere used to turn off "under way since the
    # incident's onset", so web-bff's error rise, just begun at the report, counted as a stale leftover and a callee
    # with three new warning lines (TLS resumption, two slow queries) was blamed at 88 (issue #15 round 10).
    import yaml

    from agents import engine
    from sandbox.generator import generate_world
    from sandbox.tools import WorldTools

    world = generate_world(tmp_path / "w", family="feature_flag", seed=2020 * 10007 + 50, hard=True)
    truth = yaml.safe_load((world / "truth.yaml").read_text())["root_cause"]
    assert truth["service"] == "web-bff" and "limits" in (world / "truth.yaml").read_text()
    top = engine.run_all(WorldTools(world), None, None)["hypotheses"][0]
    assert (top["service"], top["change_id"]) == (truth["service"], truth["change_id"])


# --- Round 13: partial telemetry. ---


def _half_kept(service, minute):
    # A stable half of the minutes (as bench/variants.py thins traces): about one sample in two is missing.
    import hashlib

    return hashlib.blake2b(f"s2:{service}/{minute}".encode(), digest_size=8).digest()[0] < 128


def test_a_series_that_lost_half_its_samples_is_still_dated_from_its_history(tmp_path):
    from agents.evidence import anomalies

    # orders starts failing at the onset minute and web, which calls it, a minute later; about half of every
    # service's samples are missing. Two hours of history are plenty for a baseline: orders' failure is dated
    # at its first sample from the onset on, not at the first sample after the report (a pocketed series' contrast).
    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.2, at=_ONSET_MIN + 1)},
              "orders": _healthy(47.0, 0.01, 40.0, 45.0) | {"error_rate": _step(0.01, 0.4)},
              "search": _healthy(80.0, 0.002, 30.0, 35.0),
              "pg": _healthy(300.0, 0.001, 5.0, 7.0)}
    world = _metric_world(tmp_path, shapes, topology=_SHOP, alert_service="web", trigger="checkout errors on web",
                          keep=_half_kept)
    kept = [m for m in range(120) if _half_kept("orders", m)]
    assert 50 <= len(kept) <= 70
    points = [(_T0 + 60 * m, 0.01) for m in kept]
    assert not anomalies.is_sparse(points, anchor=_T0 + 60 * (_ONSET_MIN + 3))
    first = next(m for m in kept if m >= _ONSET_MIN)
    top = _run(world)["hypotheses"][0]
    assert top["service"] == "orders"
    assert any(item["summary"].startswith(f"error_rate left its baseline at {fmt_ts(_T0 + 60 * first)}")
               for item in top["evidence"])
    # A series with samples only in a few pockets around events still has no baseline of its own.
    pockets = [(_T0 + 60 * m, 0.01) for m in (10, 11, 12, 40, 41, 42, 70, 71, 72, 91, 92)]
    assert anomalies.is_sparse(pockets, anchor=_T0 + 60 * (_ONSET_MIN + 3))


def _louder_caller_shapes():
    """orders fails from the onset minute; web, which calls it, from a minute later with errors and latency."""
    return {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.2, at=_ONSET_MIN + 1),
                                                    "latency_p95_ms": _step(150.0, 420.0, at=_ONSET_MIN + 1)},
            "orders": _healthy(47.0, 0.01, 40.0, 45.0) | {"error_rate": _step(0.01, 0.3)},
            "search": _healthy(80.0, 0.002, 30.0, 35.0),
            "pg": _healthy(300.0, 0.001, 5.0, 7.0)}


def test_a_callee_first_seen_after_missing_samples_may_have_failed_before_its_caller(tmp_path):
    # orders fails from the onset minute, but its samples of minutes 90–93 are missing (a scrape that failed, no
    # sampled span): it is first seen failing at 94. web, which calls it, fails from 91 with errors and latency
    # (louder). orders' failure began somewhere after its last healthy sample (89): it may be first, so web's
    # failure is explained by it — orders is the origin, web its victim.
    shapes = _louder_caller_shapes()

    def keep(service, minute):
        return not (service == "orders" and _ONSET_MIN <= minute <= _ONSET_MIN + 3)

    world = _metric_world(tmp_path, shapes, topology=_SHOP, alert_service="web", trigger="checkout errors on web",
                          keep=keep)
    report = _run(world)
    assert report["hypotheses"][0]["service"] == "orders"
    web = next(h for h in report["hypotheses"] if h["service"] == "web")
    assert any(item["summary"].startswith("web calls orders, which is anomalous as early")
               for item in web["counter_evidence"])


# --- Round 14: how sure an answer read from partial telemetry can be. ---


def test_coverage_is_the_share_of_its_own_grid_a_series_filled():
    from agents.evidence import anomalies

    every = [_T0 + 60 * m for m in range(120)]
    assert anomalies.coverage(every) == 1.0
    half = [_T0 + 60 * m for m in range(120) if _half_kept("orders", m)]
    assert 0.4 <= anomalies.coverage(half) <= 0.6
    pockets = [_T0 + 60 * m for m in (10, 11, 12, 40, 41, 42, 70, 71, 72, 91, 92)]
    assert anomalies.coverage(pockets) < 0.15
    assert anomalies.coverage(every[:2]) == 0.0


def test_without_logs_an_answer_read_from_thinned_series_is_less_sure_than_from_full_ones(tmp_path):
    from agents.evidence import calibration

    # The same incident (orders fails, web calls it and fails a minute later) read from full series and from
    # series that lost about half their samples: the same answer, stated less surely from the thinned ones.
    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.2, at=_ONSET_MIN + 1)},
              "orders": _healthy(47.0, 0.01, 40.0, 45.0) | {"error_rate": _step(0.01, 0.4)},
              "search": _healthy(80.0, 0.002, 30.0, 35.0),
              "pg": _healthy(300.0, 0.001, 5.0, 7.0)}
    full = _run(_metric_world(tmp_path / "full", shapes, topology=_SHOP, alert_service="web",
                              trigger="checkout errors on web"))["hypotheses"][0]
    thin = _run(_metric_world(tmp_path / "thin", shapes, topology=_SHOP, alert_service="web",
                              trigger="checkout errors on web", keep=_half_kept))["hypotheses"][0]
    assert full["service"] == thin["service"] == "orders"
    assert full["features"]["no_logs"] == thin["features"]["no_logs"] == 1.0
    assert full["features"]["sparse"] < 0.05 and 0.3 <= thin["features"]["sparse"] <= 0.6
    assert calibration.confidence(thin["features"]) < calibration.confidence({**thin["features"], "sparse": 0.0})
    # With logs the regime's coefficients do not apply: coverage is not weighed there (fitted on no-logs rows only).
    with_logs = {**thin["features"], "no_logs": 0.0, "no_logs_close": 0.0}
    assert calibration.COEFFICIENTS["sparse"] == 0.0
    assert calibration.confidence(with_logs) == calibration.confidence({**with_logs, "sparse": 0.0})


def test_without_logs_a_callee_whose_metrics_went_missing_across_the_report_is_left_unruled(tmp_path):
    # orders fails with no change of its own, its metrics missing from 5 min before the onset until 10 min after
    # it (a scrape outage); web, which calls it, fails from the onset. Read without logs, orders may have failed
    # first: whatever web's answer, its counter-evidence says so and it is capped as a rival left unruled.
    shapes = {"web": _healthy(120.0, 0.001, 150.0) | {"error_rate": _step(0.001, 0.2),
                                                       "latency_p95_ms": _step(150.0, 420.0)},
              "orders": _healthy(47.0, 0.01, 40.0, 45.0) | {"error_rate": _step(0.01, 0.5),
                                                            "latency_p95_ms": _step(40.0, 900.0)},
              "search": _healthy(80.0, 0.002, 30.0, 35.0),
              "pg": _healthy(300.0, 0.001, 5.0, 7.0)}

    def keep(service, minute):
        return not (service == "orders" and _ONSET_MIN - 5 <= minute < _ONSET_MIN + 10)

    report = _run(_metric_world(tmp_path, shapes, topology=_SHOP, alert_service="web",
                                trigger="checkout errors on web", keep=keep))
    web = next(h for h in report["hypotheses"] if h["service"] == "web")
    assert web["features"]["callee_early"] == 1.0
    assert any(item["summary"].startswith("web calls orders, whose metrics went missing across the report")
               for item in web["counter_evidence"])


def test_a_shelf_the_series_sat_on_before_a_jump_does_not_date_the_jump_but_a_ramp_into_it_does():
    from agents.evidence import anomalies

    # Memory at 0.45 of its limit, creeping to about 0.52 from minute 70 and sitting there, then 0.97 from minute 86
    # (the limit cut): the failure is dated at the jump. The same excursion reached by a steady climb from minute
    # 70 (a leak, a canary's growing share) is dated where the climb began.
    anchor, end = _T0 + 60 * 95, _T0 + 60 * 30

    def series(shape):
        return [(_T0 + 30 * i, shape(i / 2) + 0.004 * ((i * 7) % 5 - 2)) for i in range(240)]

    shelf = anomalies.analyse_series(series(lambda m: 0.97 if m >= 86 else 0.52 if m >= 70 else 0.45),
                                     name="mem_util", baseline_end=end, anchor=anchor)
    assert shelf["anomalous"] and shelf["onset"] == _T0 + 60 * 86
    ramp = anomalies.analyse_series(series(lambda m: 0.97 if m >= 86 else 0.45 + 0.52 * max(0.0, m - 70) / 16),
                                    name="mem_util", baseline_end=end, anchor=anchor)
    assert ramp["anomalous"] and ramp["onset"] <= _T0 + 60 * 72


def test_a_periodic_jobs_run_just_before_a_fault_does_not_date_the_fault_but_a_first_bump_does():
    from agents.evidence import anomalies

    # CPU at 0.17; a job lifts it to 0.45 for 90 s every half hour (minutes 0, 30, 60, 90). At minute 92 the
    # service is scaled down and CPU holds at 0.67; the 90-minute run ended one sample before, so the merge of short
    # gaps joins it to the fault's run (issue #15 round 15: alt12-012, the scale-down ruled "after" an onset dated
    # by the job). The fault is dated at minute 92. A bump with no earlier run like it is no job: it is dated.
    anchor, end = _T0 + 60 * 95, _T0 + 60 * 75

    def series(shape):
        return [(_T0 + 30 * i, shape(i / 2) + 0.004 * ((i * 7) % 5 - 2)) for i in range(220)]

    def job(m):
        return 0.45 if m % 30 < 1.5 else 0.17

    dated = anomalies.analyse_series(series(lambda m: 0.67 if m >= 92 else job(m) if m < 92 else 0.17),
                                     name="cpu_util", baseline_end=end, anchor=anchor)
    assert dated["anomalous"] and dated["onset"] == _T0 + 60 * 92
    lone = anomalies.analyse_series(series(lambda m: 0.67 if m >= 92 else 0.45 if 90 <= m < 91.5 else 0.17),
                                    name="cpu_util", baseline_end=end, anchor=anchor)
    assert lone["anomalous"] and lone["onset"] == _T0 + 60 * 90


def test_a_callee_of_a_few_requests_a_minute_falls_by_counts_and_makes_its_callers_wait_by_sign():
    # A callee at 6 requests a minute whose rate halves reads 0.05 req/s, a level its healthy minutes touched too:
    # by the low decile no fall. Counted — about 30 requests in ten minutes where 60 were due — it fell (issue #15
    # round 15: field 2244 gen-0007, its caller's deploy blamed at 96 with logs). Its callers' p95 wait on a
    # callee of 20 requests a minute has lone waits of seconds in healthy minutes; every sample since the fall
    # stands above the earlier median, 1.6x it: they wait (field 2244 gen-0005, the caller's deploy at 97).
    from agents.evidence import traffic

    minute = 60.0

    def series(service, name, shape):
        return {"service": service, "name": name, "points": [[fmt_ts(_T0 + i * minute), shape(i)] for i in range(75)]}

    steady_web = series("web", "requests_per_s", lambda i: 40.0)
    halved = traffic.collapses(
        [series("kyc", "requests_per_s", lambda i: (0.1, 0.117, 0.05, 0.133)[i % 4] if i < 60 else 0.05),
         series("kyc", "error_rate", lambda i: 0.33 if i in (62, 66, 70) else 0.0), steady_web],
        callers={"kyc": {"web"}}, split=_T0 + 60.5 * minute, stop=_T0 + 64.5 * minute, parse_ts=parse_ts)
    assert "kyc" in halved and halved["kyc"]["drop"] >= 0.5
    # The same 6 a minute sampled by a busy scrape (600 a minute, the same shape): no count is few, and the low
    # decile rules as before.
    busy = traffic.collapses(
        [series("kyc", "requests_per_s", lambda i: 10 * (0.1, 0.117, 0.05, 0.133)[i % 4] if i < 60 else 0.5),
         series("kyc", "error_rate", lambda i: 0.33 if i in (62, 66, 70) else 0.0), steady_web],
        callers={"kyc": {"web"}}, split=_T0 + 60.5 * minute, stop=_T0 + 64.5 * minute, parse_ts=parse_ts)
    assert "kyc" not in busy

    def wait(i):
        if i < 60:
            return {35: 1400.0, 41: 3400.0, 47: 800.0, 52: 1500.0, 55: 600.0}.get(i, 95.0 + 30 * (i % 3))
        return 160.0 + 25 * (i % 4)

    slowed = traffic.collapses(
        [series("ship", "requests_per_s", lambda i: 0.35 + 0.05 * (i % 3 - 1) if i < 60 else 0.13),
         series("ship", "caller_latency_p95_ms", wait),
         series("ship", "error_rate", lambda i: 0.0), steady_web],
        callers={"ship": {"web"}}, split=_T0 + 60.5 * minute, stop=_T0 + 64.5 * minute, parse_ts=parse_ts)
    assert "ship" in slowed and slowed["ship"]["wait_after"] > slowed["ship"]["wait_before"]
    # Half the samples since the fall above the earlier median is what noise does: no wait.
    mixed = traffic.collapses(
        [series("ship", "requests_per_s", lambda i: 0.35 + 0.05 * (i % 3 - 1) if i < 60 else 0.13),
         series("ship", "caller_latency_p95_ms", lambda i: wait(i) if i < 60 else (190.0, 100.0)[i % 2]),
         series("ship", "error_rate", lambda i: 0.0), steady_web],
        callers={"ship": {"web"}}, split=_T0 + 60.5 * minute, stop=_T0 + 64.5 * minute, parse_ts=parse_ts)
    assert "ship" not in mixed


def test_a_callee_first_seen_after_a_long_gap_ending_before_the_report_may_have_failed_first(tmp_path):
    # As above, but orders' samples of minutes 84–94 are missing (eleven minutes: longer than a failed scrape or
    # two, as sampled spans of a quiet service can be): first seen failing at 95, two minutes after the report.
    # The gap does not reach past the report's own slack, so its failure is not "unseen"; it began somewhere in the
    # gap all the same, and web's failure from 91 is explained by it (issue #15 round 15: hard 2035 gen-0057 with
    # traces halved, kyc's flag lost to its caller's change at 80).
    shapes = _louder_caller_shapes()

    def keep(service, minute):
        return not (service == "orders" and _ONSET_MIN - 6 <= minute <= _ONSET_MIN + 4)

    world = _metric_world(tmp_path, shapes, topology=_SHOP, alert_service="web", trigger="checkout errors on web",
                          keep=keep)
    report = _run(world)
    assert report["hypotheses"][0]["service"] == "orders"
    assert any(f"may have begun any time after {fmt_ts(_T0 + 60 * (_ONSET_MIN - 7))}" in item["summary"]
               for item in report["hypotheses"][0]["evidence"])


def test_a_later_change_ruled_out_is_named_in_the_counter_evidence_it_gives():
    # Listed under a hypothesis about its service, a change ruled "after" the onset says which change it is: "lands
    # 900 s after the onset" under another change's hypothesis read as about that one (round 15: field 2244
    # gen-0005, a flag's hypothesis carrying a later flag's "lands 671 s after the onset").
    late = _strong_world(0, late_dt_s=-900.0)
    assert any(item["ref"] == "c1" and item["summary"].startswith("deploy c1: lands 900 s after the onset")
               for item in late["counter_evidence"])


def test_a_few_lone_failures_of_a_quiet_service_make_no_excursion_but_a_lasting_failure_does():
    from agents.evidence import anomalies, signals

    # risk (0.2 req/s, 12 requests a minute) fails one request every 13 minutes when healthy (0.6 %); four single
    # failures in seven minutes at minutes 80–86 form an excursion by the robust z alone. Counted, four failures
    # where 0.5 were due are what some seven-minute stretch of 80 minutes gives by chance (issue #15 round
    # 15: field 2245 gen-0013, such a cluster named the origin 8 min before a capacity fault elsewhere).
    minute = 60.0
    rates = {_T0 + m * minute: 0.2 for m in range(120)}
    lone = {80, 82, 84, 86}
    healthy = {5, 18, 31, 44, 57, 70}
    points = [(_T0 + m * minute, 1 / 12 if m in lone | healthy else 0.0) for m in range(120)]
    info = anomalies.analyse_series(points, name="error_rate", baseline_end=_T0 + 75 * minute,
                                    anchor=_T0 + 89 * minute)
    assert info["anomalous"]
    assert not signals._failures_stand_out(info, points, rates)
    # One request in four failing from minute 80 on, minute after minute: it stands out.
    failing = [(_T0 + m * minute, 0.25 if m >= 80 else v) for m, (_, v) in enumerate(points)]
    info = anomalies.analyse_series(failing, name="error_rate", baseline_end=_T0 + 75 * minute,
                                    anchor=_T0 + 89 * minute)
    assert info["anomalous"] and signals._failures_stand_out(info, failing, rates)


def test_a_collapse_whose_failed_share_did_not_rise_does_not_cite_it():
    from agents.evidence import ranking

    info = {"before": 0.35, "after": 0.133, "callers": ["returns"], "wait_before": 125.0, "wait_after": 215.0,
            "error_before": 0.0, "error_after": 0.0}
    line = ranking._collapse_summary("shipping", info)
    assert "its callers wait 125 → 215 ms for it" in line and "failed share" not in line
    assert "its failed share 0 → 0.1" in ranking._collapse_summary("shipping", {**info, "error_after": 0.1})


# --- Round 16: a quiet service's latency read for what it says. ---


def _quiet_callee_rows(gap_after):
    """web (120 req/s) calls orders (0.15 req/s). orders' own p95 is the slowest of a few requests: about 160 ms (± 40 %),
    with lone requests of 2-3 s in some healthy minutes, which its callers' view repeats. From minute 90 its callers
    wait ``gap_after`` ms beyond its own latency (10 ms before); its own latency does not change."""
    import random

    rng = random.Random(3)
    spikes = {12, 31, 47, 63, 76, 97, 108}
    own, wait = [], []
    for m in range(120):
        ts = fmt_ts(_T0 + 60 * m)
        value = (2000.0 + 800 * rng.random()) if m in spikes else 160.0 * (1 + rng.gauss(0, 0.4))
        gap = (gap_after if m >= _ONSET_MIN else 10.0) * (1 + rng.gauss(0, 0.2))
        own.append([ts, round(value, 1)])
        wait.append([ts, round(value * 1.05 + gap, 1)])
    return [{"service": "orders", "name": "latency_p95_ms", "points": own},
            {"service": "orders", "name": "caller_latency_p95_ms", "points": wait},
            {"service": "orders", "name": "requests_per_s", "points": [[p[0], 0.15] for p in own]},
            {"service": "web", "name": "requests_per_s", "points": [[p[0], 120.0] for p in own]}]


def test_a_quiet_callees_callers_waiting_beyond_its_own_latency_dates_it_through_its_own_noise():
    from agents.evidence import signals

    # The rise of 80 ms is lost in the noise of the callers' raw view (its spread is that of orders' own p95),
    # but what they wait beyond orders' own latency was 10 ms and is 90 ms from minute 90 (issue #15 round 16:
    # field 2246 gen-0057 / gen-0050, a flag on a quiet callee lost to its entry service at 67, or dated late and
    # a later flag blamed at 80).
    ctx = {"anchor": _T0 + 60 * (_ONSET_MIN + 3), "window": {"start": fmt_ts(_T0), "end": fmt_ts(_T0 + 7200)}}
    found = signals.analyse_metrics(None, ctx, [], series_list=_quiet_callee_rows(90.0))
    wait = [s for s in found["series"] if s["name"] == "caller_latency_p95_ms"]
    assert wait and wait[0]["beyond_own"] and wait[0]["onset"] == fmt_ts(_T0 + 60 * _ONSET_MIN)
    assert found["services"]["orders"]["onset"] == _T0 + 60 * _ONSET_MIN
    # No rise beyond its own latency: nothing, however its own p95 spikes.
    found = signals.analyse_metrics(None, ctx, [], series_list=_quiet_callee_rows(10.0))
    assert not [s for s in found["series"] if s["service"] == "orders"]
    # A busy service's p95 is steady: its callers' view is read as it is.
    busy = [r if r["name"] != "requests_per_s" or r["service"] != "orders" else
            {**r, "points": [[p[0], 50.0] for p in r["points"]]} for r in _quiet_callee_rows(90.0)]
    found = signals.analyse_metrics(None, ctx, [], series_list=busy)
    assert not any(s.get("beyond_own") for s in found["series"])


def test_a_quiet_services_lone_latency_spikes_do_not_date_the_slowdown_after_them():
    import random

    from agents.evidence import signals

    # orders (0.15 req/s): its p95 spikes to seconds in about one healthy minute in twenty; at minutes 82, 83 and
    # 86 three such spikes, then from minute 90 every request is 2.5x slower. Three spikes in five minutes are
    # what that spike rate gives now and then; the slowdown dates from minute 90 (round 16: field 2246 gen-0033,
    # a config change 5 min after such spikes ruled "after" the failure, "no change" stated at 95).

    rng = random.Random(5)
    spikes = {9, 27, 44, 61, 72, 82, 83, 86}
    points = []
    for m in range(120):
        value = 2500.0 if m in spikes else 160.0 * (2.5 if m >= _ONSET_MIN else 1.0) * (1 + rng.gauss(0, 0.1))
        points.append([fmt_ts(_T0 + 60 * m), round(value, 1)])
    rows = [{"service": "orders", "name": "latency_p95_ms", "points": points},
            {"service": "orders", "name": "requests_per_s", "points": [[p[0], 0.15] for p in points]}]
    ctx = {"anchor": _T0 + 60 * (_ONSET_MIN + 3), "window": {"start": fmt_ts(_T0), "end": fmt_ts(_T0 + 7200)}}
    found = signals.analyse_metrics(None, ctx, [], series_list=rows)
    assert found["services"]["orders"]["onset"] == _T0 + 60 * _ONSET_MIN
    # A quiet service's error share keeps the plain rule: its failures come as such lone spikes. So does a latency
    # sampled in a few pockets: a spike rate is no rate over a handful of samples.
    # And so does the latency of a service with no request rate (a broker stalling every other minute).
    times = [(_T0 + 60 * m, 1.0) for m in range(120)]
    rates = {t: 0.15 for t, _ in times}
    assert signals._spiky_latency("latency_p95_ms", times, _T0 + 60 * 75, rates)
    assert signals._spiky_latency("caller_latency_p95_ms", times, _T0 + 60 * 75, rates)
    assert not signals._spiky_latency("error_rate", times, _T0 + 60 * 75, rates)
    assert not signals._spiky_latency("latency_p95_ms", times[60:80:2], _T0 + 60 * 75, rates)
    assert not signals._spiky_latency("latency_p95_ms", times, _T0 + 60 * 75, None)
