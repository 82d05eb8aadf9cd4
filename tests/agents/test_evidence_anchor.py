"""The anchor: clock times in a text trigger, alert bursts, metric bursts, late and undated reports."""

import random

from agents.evidence import anchor
from agents.evidence.timeutil import fmt_ts, parse_ts

START = parse_ts("2026-04-08T20:00:00Z")
END = START + 7200


def test_clock_time_in_text_lands_inside_the_window():
    at = anchor.time_in_text("users say web-frontend is failing since about 20:42 UTC", START, END)
    assert fmt_ts(at) == "2026-04-08T20:44:00Z"  # the stated time plus the slack


def test_clock_time_on_the_next_day_and_outside_the_window():
    late = parse_ts("2026-04-08T23:30:00Z")
    at = anchor.time_in_text("broken since 00:10", late, late + 7200)
    assert fmt_ts(at) == "2026-04-09T00:12:00Z"
    assert anchor.time_in_text("broken since 09:15", START, END) is None
    assert anchor.time_in_text("error 500 on build 1234 of v2.3", START, END) is None


def test_alert_burst_beats_a_lone_early_warning():
    times = [START + 600, START + 4300, START + 4500, START + 4560]
    assert anchor.alert_burst_start(times) == START + 4300
    assert anchor.alert_burst_start([]) is None


def _series(service, name, level, jump_at, jump, *, until=None, noise=0.02, seed=1):
    rng = random.Random(seed)
    points = []
    for minute in range(120):
        ts = START + 60 * minute
        bad = jump_at is not None and ts >= jump_at and (until is None or ts < until)
        value = level * (1 + rng.uniform(-noise, noise)) + (jump if bad else 0.0)
        points.append([fmt_ts(ts), value])
    return {"service": service, "name": name, "points": points}


def _world(until=None):
    onset = START + 3000
    return [_series("a", "error_rate", 0.01, onset, 0.3, until=until, seed=1),
            _series("a", "latency_p95_ms", 80.0, onset + 60, 150.0, until=until, seed=2),
            _series("b", "error_rate", 0.01, onset + 120, 0.1, until=until, seed=3),
            _series("c", "requests_per_s", 200.0, None, 0.0, seed=4)], onset


def test_metric_burst_finds_the_first_shift_of_the_burst():
    series, onset = _world()
    assert anchor.metric_burst(series, until=END) == onset


def test_quiet_metrics_have_no_burst():
    series = [_series("c", "error_rate", 0.01, None, 0.0, seed=s) for s in range(3)]
    assert anchor.metric_burst(series, until=END) is None


def test_late_report_moves_back_to_the_burst_but_a_prompt_one_stays():
    series, onset = _world()
    late = {"anchor": onset + 3000, "anchor_from": "trigger"}
    assert anchor.refine_anchor(series, late) == onset + anchor.REPORT_DELAY_S
    prompt = {"anchor": onset + 300, "anchor_from": "trigger"}
    assert anchor.refine_anchor(series, prompt) == onset + 300


def test_undated_report_takes_a_burst_that_is_already_over():
    series, onset = _world(until=START + 3000 + 1800)
    ctx = {"anchor": END, "anchor_from": "window_end"}
    assert anchor.refine_anchor(series, ctx) == onset + anchor.REPORT_DELAY_S
    # A dated report long after that burst ended also moves back to it (a ticket filed after a rollback).
    assert anchor.refine_anchor(series, {"anchor": END - 60, "anchor_from": "trigger"}) == onset + 180


def test_a_lone_early_shift_does_not_start_the_burst():
    series, onset = _world()
    # A slow drift that crosses its line 7 min before the incident falls inside the burst's 10 min span.
    drift = _series("d", "mem_util", 0.5, onset - 420, 0.2, seed=5)
    assert anchor.metric_burst(series + [drift], until=END) == onset
    # Shifts that follow one another within minutes all belong to the burst.
    near = _series("d", "mem_util", 0.5, onset - 120, 0.2, seed=5)
    assert anchor.metric_burst(series + [near], until=END) == onset - 120


def test_a_late_ticket_naming_a_start_after_an_earlier_burst_is_anchored_at_the_named_time():
    series, onset = _world()  # the burst starts at START + 3000 (20:50)
    surge = [_series(s, "cpu_util", 0.3, onset - 780, 0.4, seed=10 + i) for i, s in enumerate("efghij")]
    ctx = {"anchor": onset + 960, "anchor_from": "trigger", "trigger_text": "errors on a starting 20:50Z",
           "window": {"start": fmt_ts(START), "end": fmt_ts(END)}}
    # Without the stated time the late report moves back to the surge's burst 13 min earlier ...
    plain = {**ctx, "trigger_text": "errors on a"}
    assert anchor.refine_anchor(series + surge, plain) == onset - 780 + anchor.REPORT_DELAY_S
    # ... with it, the reporter's time wins over a burst before it.
    assert anchor.refine_anchor(series + surge, ctx) == onset + anchor.TEXT_TIME_SLACK_S
    # A stated time close to the burst keeps the burst.
    assert anchor.refine_anchor(series, {**ctx, "trigger_text": "errors on a starting 20:51Z"}) == (
        onset + anchor.REPORT_DELAY_S)
