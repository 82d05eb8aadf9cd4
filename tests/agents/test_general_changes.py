"""Generalisation (issue #3): time links a change to the incident; verification searches templates, not prefixes."""

import json

import yaml

from agents.evidence import verify
from agents.evidence.changes import score_change
from agents.evidence.ranking import NULL_CHANGE_SCORE
from agents.evidence.timeutil import fmt_ts, parse_ts
from sandbox.tools import WorldTools

ONSET = parse_ts("2026-03-01T12:00:00Z")


def _score(change, ts, *, firsts=(), onset=ONSET):
    return score_change(change, change_ts=ts, onset=onset, origin_rank={"pay": 1.0}, neighbours={"web"},
                        new_error_after={"pay": list(firsts)}, failing_share={})


def test_an_old_change_on_the_origin_does_not_beat_no_change():
    # A harmless deploy an hour before a traffic surge saturates the same service is history, not cause.
    old = _score({"id": "c1", "service": "pay", "kind": "deploy"}, ONSET - 3600, firsts=[ONSET + 30])
    assert old["score"] < NULL_CHANGE_SCORE and old["against"]
    close = _score({"id": "c2", "service": "pay", "kind": "deploy"}, ONSET - 240, firsts=[ONSET + 30])
    assert close["score"] > 2 * NULL_CHANGE_SCORE
    assert any("begin right after it" in reason for reason in close["reasons"])


def test_a_change_just_after_an_early_onset_estimate_counts_when_its_service_errs_only_after_it():
    change = {"id": "c1", "service": "pay", "kind": "config"}
    admitted = _score(change, ONSET + 200, firsts=[ONSET + 260, ONSET + 300])
    assert admitted["position"] == "before" and admitted["score"] > NULL_CHANGE_SCORE
    # A rollback: the service was failing before it, so it is after the onset, whatever the estimate.
    rollback = _score(change, ONSET + 200, firsts=[ONSET + 20])
    assert rollback["position"] == "after" and rollback["score"] == 0.0
    # Far after the estimate, or on a service with no new errors: after.
    assert _score(change, ONSET + 1800, firsts=[ONSET + 1830])["position"] == "after"
    assert _score(change, ONSET + 200)["position"] == "after"


def test_template_needles_skip_a_shared_structured_head():
    template = '{"level": "error", "msg": "query failed", "error": "slow query: <*> ms UPDATE orders SET ..."}'
    example = '{"level": "error", "msg": "query failed", "error": "slow query: 18705 ms UPDATE orders SET ..."}'
    needles = verify.template_needles(template, example)
    assert needles[0] == '{"level": "error", "msg": "query failed", "error": "slow query:'
    assert all(needle in example for needle in needles)
    assert verify.template_needles("<*> <*>", "abc def") == ["abc def"]


def test_template_needles_of_a_stack_trace_are_verbatim_runs_of_its_lines():
    template = ("request failed: TypeError: Cannot read properties of undefined (reading 'code') "
                "at handle (<*>:<*>:<*>) at processTicks (node:internal/process/task_queues:<*>:<*>) [status=<*>]")
    example = ("request failed: TypeError: Cannot read properties of undefined (reading 'code')\n"
               "    at handle (/srv/app.js:204:17)\n    at processTicks (node:internal/process/task_queues:95:5) [status=500]")
    needles = verify.template_needles(template, example)
    assert needles[0] == "request failed: TypeError: Cannot read properties of undefined (reading 'code')"
    assert all(needle in example and len(needle) >= verify.MIN_NEEDLE_CHARS for needle in needles)
    assert "[status=" not in needles  # too short to tell one template from another


def _world(tmp_path):
    start = ONSET - 3600
    (tmp_path / "world.yaml").write_text(yaml.safe_dump({
        "name": "general-verify", "window": {"start": fmt_ts(start), "end": fmt_ts(ONSET + 1800)},
        "trigger": {"text": "pay is failing"}}))
    lines = []
    for minute in range(0, 90, 2):  # an old, unrelated error sharing the JSON head
        lines.append({"ts": fmt_ts(start + 60 * minute), "service": "pay", "level": "ERROR",
                      "message": '{"level": "error", "msg": "query failed", "error": "deadlock detected"}'})
    for second in range(0, 900, 20):  # the new error, after the change
        lines.append({"ts": fmt_ts(ONSET + second), "service": "pay", "level": "ERROR",
                      "message": '{"level": "error", "msg": "query failed", "error": "column \\"currency\\" '
                                 'does not exist"}'})
    lines.sort(key=lambda line: line["ts"])
    (tmp_path / "logs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return WorldTools(tmp_path)


def test_verification_finds_a_json_error_new_after_the_change(tmp_path):
    tools = _world(tmp_path)
    change = {"id": "c1", "service": "pay", "kind": "db_migration", "ts": fmt_ts(ONSET - 120)}
    template = '{"level": "error", "msg": "query failed", "error": "column \\"currency\\" does not exist"}'
    sig = {"onset": fmt_ts(ONSET), "services": {"pay": {"score": 1.0}},
           "templates": [{"service": "pay", "kind": "new", "level": "ERROR", "template": template,
                          "example": template}]}
    cor = {"origins": [{"service": "pay", "named_by": []}],
           "changes": [{"id": "c1", "service": "pay", "position": "before"}]}
    hyp = {"hypotheses": [{"service": "pay", "change_id": "c1", "confidence": 90}]}
    ctx = {"window": {"start": fmt_ts(ONSET - 3600), "end": fmt_ts(ONSET + 1800)}}
    result = verify.check(tools, ctx, sig, {"changes": [change]}, cor, hyp)
    assert result["outcome"] == "CONFIRMED", result["checks"]
    # The old error is seen before the change: were it the only new template, the change is declined.
    old = '{"level": "error", "msg": "query failed", "error": "deadlock detected"}'
    sig["templates"] = [{"service": "pay", "kind": "new", "level": "ERROR", "template": old, "example": old}]
    assert verify.check(tools, ctx, sig, {"changes": [change]}, cor, hyp)["outcome"] == "DECLINED"


def test_new_errors_on_a_victim_lend_its_change_less_weight():
    change = {"id": "c1", "service": "web", "kind": "deploy"}  # web is on the origin's path, no origin itself
    on_victim = _score(change, ONSET - 300)
    as_origin = score_change(change, change_ts=ONSET - 300, onset=ONSET, origin_rank={"web": 0.6}, neighbours=set(),
                             new_error_after={"web": [ONSET + 30]}, failing_share={})
    with_errors = score_change(change, change_ts=ONSET - 300, onset=ONSET, origin_rank={"pay": 1.0},
                               neighbours={"web"}, new_error_after={"web": [ONSET + 30]}, failing_share={})
    assert with_errors["score"] - on_victim["score"] < 0.5 * (0.15 + 0.05)
    assert as_origin["score"] > with_errors["score"]


def test_a_change_made_before_a_traffic_surge_saturated_its_service_is_declined(tmp_path):
    tools = _world(tmp_path)
    change = {"id": "c1", "service": "pay", "kind": "deploy", "ts": fmt_ts(ONSET - 1800)}
    surge = {"service": "pay", "name": "requests_per_s", "onset": fmt_ts(ONSET - 300), "shift": 1.4}
    sig = {"onset": fmt_ts(ONSET), "services": {"pay": {"score": 1.0, "saturation": True}},
           "series": [surge], "templates": []}
    cor = {"origins": [{"service": "pay", "named_by": []}],
           "changes": [{"id": "c1", "service": "pay", "position": "before"}]}
    hyp = {"hypotheses": [{"service": "pay", "change_id": "c1", "confidence": 90}]}
    ctx = {"window": {"start": fmt_ts(ONSET - 3600), "end": fmt_ts(ONSET + 1800)}}
    result = verify.check(tools, ctx, sig, {"changes": [change]}, cor, hyp)
    assert result["outcome"] == "DECLINED"
    assert [c["name"] for c in result["checks"] if not c["passed"]] == ["fault_not_explained_by_load"]
    # Not saturated, or the surge began with the change (a retry storm it set off): no verdict on load.
    assert verify.load_surge({**sig, "services": {"pay": {"saturation": False}}}, "pay", after=ONSET - 1800) is None
    assert verify.load_surge(sig, "pay", after=ONSET - 400) is None


def _with_lines(tmp_path, extra):
    lines = [json.loads(line) for line in (tmp_path / "logs.jsonl").read_text().splitlines()] + extra
    lines.sort(key=lambda line: line["ts"])
    (tmp_path / "logs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return WorldTools(tmp_path)


def _envelope_check(tools, after):
    change = {"id": "c1", "service": "pay", "kind": "feature_flag", "ts": fmt_ts(ONSET - 120)}
    template = 'level=error msg="call failed" err="<*>"'
    example = 'level=error msg="call failed" err="smart-routing: no route for tenant 42"'
    sig = {"onset": fmt_ts(ONSET), "services": {"pay": {"score": 1.0}},
           "templates": [{"service": "pay", "kind": "new", "level": "ERROR", "template": template,
                          "example": example, "after": after}]}
    cor = {"origins": [{"service": "pay", "named_by": []}],
           "changes": [{"id": "c1", "service": "pay", "position": "before"}]}
    hyp = {"hypotheses": [{"service": "pay", "change_id": "c1", "confidence": 90}]}
    ctx = {"window": {"start": fmt_ts(ONSET - 3600), "end": fmt_ts(ONSET + 1800)}}
    return verify.check(tools, ctx, sig, {"changes": [change]}, cor, hyp)


def _stray(offset):
    return {"ts": fmt_ts(ONSET - offset), "service": "pay", "level": "ERROR",
            "message": 'level=error msg="call failed" err="redis: connection pool timeout"'}


def test_a_stray_older_line_sharing_a_generic_envelope_does_not_decline_the_change(tmp_path):
    _world(tmp_path)
    # Only the logfmt envelope is literal in this template, and one older line an hour before shares it.
    tools = _with_lines(tmp_path, [_stray(3000)])
    result = _envelope_check(tools, after=45)
    assert result["outcome"] == "CONFIRMED", result["checks"]
    # The same envelope at a pace near the template's own before the change: it was there before, declined.
    tools = _with_lines(tmp_path, [_stray(3000 - 120 * k) for k in range(1, 15)])
    assert _envelope_check(tools, after=45)["outcome"] == "DECLINED"


def test_thin_new_templates_are_not_checked(tmp_path):
    _world(tmp_path)
    tools = _with_lines(tmp_path, [_stray(3000 - 120 * k) for k in range(0, 15)])
    # Three lines since the onset are too few to judge the change by: no errors_absent_before_change check.
    result = _envelope_check(tools, after=3)
    assert "errors_absent_before_change" not in [c["name"] for c in result["checks"]]
    assert result["outcome"] == "CONFIRMED"
