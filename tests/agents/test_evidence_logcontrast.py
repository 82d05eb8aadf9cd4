"""Short-window log contrast: new error shapes and callee names around the anchor, against own noise."""

from __future__ import annotations

from agents.evidence import logcontrast
from agents.evidence.timeutil import fmt_ts, parse_ts

BOUNDS = logcontrast.stretch(10_000.0, after_from_s=150.0, after_to_s=90.0, before_span_s=480.0)


def _entry(service: str, level: str, *, prior: int, before: int, after: int) -> dict:
    return {"service": service, "level": level, "c_prior": prior, "c_before": before, "c_after": after}


def test_new_error_shape_on_a_quiet_service_outweighs_the_same_on_a_noisy_one():
    stats = [_entry("quiet", "ERROR", prior=0, before=0, after=6),
             _entry("noisy", "ERROR", prior=0, before=0, after=6),
             _entry("noisy", "ERROR", prior=400, before=80, after=40)]
    out = logcontrast.service_log_contrast(stats, bounds=BOUNDS, history_s=3600.0)
    assert out["quiet"]["new_templates"] == 1
    assert out["quiet"]["score"] > 3 * out["noisy"]["score"] > 0


def test_a_shape_seen_earlier_in_the_window_is_not_new():
    stats = [_entry("svc", "ERROR", prior=1, before=0, after=6), _entry("svc", "INFO", prior=50, before=10, after=5)]
    assert logcontrast.service_log_contrast(stats, bounds=BOUNDS, history_s=3600.0) == {}


def test_a_statement_that_stops_while_the_service_goes_on_counts_a_silent_service_does_not():
    going_on = [_entry("svc", "INFO", prior=60, before=40, after=0), _entry("svc", "INFO", prior=60, before=40, after=20)]
    silent = [_entry("svc", "INFO", prior=60, before=40, after=0)]
    out = logcontrast.service_log_contrast(going_on, bounds=BOUNDS, history_s=3600.0)
    assert out["svc"]["stopped"] == 1 and out["svc"]["score"] > 0
    assert logcontrast.service_log_contrast(silent, bounds=BOUNDS, history_s=3600.0) == {}


def _line(ts: float, service: str, message: str, level: str = "ERROR") -> dict:
    return {"ts": fmt_ts(ts), "service": service, "level": level, "message": message}


def test_named_near_counts_only_names_that_rise_in_the_stretch():
    before_from, split, stop = BOUNDS
    lines = [_line(split + 10 + i, "front", "call to ts-order-service failed") for i in range(5)]
    # A steady complaint about another service before and during the stretch is not a rise.
    lines += [_line(before_from + 60 * i, "front", "ts-user-service slow", "WARN") for i in range(8)]
    lines += [_line(split + 30 * i, "front", "ts-user-service slow", "WARN") for i in range(4)]
    lines.append(_line(split + 20, "front", "ts-order-service timeout", "INFO"))  # not an error line
    out = logcontrast.named_near(lines, known=["front", "ts-order-service", "ts-user-service"], bounds=BOUNDS,
                                 parse_ts=parse_ts)
    assert out == {"ts-order-service": {"front": 5.0}}
