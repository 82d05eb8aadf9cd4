"""Unit tests of agents.evidence.changes: timing, origin, flag share."""

from agents.evidence.changes import flag_share, score_change

ONSET = 10_000.0


def _score(change, ts, **kw):
    args = {"origin_rank": {"pay": 1.0}, "neighbours": {"web"}, "new_error_after": {}, "failing_share": {}}
    args.update(kw)
    return score_change(change, change_ts=ts, onset=ONSET, **args)


def test_change_after_onset_is_never_the_cause():
    result = _score({"id": "c1", "service": "pay", "kind": "deploy"}, ONSET + 600)
    assert result["position"] == "after" and result["score"] == 0.0 and result["against"]


def test_close_change_on_origin_beats_old_change_and_change_elsewhere():
    close = _score({"id": "c1", "service": "pay", "kind": "deploy"}, ONSET - 120)
    old = _score({"id": "c2", "service": "pay", "kind": "deploy"}, ONSET - 3 * 3600)
    other = _score({"id": "c3", "service": "search", "kind": "deploy"}, ONSET - 60)
    assert close["score"] > old["score"] and close["score"] > other["score"]


def test_flag_share_matches_failing_share():
    flag = {"id": "f", "service": "pay", "kind": "feature_flag", "details": {"rollout_pct": 25}}
    assert flag_share(flag) == 0.25
    fits = _score(flag, ONSET - 120, failing_share={"pay": 0.22})
    misfit = _score(flag, ONSET - 120, failing_share={"pay": 0.95})
    assert fits["score"] > misfit["score"]
    assert flag_share({"details": {"to": "50%"}}) == 0.5
    assert flag_share({"details": {}}) is None
