"""Hypotheses: combine origin candidates and scored changes into a ranked, evidenced list."""

from __future__ import annotations

from typing import Any

from agents.evidence import anomalies, calibration
from agents.evidence.changes import FAST_FOLLOW_S, OWN_ONSET_ERROR_S
from agents.evidence.signals import SURGE_SHIFT
from agents.evidence.timeutil import parse_ts
from agents.evidence.topology import CallGraph, latency_share

# A change must score above this to beat "no change: the origin itself" (fitted
# on the calibration suite; see bench/README.md).
NULL_CHANGE_SCORE = 0.33
MAX_HYPOTHESES = 6
# An origin whose own new errors name another failing candidate may be that candidate's victim (bench/README.md
# "Victims and confidence"): its hypotheses lose this much score.
BLAME_PENALTY = 1.0
# A silent callee named by an origin with no change to blame ranks this far above the origin's own "no change".
SILENT_MARGIN = 0.05
# Share of an origin's excess error lines naming a silent callee at which its errors are about that callee.
ABOUT_CALLEE_SHARE = 0.6
# A top answer's lead over the runner-up below which it counts as a close call (calibration feature).
CLOSE_MARGIN = 0.5
# A change this long after the onset estimate is ruled "after" by the estimate alone; read without logs nothing
# confirms that ruling (``_late_own_changes``): two samples of the coarsest metrics step we read (60 s) plus the
# step by which a ramp's first sample past a threshold can lag its start.
LATE_UNRULED_S = 180.0
# Read without logs, a change answer with a rival left unruled (``callee_unruled``) is weaker the longer its service
# stayed healthy after it: ``unruled_gap`` is 0 up to changes.FAST_FOLLOW_S before the onset and 1 from
# UNRULED_GAP_FULL_S on (issue #15 round 11: such answers were right 168 times in 171 up to 8 min before the onset,
# 10 in 17 beyond).
UNRULED_GAP_FULL_S = 600.0
# An origin's own fault shows in its resources: a saturation-type series (cpu, memory, connections, pools) this many
# times its baseline, or a utilisation at least OWN_UTIL of its limit; a traffic surge (``signals.SURGE_SHIFT``,
# engine.correlate's capacity test); or an alert on it naming a resource (``_RESOURCE_WORDS``).
OWN_RATIO = 1.5
OWN_UTIL = 0.8
# Read without logs, a change answer's service that slowed to WAIT_RATIO times its baseline latency or more with
# no fault of its own (``_own_fault(waiting=True)``) shows a caller's wait on a callee; when that callee has no metrics
# of its own, it explains the slowdown as well as a change of a kind that acts on the service's own code or runtime
# (WAIT_BLIND_KINDS) does, and the answer is stated no higher than calibration.TIE_CEILING (issue #15 round 12). A
# setting or a schema migration may act on the very calls the service waits on (a pool, a timeout, a locked table),
# so those kinds keep their standing.
WAIT_RATIO = 3.0
WAIT_BLIND_KINDS = ("deploy", "feature_flag", "infra")
_WAIT_KIND_WORDS = {"deploy": "a deploy", "feature_flag": "a flag change", "infra": "an infra change"}
# Topology tiers of a datastore (``_migrating_callers``).
DATASTORE_TIERS = ("datastore", "storage", "data", "database", "db", "cache")
_RESOURCE_WORDS = ("cpu", "memory", "oom", "disk", "heap", "connection pool", "thread pool", "saturat", "throttl")
# What fills while a service waits on a callee (``_own_fault(waiting=True)``).
_WAIT_FILLS = ("pool", "conn", "thread", "queue")


def _category_without_change(origin: dict[str, Any], cor: dict[str, Any]) -> str:
    return "capacity" if origin["service"] in cor.get("capacity_services", []) else "dependency"


def rank(ctx: dict[str, Any], sig: dict[str, Any], cor: dict[str, Any],
         rejected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Build and rank hypotheses, dropping any already rejected by verification.

    Params: ctx, sig, cor — phase outputs; rejected — hypotheses (service, change_id) declined earlier.
    Returns: hypotheses best first, each with rank, statement, service, change_id, category,
    confidence, evidence, counter_evidence and ``score``/``features`` for inspection.
    """
    banned = {(r.get("service"), r.get("change_id")) for r in rejected}
    origins = cor.get("origins", [])[:6]
    if not origins:
        return []
    top_score = origins[0]["score"]
    low = min(o["score"] for o in origins)
    changes = [c for c in cor.get("changes", []) if c["position"] != "after"]
    candidates = []
    for index, origin in enumerate(origins):
        norm = (origin["score"] - low) / max(top_score - low, 1e-6) if len(origins) > 1 else 1.0
        base = origin["score"] - BLAME_PENALTY * _victim_features(origin, origins)["blames_failing"]
        own = sorted((c for c in changes if c["service"] == origin["service"]), key=lambda c: -c["score"])
        for change in own[:2]:
            candidates.append(_hyp(origin, change, base + 2.0 * change["score"], norm))
        candidates.append(_hyp(origin, None, base + 2.0 * NULL_CHANGE_SCORE, norm))
        if not own or own[0]["score"] < NULL_CHANGE_SCORE:
            candidates.extend(_silent_callees(origin, cor.get("origins", []), base + 2.0 * NULL_CHANGE_SCORE, norm))
            candidates.extend(_sole_unseen_callee(origin, ctx, sig, cor, base + 2.0 * NULL_CHANGE_SCORE, norm))
        elif own[0].get("kind") == "deploy" and _errors_about_callee(origin, sig, cor.get("origins", [])):
            # A code deploy breaks the service's own paths; when most of its new errors are failed calls to a
            # silent callee, the callee is the likelier cause (a config, flag or infra change on the caller can
            # break those calls itself, so only a deploy yields).
            candidates.extend(_silent_callees(origin, cor.get("origins", []), base + 2.0 * own[0]["score"], norm))
        if index == 0 and (not own or own[0]["score"] < NULL_CHANGE_SCORE):
            candidates.extend(_migrating_callers(origin, changes, ctx, sig, cor, base + 2.0 * NULL_CHANGE_SCORE,
                                                 norm))
        if index == 0:
            # Changes on the origin's neighbours: a caller's bad migration or config can break a datastore.
            for change in changes:
                if change["service"] != origin["service"] and change["service"] in cor.get("neighbours", []):
                    candidates.append(_hyp(origin, change, base + 2.0 * change["score"] - 1.0, norm,
                                           service=change["service"]))
    candidates = [c for c in candidates if (c["service"], c["change_id"]) not in banned]
    seen, unique = set(), []
    for cand in sorted(candidates, key=lambda c: -c["score"]):
        key = (cand["service"], cand["change_id"])
        if key not in seen:
            seen.add(key)
            unique.append(cand)
    unique = unique[:MAX_HYPOTHESES]
    # Changes verification declined, by service: a "no change" answer on that service leaves them open.
    declined = {str(r.get("service")): str(r.get("change_id")) for r in rejected if r.get("change_id")}
    for position, hyp in enumerate(unique):
        hyp["rank"] = position + 1
        _finish(hyp, ctx, sig, cor, unique, position, declined=declined)
    return unique


def _migrating_callers(origin: dict[str, Any], changes: list[dict[str, Any]], ctx: dict[str, Any],
                       sig: dict[str, Any], cor: dict[str, Any], score: float, norm: float) -> list[dict[str, Any]]:
    """Read without logs: a schema migration on a caller of the origin, just above the origin's own "no change".

    A migration runs against a datastore: a datastore (its topology tier says so; with no tier given, a service
    that calls nothing) that turns busy (a saturation series of its own rose) with no change of its own while a
    caller that is its victim (``victim_of``) has just run a migration that would explain that caller's failure
    (score above ``NULL_CHANGE_SCORE``) is busy because of that migration (bench/README.md, "Migrating callers";
    issue #15 round 7: the alt writer's db-busy migrations). A service that is no datastore fails on its own however its
    callers migrate (alt3-054: a migrating caller of a service whose connections ran out). With logs, the store's
    own error text and its callers' say what broke (alt15-037: a leaf service's expired certificate, its caller's
    migration blamed at 99 %), so the rule is for log-less reading only.
    """
    if not _regime_features(sig, 0.0)["no_logs"]:
        return []
    graph = CallGraph(ctx.get("topology"))
    tier = graph.tiers.get(origin["service"])
    store = tier.lower() in DATASTORE_TIERS if tier else origin["service"] in graph.calls and \
        not graph.calls[origin["service"]]
    if not store:
        return []
    # A migration loads the store: it turns busy (a resource series of its own rose: CPU, connections, a pool).
    # A store that only fails its requests, nothing of its own busier, is down on its own, whatever its callers
    # ran (issue #15 round 10: hard 2022 / 2023, field 2234 — a cache or search store returning errors, a
    # caller's harmless migration minutes earlier blamed at 62–78).
    if not any(series["service"] == origin["service"] and anomalies.is_saturation(series["name"])
               for series in sig.get("series", [])):
        return []
    # A store busy because its traffic surged (engine.correlate's capacity test) is loaded by its callers' requests,
    # which a migration does not multiply (issue #15 round 16: hard 2037 gen-0013 with traces halved, cassandra's
    # requests 133 -> 395 req/s, a caller's rename migration blamed at 75).
    if origin["service"] in cor.get("capacity_services", []):
        return []
    victims = {o["service"] for o in cor.get("origins", []) if origin["service"] in o.get("victim_of", [])}
    return [_hyp(origin, change, score + SILENT_MARGIN, norm, service=change["service"])
            for change in changes if change.get("kind") == "db_migration" and change["service"] in victims
            and change["score"] >= NULL_CHANGE_SCORE]


def _errors_about_callee(origin: dict[str, Any], sig: dict[str, Any], origins: list[dict[str, Any]]) -> bool:
    """Whether most of the origin's excess error lines name one silent callee it is a victim of."""
    svc = origin["service"]
    excess = float(sig.get("services", {}).get(svc, {}).get("error_excess", 0.0))
    named = sig.get("mentions", {}).get(svc, {})
    return excess > 0 and any(float(named.get(o["service"], 0.0)) >= ABOUT_CALLEE_SHARE * excess
                              for o in _silent_named(origin, origins) if o["service"] in origin.get("victim_of", []))


def _silent_named(origin: dict[str, Any], origins: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Other candidates the origin's errors name that have no telemetry of their own (no onset)."""
    return [o for o in origins if o["service"] != origin["service"] and origin["service"] in o.get("named_by", [])
            and o.get("onset") is None]


def _silent_callees(origin: dict[str, Any], origins: list[dict[str, Any]], score: float,
                    norm: float) -> list[dict[str, Any]]:
    """Hypotheses for the callees with no telemetry of their own that the origin's errors name, just above it.

    A third-party API or an unwatched datastore shows only through its callers: when the origin's errors name
    one and no change of the origin's own explains them, the named callee is the likelier cause
    (bench/README.md, "External dependencies").
    """
    # What we know of such a callee is its namer's failure: its confidence rests on the namer's strength.
    namer = float(origin.get("strength", 0.0))
    # Only a callee the origin is a victim of (topology.locate_origin): a service with a clear fault of its own
    # (its CPU at the limit) is no victim, whatever its errors say about a callee nobody can see into (issue #15
    # round 3: a saturated checkout-svc lost to the otel-collector its span exports named, at 97 %).
    victim_of = set(origin.get("victim_of", []))
    return [_hyp({**other, "strength": max(float(other.get("strength", 0.0)), namer)}, None, score + SILENT_MARGIN, norm)
            for other in _silent_named(origin, origins) if other["service"] in victim_of]


def _sole_unseen_callee(origin: dict[str, Any], ctx: dict[str, Any], sig: dict[str, Any], cor: dict[str, Any],
                        score: float, norm: float) -> list[dict[str, Any]]:
    """Read without logs: the one callee with no metrics of its own, just above an origin that shows only symptoms.

    An origin with no change to blame whose errors and latency rose while nothing of its own moved (no resource
    near its limit or far above its baseline, no traffic surge, no alert naming a resource) shows what a caller of a
    failing dependency shows. With logs its error text would name the callee (``_silent_callees``); without them the
    one callee nobody can see into (a third-party API, an unwatched store) is the likelier cause. With two or more
    such callees nothing says which, and the origin keeps its place (issue #15 round 6, bench/README.md).
    """
    if not _regime_features(sig, 0.0)["no_logs"]:
        return []
    unseen = cor.get("unseen_callees", {}).get(origin["service"], [])
    if len(unseen) != 1 or _own_fault(origin["service"], ctx, sig):
        return []
    callee = {"service": unseen[0], "strength": float(origin.get("strength", 0.0)), "onset": None,
              "explains": [origin["service"], *origin.get("explains", [])], "named_by": [], "victim_of": [],
              "through": origin["service"]}
    return [_hyp(callee, None, score + SILENT_MARGIN, norm)]


def _own_fault(svc: str, ctx: dict[str, Any], sig: dict[str, Any], *, waiting: bool = False) -> str | None:
    """What shows a fault of the service's own (``_sole_unseen_callee``), or None when only symptoms moved.

    ``waiting`` — leave out what fills while a service waits on a callee (``_WAIT_FILLS``: its threads, connections,
    pools and queues hold the requests stuck on the callee), so only its own work (CPU, memory, a traffic surge)
    counts (``_unseen_wait``).
    """
    info = sig.get("services", {}).get(svc, {})
    if float(info.get("traffic_shift", 0.0)) >= SURGE_SHIFT:
        return "its traffic surged"
    for series in sig.get("series", []):
        if series["service"] != svc or not anomalies.is_saturation(series["name"]):
            continue
        if waiting and any(word in series["name"].lower() for word in _WAIT_FILLS):
            continue
        before, after = float(series["baseline"]), float(series["level_after"])
        if after >= OWN_RATIO * max(before, 1e-9) or ("util" in series["name"] and after >= OWN_UTIL):
            return f"{series['name']} {before:.3g} → {after:.3g}"
    words = [w for w in _RESOURCE_WORDS if not (waiting and any(fill in w for fill in _WAIT_FILLS))]
    for alert in ctx.get("alerts", []):
        title = str(alert.get("title") or "").lower()
        if alert.get("service") == svc and any(word in title for word in words):
            return f"alert: {str(alert.get('title'))[:80]}"
    return None


def _trouble_before(change: dict[str, Any] | None, sig: dict[str, Any]) -> tuple[str, str, float] | None:
    """The first anomalous series of a blamed change's service when it began well before the change, else None.

    A change counts as "before" the onset by the incident's estimate, but its own service may have been going wrong
    for minutes already, however faintly (a connection pool filling 10 min before a cache-TTL tweak that landed with
    the latency spike): then the change may be a bystander of a failure of the service's own, and the answer leaves
    that rival open (issue #15 round 6; the same margin as changes.OWN_ONSET_ERROR_S). Returns (ref, name, seconds).
    """
    if change is None:
        return None
    landed = parse_ts(change.get("ts"))
    if landed is None:
        return None
    first: tuple[str, str, float] | None = None
    for series in sig.get("series", []):
        started = parse_ts(series.get("onset")) if series.get("service") == change.get("service") else None
        if started is not None and landed - started > OWN_ONSET_ERROR_S and (first is None or landed - started > first[2]):
            first = (str(series["ref"]), str(series["name"]), landed - started)
    return first


def _hyp(origin: dict[str, Any], change: dict[str, Any] | None, score: float, norm: float,
         service: str | None = None) -> dict[str, Any]:
    return {"service": service or origin["service"], "change_id": change["id"] if change else None,
            "category": change["kind"] if change else None, "score": round(score, 4), "origin": origin,
            "change": change, "origin_norm": norm}


def _finish(hyp: dict[str, Any], ctx: dict[str, Any], sig: dict[str, Any], cor: dict[str, Any],
            ranked: list[dict[str, Any]], position: int, *, declined: dict[str, str] | None = None) -> None:
    origin, change = hyp.pop("origin"), hyp.pop("change")
    if hyp["category"] is None:
        hyp["category"] = _category_without_change(origin, cor)
    evidence, counter = [], []
    svc = hyp["service"]
    evidence.extend(_signature_evidence(svc, sig.get("services", {}).get(svc, {}).get("signature") or {}))
    collapse = sig.get("services", {}).get(svc, {}).get("collapse")
    if collapse:
        evidence.append({"source": "metrics", "ref": f"metrics:{svc}/requests_per_s",
                         "summary": _collapse_summary(svc, collapse)})
    for series in sig.get("series", []):
        if series["service"] == svc:
            evidence.append({"source": "metrics", "ref": series["ref"],
                             "summary": (f"its callers' wait beyond its own latency ({series['name']} less its own)"
                                         if series.get("beyond_own") else series["name"])
                                        + f" left its baseline at {series['onset']} "
                                        f"({series['baseline']:.4g} → {series['level_after']:.4g})"
                                        + (f"; samples were missing before it, so it may have begun any time "
                                           f"after {series['gap_since']}" if series.get("gap_since") else "")})
    for tpl in sig.get("templates", []):
        if tpl["service"] == svc and tpl["kind"] in ("new", "burst") and tpl["level"] in ("WARN", "ERROR", "FATAL"):
            evidence.append({"source": "logs", "ref": tpl["ref"],
                             "summary": f"{tpl['kind']} {tpl['level']} template after onset ×{tpl['after']}: "
                                        f"{tpl['template'][:120]}"})
        elif tpl["service"] == svc and tpl["kind"] == "skipped":
            evidence.append({"source": "logs", "ref": tpl["ref"],
                             "summary": f"statement no longer reached (×{tpl['before']} before, ×{tpl['after']} "
                                        f"since) while its usual predecessor logged ×{tpl['leader_after']}: "
                                        f"{tpl['template'][:120]}"})
        elif tpl["service"] == svc and tpl["kind"] == "gone":
            evidence.append({"source": "logs", "ref": tpl["ref"],
                             "summary": f"template stopped after onset (×{tpl['before']} before): "
                                        f"{tpl['template'][:120]}"})
    evidence = evidence[:6]
    for caller in origin.get("named_by", []):
        evidence.append({"source": "logs", "ref": f"logs:{caller}",
                         "summary": f"{caller} errors name {origin['service']}"})
    if origin.get("through"):
        through = hyp["via"] = origin["through"]
        evidence.append({"source": "metrics", "ref": f"topology:{through}",
                         "summary": f"{through} calls {svc}, which has no metrics of its own; {through}'s errors and "
                                    f"latency rose with nothing of its own (no resource at its limit, no surge, no "
                                    f"change): what a caller of a failing dependency shows"})
        counter.append({"source": "metrics", "ref": f"topology:{svc}",
                        "summary": f"without logs or metrics of {svc} nothing shows it failed; {through} may have "
                                   f"failed on its own"})
    # An answer nothing of which is seen (no metrics of its own, while others have them): what it rests on is its
    # callers' failure and what their errors say of it, and a caller may have failed on its own — a rival left open
    # (issue #15 round 12: s3, named by the errors of a service whose connection pool had been filling for 10 min,
    # stated at 85).
    metered = sig.get("services", {})
    silent = any(v.get("has_metrics") for v in metered.values()) and not metered.get(svc, {}).get("has_metrics") \
        and origin.get("onset") is None
    if silent and not origin.get("through") and origin.get("named_by"):
        counter.append({"source": "metrics", "ref": f"metrics:{svc}",
                        "summary": f"{svc} has no metrics of its own: only the errors of "
                                   f"{', '.join(origin['named_by'][:3])} say it failed, and they may have failed on "
                                   f"their own"})
    if origin.get("explains"):
        evidence.append({"source": "metrics", "ref": f"topology:{origin['service']}",
                         "summary": "explains the anomalies of its callers: " + ", ".join(origin["explains"][:6])})
    for blamed in _blamed(origin, cor.get("origins", [])):
        counter.append({"source": "logs", "ref": f"logs:{origin['service']}",
                        "summary": f"{origin['service']} errors name {blamed}, which failed no later"})
    for victim in origin.get("victim_of", []):
        collapsed = sig.get("services", {}).get(victim, {}).get("collapse")
        if collapsed and origin["service"] in collapsed.get("callers", []):
            # Issue #15: the entry service's own errors are its callee's failures passed on.
            counter.append({"source": "metrics", "ref": f"metrics:{victim}/requests_per_s",
                            "summary": f"{origin['service']}'s errors are explained by {victim}: "
                                       + _collapse_summary(victim, collapsed)})
            continue
        waited = latency_share(sig.get("services", {}).get(origin["service"], {}),
                               sig.get("services", {}).get(victim, {}))
        if waited:
            # A caller waits on its callee: its delay is mostly the callee's (topology._latency_explains).
            name, mine, theirs = waited
            counter.append({"source": "metrics", "ref": f"metrics:{victim}/{name}",
                            "summary": f"{origin['service']} calls {victim}, which is anomalous as early and got "
                                       f"{theirs:.0f} ms slower of the {mine:.0f} ms {origin['service']} did: most "
                                       f"of {origin['service']}'s delay is waiting on {victim}"})
            continue
        counter.append({"source": "metrics", "ref": f"topology:{victim}",
                        "summary": f"{origin['service']} calls {victim}, which is anomalous as early"})
    if change is not None:
        evidence.append({"source": "changes", "ref": change["id"], "summary": "; ".join(change["reasons"])})
        for item in change["against"]:
            counter.append({"source": "changes", "ref": change["id"], "summary": item})
    for other in cor.get("changes", []):
        if other["position"] == "after" and other["service"] == svc:
            # Named: under another change's hypothesis, "lands 671 s after the onset" reads as about that one.
            counter.append({"source": "changes", "ref": other["id"],
                            "summary": f"{other['kind'] or 'change'} {other['id']}: " + "; ".join(other["against"])})
    for alert in ctx.get("alerts", [])[:20]:
        if alert.get("service") == svc:
            evidence.append({"source": "alerts", "ref": str(alert.get("id")), "summary": str(alert.get("title"))[:160]})
    if change is None:
        best = max((c for c in cor.get("changes", []) if c["service"] == svc and c["position"] != "after"),
                   key=lambda c: c["score"], default=None)
        if best is not None:
            counter.append({"source": "changes", "ref": best["id"],
                            "summary": f"a {best['kind']} on {svc} preceded the onset (score {best['score']:.2f})"})
    next_score = ranked[position + 1]["score"] if position + 1 < len(ranked) else hyp["score"] - 1.0
    origins = cor.get("origins", [])
    origin_margin = 0.0
    if origins and origins[0]["service"] == origin["service"] and len(origins) > 1:
        origin_margin = origins[0]["score"] - origins[1]["score"]
    features = {
        "margin": min(1.5, hyp["score"] - next_score) if position == 0 else -0.5,
        "origin_strength": origin.get("strength", 0.0),
        "origin_margin": min(1.5, origin_margin),
        "has_change": 1.0 if change else 0.0,
        "change_score": change["score"] if change else 0.0,
        "named": 1.0 if origin.get("named_by") else 0.0,
        "explains": min(1.0, len(origin.get("explains", [])) / 3),
        "degraded": min(1.0, len(ctx.get("missing_sources", [])) / 2),
    }
    features.update(_regime_features(sig, features["margin"]))
    features.update(_victim_features(origin, origins))
    unseen = _unseen_callees(origin, cor, features["no_logs"])
    early = [c for c in _early_callees(origin, cor, features["no_logs"]) if c not in origin.get("victim_of", [])]
    features["callee_unruled"] = 1.0 if features["victim"] or unseen else 0.0
    features["silent_answer"] = 1.0 if silent else 0.0
    features["callee_early"] = 1.0 if early else 0.0
    features["unruled_gap"] = _unruled_gap(change, features)
    if features["unruled_gap"]:
        counter.append({"source": "changes", "ref": change["id"],
                        "summary": f"{change['service']} stayed healthy for {int(float(change['dt_s']) // 60)} min "
                                   f"after {change['id']}, and a callee it depends on may have failed on its own: "
                                   f"without logs nothing tells the two apart"})
    # Read without logs, a flag's rollout set against its service's failing share is the one check tying it to the
    # failure beyond its timing (no error text begins after it): a share that does not fit weakens it (calibration).
    features["flag_mismatch"] = 1.0 if features["no_logs"] and change and float(change.get("share_fit", 0.0)) < 0 \
        else 0.0
    wait = _unseen_wait(origin, change, ctx, sig, unseen)
    features["callee_wait"] = 1.0 if wait else 0.0
    if wait:
        counter.append({"source": "metrics", "ref": wait[0],
                        "summary": f"{origin['service']} got {wait[1]:.1f}x slower with its own CPU and memory short "
                                   f"of their limits, as a caller waiting on a callee does; {', '.join(unseen[:2])} "
                                   f"below it has no metrics of its own and may have failed first, and "
                                   f"{_WAIT_KIND_WORDS[change['kind']]} does not explain a wait on it better"})
    late = _late_own_changes(svc, change, cor, features["no_logs"])
    features["change_unruled"] = 1.0 if late else 0.0
    features["own_after_s"] = min((-float(c["dt_s"]) for c in late), default=0.0)
    # "No change" on a service whose own change verification declined (a flag's rollout against an error share,
    # errors seen before it): the change scored as a cause and only that one check ruled it out, so it stays a
    # rival (issue #15 round 6: a 25 % flag declined on an error share inflated by a request collapse, "no change"
    # then stated at 94).
    trouble = _trouble_before(change, sig)
    features["change_late"] = 1.0 if trouble else 0.0
    if trouble:
        counter.append({"source": "metrics", "ref": trouble[0],
                        "summary": f"{change['service']} showed trouble ({trouble[1]}) {int(trouble[2] // 60)} min "
                                   f"before {change['id']} landed: it may have been failing on its own"})
    for other in origin.get("unmapped_earlier", [])[:2]:
        counter.append({"source": "metrics", "ref": f"metrics:{other}",
                        "summary": f"there is no service map (topology) and {origin['service']} ships no logs: "
                                   f"{other} went bad earlier and may be the callee it fails on"})
    unmapped = list(cor.get("unmapped_rivals", {}).get(origin["service"], []))
    features["map_unruled"] = 1.0 if unmapped else 0.0
    if unmapped:
        counter.append({"source": "metrics", "ref": f"metrics:{unmapped[0]}",
                        "summary": f"there is no service map (topology): {', '.join(unmapped[:3])} went bad as early "
                                   f"as {origin['service']}, and nothing shows which calls which"})
    refused = (declined or {}).get(svc) if change is None else None
    features["change_declined"] = 1.0 if refused else 0.0
    if refused:
        counter.append({"source": "changes", "ref": refused,
                        "summary": f"{refused} on {svc} was ruled out by one verification check only; it may still "
                                   f"be the cause"})
    for callee in unseen[:3]:
        counter.append({"source": "metrics", "ref": f"topology:{origin['service']}",
                        "summary": f"{origin['service']} calls {callee}, which has no metrics of its own; without "
                                   f"logs nothing shows whether {callee} failed first"})
    for callee in early[:3]:
        theirs = sig.get("services", {}).get(callee, {})
        when = ("whose metrics went missing across the report and which was failing when they came back"
                if theirs.get("onset") is None and theirs.get("onset_unseen") else "which is anomalous from as early")
        counter.append({"source": "metrics", "ref": f"topology:{callee}",
                        "summary": f"{origin['service']} calls {callee}, {when}; without logs nothing shows which "
                                   f"of the two failed first"})
    for other in late[:2]:
        counter.append({"source": "changes", "ref": other["id"],
                        "summary": f"a {other['kind']} on {svc} landed {int(-other['dt_s'])} s after the estimated "
                                   f"onset; without logs nothing shows whether {svc} failed before it or because "
                                   f"of it"})
    hyp["features"] = {k: round(v, 4) for k, v in features.items()}
    hyp["confidence"] = calibration.confidence(features)
    hyp["evidence"] = evidence
    hyp["counter_evidence"] = counter
    hyp["statement"] = _statement(hyp, change, origin)
    reported = ctx.get("trigger_service")
    if reported and reported != svc and reported in origin.get("explains", []):
        # The service the report is about is a victim here: say so, with why (issue #15).
        entry = next((o for o in origins if o["service"] == reported), None)
        why = "its errors and latency follow " + svc + "'s"
        if entry is not None and svc in entry.get("victim_of", []):
            why = f"it calls {svc}, which failed as early"
        hyp["statement"] += f" {reported}, where the report came from, is a victim: {why}."
        evidence.append({"source": "metrics", "ref": f"topology:{reported}",  # spec sources only
                         "summary": f"{reported} (reported) is a victim of {svc}: {why}"})


def _collapse_summary(svc: str, info: dict[str, Any]) -> str:
    """One line on a callee's request-rate collapse (traffic.collapses)."""
    why = []
    if info.get("wait_before") is not None and info.get("wait_after") is not None:
        why.append(f"its callers wait {info['wait_before']:.0f} → {info['wait_after']:.0f} ms for it")
    if info.get("error_before") is not None and info.get("error_after") is not None \
            and info["error_after"] > info["error_before"]:
        # Only a share that rose says anything ("its failed share 0 → 0" read as evidence of failure).
        why.append(f"its failed share {info['error_before']:.3g} → {info['error_after']:.3g}")
    return (f"the request rate of {svc} fell {info['before']:.3g} → {info['after']:.3g} req/s while its callers "
            f"({', '.join(info['callers'][:3])}) kept sending" + (f"; {'; '.join(why)}" if why else "")
            + ": their requests stop completing there")


def _regime_features(sig: dict[str, Any], margin: float) -> dict[str, float]:
    """The evidence regime (bench/README.md, "Calibration by evidence regime"): a world read without logs.

    ``no_logs`` — not one log line in the window (none shipped, or the source failed): the ranking rests on
    metrics (and topology) alone. ``no_logs_close`` — the same, times how close the runner-up came
    (1 at a margin of 0, 0 from a margin of 0.5 on): without logs a narrow lead is the usual sign of a wrong
    answer (in the fitting pool without logs 105 of 121 top answers with a lead under 0.5 were right, 315 of 322
    with a wider one). ``sparse`` — the share of their own sampling grid the window's series left empty
    (1 − signals' ``coverage``): scrapes that failed, minutes with no sampled span, trace-derived series in
    pockets; every onset, and so every ordering of services, is then less sure (issue #15 round 14: without logs,
    right 98.2 % of the time on the development suites' full series, 93.3 % with request-level samples halved).
    """
    logs = sig.get("logs")
    absent = 1.0 if isinstance(logs, dict) and not logs.get("total") else 0.0
    close = 1.0 if margin < 0 else max(0.0, CLOSE_MARGIN - margin) / CLOSE_MARGIN
    sparse = max(0.0, 1.0 - float(sig.get("coverage", 1.0)))
    return {"no_logs": absent, "no_logs_close": absent * close, "sparse": sparse}


def _unruled_gap(change: dict[str, Any] | None, features: dict[str, float]) -> float:
    """How long, past changes.FAST_FOLLOW_S, a change answer's service stayed healthy after it (0..1), when read
    without logs a rival is left unruled: a change that broke nothing for minutes on a service whose callee may as
    well have failed on its own (an external API, a store anomalous as early) is a weak cause (calibration)."""
    if change is None or not features.get("no_logs") or not features.get("callee_unruled"):
        return 0.0
    lead = float(change.get("dt_s") or 0.0)
    return round(max(0.0, min(1.0, (lead - FAST_FOLLOW_S) / (UNRULED_GAP_FULL_S - FAST_FOLLOW_S))), 4)


def _unseen_wait(origin: dict[str, Any], change: dict[str, Any] | None, ctx: dict[str, Any], sig: dict[str, Any],
                 unseen: list[str]) -> tuple[str, float] | None:
    """Read without logs: (ref, ratio) of the service's slowest-grown own latency series when a change answer's
    service slowed as a caller waiting on a callee with no metrics of its own does, else None.

    ``unseen`` comes from ``_unseen_callees`` (empty with logs). The service slowed to WAIT_RATIO times its baseline
    or more with no fault of its own (``_own_fault(waiting=True)``: no CPU or memory at its limit, no traffic surge,
    no resource alert; its threads and pools fill as it waits), and the change is a deploy, a flag or an infra change
    (WAIT_BLIND_KINDS): it explains the service's own faults, not a wait on a callee nobody can see into — which fails
    the same way on its own (issue #15 round 12: sendgrid, stripe-api, maps-provider below callers with a harmless
    change minutes before, blamed at 71–80 without logs).
    """
    if change is None or not unseen or str(change.get("kind")) not in WAIT_BLIND_KINDS:
        return None
    if _own_fault(origin["service"], ctx, sig, waiting=True):
        return None
    best: tuple[str, float] | None = None
    for series in sig.get("series", []):
        # Its requests' latency (a GC pause series in ms is its own memory's trouble, not a wait).
        name = series["name"]
        if series["service"] != origin["service"] or "latency" not in name.lower() \
                or not anomalies.is_own_latency(name):
            continue
        ratio = float(series["level_after"]) / max(float(series["baseline"]), 1e-9)
        if ratio >= WAIT_RATIO and (best is None or ratio > best[1]):
            best = (str(series["ref"]), ratio)
    return best


def _unseen_callees(origin: dict[str, Any], cor: dict[str, Any], no_logs: float) -> list[str]:
    """Callees of the origin that nothing in a log-less window can rule out: they have no metrics of their own.

    With logs, the origin's error text would name such a callee failing (``names_silent``, ``victim_of``); read
    without logs, a third-party API or an unwatched store below the origin could fail exactly as the origin
    seems to, and the ranking cannot tell (issue #15 round 3: twilio below sms-svc, maps-provider below ledger).
    """
    if not no_logs:
        return []
    return list(cor.get("unseen_callees", {}).get(origin["service"], []))


def _early_callees(origin: dict[str, Any], cor: dict[str, Any], no_logs: float) -> list[str]:
    """Callees of the origin anomalous from as early as it, however faint, when read without logs.

    A faint callee does not make the origin its victim (topology: EXPLAIN_SHARE), but without logs nothing says
    which failed first: a cache slowing down shows as latency only while its caller fails loudly (issue #15 round 4:
    memcached below ledger-srv, the caller's deploy blamed at 94 %). With logs, the caller's error text would name it.
    """
    if not no_logs:
        return []
    return list(cor.get("early_callees", {}).get(origin["service"], []))


def _late_own_changes(svc: str, change: dict[str, Any] | None, cor: dict[str, Any],
                      no_logs: float) -> list[dict[str, Any]]:
    """Changes on the answer's own service ruled "after" by timing alone, close enough that timing cannot rule.

    A change landing up to ``LATE_UNRULED_S`` after the estimated onset is ruled out only by that estimate, at the
    metrics' resolution (a 30-60 s step, an onset dated by the first sample past a robust threshold). With logs,
    new errors right after it would have admitted it (changes.score_change); read without logs nothing can, so it
    stays a rival the answer has not ruled out (issue #15 round 5: alt12-012, a change 80 s after its service's
    onset estimate, the service blamed "with no change" at 84 %).
    """
    if not no_logs:
        return []
    named = change["id"] if change else None
    return sorted((c for c in cor.get("changes", []) if c["service"] == svc and c["position"] == "after"
                   and c["id"] != named and c.get("dt_s") is not None and 0 < -float(c["dt_s"]) <= LATE_UNRULED_S),
                  key=lambda c: -float(c["dt_s"]))


def _victim_features(origin: dict[str, Any], origins: list[dict[str, Any]]) -> dict[str, float]:
    """Signs that the origin is itself a victim (features for calibration; diagnostic ones are not weighed).

    ``blames_failing`` — the origin's own new errors name another candidate whose own telemetry shows a failure
    (an onset) no later than the origin's: the origin may be that service's victim, so its rank is less sure.
    ``names_silent`` — its errors name a candidate with no telemetry of its own (an external API, an unmonitored
    store): it lowers the confidence (5 of 7 such top answers right on the calibration pool), and the ranking
    puts that callee just above the origin when no change of the origin's own explains it (``_silent_callees``). ``victim`` — it calls a candidate anomalous as
    early (topology ``victim_of``), already a score penalty; reported only.
    """
    return {"blames_failing": 1.0 if _blamed(origin, origins) else 0.0,
            "names_silent": 1.0 if _silent_named(origin, origins) else 0.0,
            "victim": 1.0 if origin.get("victim_of") else 0.0}


def _blamed(origin: dict[str, Any], origins: list[dict[str, Any]]) -> list[str]:
    """Other candidates the origin's own errors name whose telemetry failed no later than the origin's did."""
    svc, onset = origin["service"], origin.get("onset")
    # A callee that only broke after the origin did is not its cause.
    return [o["service"] for o in origins if o["service"] != svc and svc in o.get("named_by", [])
            and o.get("onset") is not None and (onset is None or o["onset"] <= onset)]


# Evidence line of each fault signature (engine._add_signatures): (key, source, ref suffix, summary).
_SIGNATURE_LINES: tuple[tuple[str, str, Any, Any], ...] = (
    ("wait_gap", "metrics", lambda v: "caller_latency",
     lambda svc, v: f"callers wait {v['rise']:.0f} ms longer for {svc} than before ({v['before']:.0f} → "
                    f"{v['after']:.0f} ms beyond its own latency), {v['ratio']:.0f}x the typical rise: "
                    f"a delay on the path to it"),
    ("first_error", "logs", lambda v: "first-errors",
     lambda svc, v: f"{svc} wrote the first ERROR line of {v['after']} traces around the report "
                    f"({v['expected']:.1f} expected from earlier traces): failures begin there"),
    ("skipped_in_traces", "logs", lambda v: "skipped-in-traces",
     lambda svc, v: f"in {v['traces']} traces {svc} logged '{v['leader'][:60]}' but only {v['followed']} times its "
                    f"usual follower '{v['follower'][:60]}' (earlier {v['earlier_share']:.0%} of traces): "
                    f"a code region no longer reached"),
    ("unreached", "logs", lambda v: "unreached-in-traces",
     lambda svc, v: f"{v['caller']} no longer reaches {svc} between '{v['leader'][:50]}' and '{v['resume'][:50]}': "
                    f"{v['reached']} of {v['traces']} traces did ({v['expected']:.1f} expected from earlier traces)"),
    ("saturation", "metrics", lambda v: v["metric"],
     lambda svc, v: f"{v['metric']} of {svc} reached {v['peak']:.2f} of its limit (earlier {v['before']:.2f})"),
)


def _signature_evidence(svc: str, signature: dict[str, Any]) -> list[dict[str, str]]:
    """Evidence items for the fault signatures of one service (engine._add_signatures), clearest first."""
    items = []
    for key, source, ref, summary in _SIGNATURE_LINES:
        value = signature.get(key) or {}
        if value.get("strength"):
            items.append((value["strength"], {"source": source, "ref": f"{source}:{svc}/{ref(value)}",
                                              "summary": summary(svc, value)}))
    return [item for _, item in sorted(items, key=lambda pair: -pair[0])]


def _statement(hyp: dict[str, Any], change: dict[str, Any] | None, origin: dict[str, Any]) -> str:
    svc = hyp["service"]
    callers = origin.get("explains", [])
    spread = f"; its callers {', '.join(callers[:4])} degraded as a result" if callers else ""
    if change is not None:
        return (f"{change['kind'].replace('_', ' ')} {change['id']} on {change['service']} broke {origin['service']} "
                f"({'; '.join(change['reasons'][:2])}){spread}.")
    if hyp["category"] == "capacity":
        return f"{svc} saturated under load (no change explains it){spread}."
    return f"{svc} failed on its own, with no recorded change to blame{spread}."
