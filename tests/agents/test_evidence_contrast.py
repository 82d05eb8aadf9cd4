"""Short-window contrast around the anchor (agents/evidence/contrast.py)."""

from __future__ import annotations

from agents.evidence import contrast
from agents.evidence.timeutil import fmt_ts, parse_ts

ANCHOR = 1_700_000_000.0


def _points(values: list[float], *, last_at: float = ANCHOR + 60.0) -> list[tuple[float, float]]:
    # One sample a minute, the last one at ``last_at``.
    start = last_at - 60.0 * (len(values) - 1)
    return [(start + 60.0 * i, v) for i, v in enumerate(values)]


def test_error_rise_at_the_anchor_scores() -> None:
    # 10 quiet minutes (the last at anchor-120, inside the short stretch), then errors from anchor-60 on.
    result = contrast.series_contrast(_points([0.0] * 10 + [0.8, 0.9, 0.85]), family="error", anchor=ANCHOR)
    assert result is not None
    assert result["before"] == 0.0 and abs(result["after"] - (0.8 + 0.9 + 0.85) / 4) < 1e-9
    assert result["z"] > contrast.MIN_Z and result["strength"] > 0.5
    assert result["first_after"] == ANCHOR - 60.0


def test_always_noisy_service_does_not_score() -> None:
    # Errors swinging between 0.5 and 1.0 the whole time: the last minutes are no change.
    values = [0.5, 1.0, 0.5, 0.9, 0.6, 1.0, 0.5, 0.9, 0.5, 1.0, 0.6, 0.9, 0.7]
    result = contrast.series_contrast(_points(values), family="error", anchor=ANCHOR)
    assert result is not None and result["strength"] == 0.0


def test_an_earlier_faults_ongoing_errors_do_not_score() -> None:
    # Failing at the same level since long before the anchor: nothing changed around the report.
    result = contrast.series_contrast(_points([0.0, 0.0] + [1.0] * 11), family="error", anchor=ANCHOR)
    assert result is not None and result["strength"] == 0.0


def test_small_latency_rise_is_not_practical() -> None:
    # From 10 ms to 25 ms: many noise units of a flat series, but below 20 ms of rise.
    result = contrast.series_contrast(_points([10.0] * 10 + [25.0] * 3), family="latency", anchor=ANCHOR)
    assert result is not None and result["strength"] == 0.0
    big = contrast.series_contrast(_points([10.0] * 10 + [120.0] * 3), family="latency", anchor=ANCHOR)
    assert big is not None and big["strength"] > 0.0


def test_no_samples_before_the_stretch_gives_none() -> None:
    assert contrast.series_contrast(_points([0.9, 1.0, 0.9]), family="error", anchor=ANCHOR) is None


def test_signal_families() -> None:
    assert contrast.signal_family("error_rate") == "error"
    assert contrast.signal_family("caller_latency_p95_ms") == "caller_latency"
    assert contrast.signal_family("latency_p95_ms") == "latency"
    assert contrast.signal_family("mesh_latency_p95_ms") is None
    assert contrast.signal_family("cpu_util") == "cpu"
    assert contrast.signal_family("requests_per_s") is None


def test_service_contrasts_adds_agreeing_signals() -> None:
    def series(service: str, name: str, values: list[float]) -> dict:
        return {"service": service, "name": name, "points": [[fmt_ts(t), v] for t, v in _points(values)]}

    listed = [series("db", "error_rate", [0.0] * 10 + [0.9] * 3),
              series("db", "latency_p95_ms", [20.0] * 10 + [400.0] * 3),
              series("web", "error_rate", [0.0] * 13),
              series("web", "requests_per_s", [5.0] * 13)]
    out = contrast.service_contrasts(listed, anchor=ANCHOR, parse_ts=parse_ts)
    db = out["db"]
    error, latency = db["signals"]["error"]["strength"], db["signals"]["latency"]["strength"]
    assert error > 0 and latency > 0
    assert db["score"] == round(max(error, latency) + 0.5 * min(error, latency), 4)
    assert db["onset"] == ANCHOR - 60.0
    assert out["web"]["score"] == 0.0 and out["web"]["onset"] is None
    assert set(out["web"]["signals"]) == {"error"}
