"""Generalisation (issue #3): the onset is dated by clear symptoms, not by faint series or warnings."""

from agents.evidence import anchor, signals
from agents.evidence.timeutil import fmt_ts, parse_ts

T0 = parse_ts("2026-03-01T10:00:00Z")


def test_a_service_is_dated_by_its_strong_series_not_a_faint_early_one():
    onset = T0 + 3600
    # errors (strong) at the onset, memory drift (faint) 8 minutes before
    assert signals.service_onset([(onset, 0.99), (onset - 480, 0.3), (onset + 60, 0.8)]) == onset
    assert signals.service_onset([(onset, 0.7), (onset - 300, 0.65)]) == onset - 300
    assert signals.service_onset([]) is None


def test_alert_severity_weights():
    assert anchor.alert_weight("P1") == anchor.alert_weight("critical") == 1.0
    assert anchor.alert_weight("warning") < 0.5 and anchor.alert_weight("P4") < 0.5
    assert anchor.alert_weight(None) == 0.5


def test_low_severity_warnings_do_not_start_the_burst():
    warn, page = anchor.alert_weight("warning"), anchor.alert_weight("P2")
    times = [T0 + 1000, T0 + 1500, T0 + 1900, T0 + 2000]
    weights = [warn, warn, page, warn]
    assert anchor.alert_burst_start(times, weights) == T0 + 1900
    # Without weights every alert counts alike: the older behaviour, kept for callers that pass none.
    assert anchor.alert_burst_start(times) == T0 + 1000


def test_refine_anchor_weighs_the_alerts_it_was_dated_by():
    alerts = [{"ts": fmt_ts(T0 + 600), "severity": "warning", "title": "Disk usage 85%"},
              {"ts": fmt_ts(T0 + 2400), "severity": "P1", "title": "High error rate"}]
    ctx = {"anchor": T0 + 600, "anchor_from": "alerts", "alerts": alerts,
           "window": {"start": fmt_ts(T0), "end": fmt_ts(T0 + 7200)}}
    assert anchor.refine_anchor([], ctx) == T0 + 2400
    dated = {**ctx, "anchor_from": "trigger"}
    assert anchor.refine_anchor([], dated) == T0 + 600


def test_callers_naming_a_service_through_its_deployment_alias_count_as_mentions():
    known = {"feed", "edge-proxy", "partner-api", "feed-svc-legacy"}
    msg = 'upstream timed out while reading response header, upstream: "http://feed-svc:8080/v1/lookup"'
    assert signals.alias_mentions(msg, known, "edge-proxy") == {"feed"}
    assert signals.alias_mentions("circuit open for feed-svc", known | {"feed-svc"}, "x") == set()  # a service of its own
    assert signals.alias_mentions("feed-svc pool exhausted", known, "feed") == set()  # its own name
    t0 = T0 + 3600
    lines = [{"ts": fmt_ts(t0 + 10 * i), "service": "edge-proxy", "level": "ERROR",
              "message": f"upstream connect error to feed-svc:8080 attempt {i}"} for i in range(6)]
    mentions = signals._mentions(lines, onset=t0, known=sorted(known), ratio=1.0)
    assert mentions == {"edge-proxy": {"feed": 6.0}}


def test_a_late_ticket_that_states_when_it_started_is_anchored_there():
    ctx = {"anchor": T0 + 3600 + 1500, "anchor_from": "trigger",
           "trigger_text": "Merchants say errors on checkout from 11:00 (UTC).",
           "window": {"start": fmt_ts(T0), "end": fmt_ts(T0 + 7200)}}
    assert anchor.refine_anchor([], ctx) == T0 + 3600 + anchor.TEXT_TIME_SLACK_S
    # A prompt ticket keeps its own time; a time after the report is no start time.
    assert anchor.refine_anchor([], {**ctx, "anchor": T0 + 3600 + 600}) == T0 + 3600 + 600
    assert anchor.refine_anchor([], {**ctx, "trigger_text": "errors from 12:10 UTC"}) == T0 + 3600 + 1500
