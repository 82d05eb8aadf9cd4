"""Unit tests of agents.evidence.anomalies on constructed series."""

import random

from agents.evidence.anomalies import analyse_series, direction

T0 = 1_700_000_000.0


def _series(values):
    return [(T0 + 60 * i, v) for i, v in enumerate(values)]


def test_step_gives_onset_at_the_step():
    rng = random.Random(1)
    values = [0.01 + rng.uniform(-0.002, 0.002) for _ in range(60)] + [0.3 + rng.uniform(-0.02, 0.02) for _ in range(30)]
    info = analyse_series(_series(values), name="error_rate", baseline_end=T0 + 60 * 45, anchor=T0 + 60 * 65)
    assert info["anomalous"]
    assert info["onset"] == T0 + 60 * 60
    assert info["recovered"] is None
    assert info["level_after"] > 0.25


def test_flat_noise_is_not_anomalous():
    rng = random.Random(2)
    values = [100 + rng.gauss(0, 3) for _ in range(120)]
    info = analyse_series(_series(values), name="latency_p95_ms", baseline_end=T0 + 60 * 90, anchor=T0 + 60 * 100)
    assert not info["anomalous"]
    assert info["onset"] is None


def test_single_spike_is_not_an_onset():
    values = [50.0] * 40 + [500.0] + [50.0] * 40
    info = analyse_series(_series(values), name="latency_p95_ms", baseline_end=T0 + 60 * 30, anchor=T0 + 60 * 45)
    assert not info["anomalous"]


def test_recovery_is_detected():
    values = [0.01] * 40 + [0.5] * 10 + [0.01] * 20
    info = analyse_series(_series(values), name="error_rate", baseline_end=T0 + 60 * 30, anchor=T0 + 60 * 42)
    assert info["onset"] == T0 + 60 * 40
    assert info["recovered"] == T0 + 60 * 50


def test_drop_in_errors_is_not_bad_but_traffic_drop_is():
    assert direction("error_rate") == "up"
    assert direction("requests_per_s") == "both"
    values = [300.0] * 40 + [30.0] * 20
    info = analyse_series(_series(values), name="requests_per_s", baseline_end=T0 + 60 * 30, anchor=T0 + 60 * 45)
    assert info["anomalous"] and info["shift"] < -0.8
    down = analyse_series(_series([0.2] * 40 + [0.0] * 20), name="error_rate", baseline_end=T0 + 60 * 30,
                          anchor=T0 + 60 * 45)
    assert not down["anomalous"]


def test_too_few_or_bad_samples_degrade():
    assert analyse_series([(T0, 1.0), (T0 + 60, float("nan"))], name="x", baseline_end=T0, anchor=T0) is None
    assert analyse_series([], name="error_rate", baseline_end=T0, anchor=T0) is None


def test_pocketed_series_is_sparse_and_full_series_is_not():
    from agents.evidence.anomalies import is_sparse

    pockets = [(T0 + 60 * i, 1.0) for i in (0, 1, 2, 15, 16, 17)]
    assert is_sparse(pockets, anchor=T0 + 60 * 17)
    assert not is_sparse(_series([1.0] * 30), anchor=T0 + 60 * 29)


def test_contrast_flags_error_jump_but_not_small_latency_wiggle():
    from agents.evidence.anomalies import contrast_series

    anchor = T0 + 60 * 10
    errors = [(anchor - 60, 0.0), (anchor, 1.0), (anchor + 60, 1.0)]
    info = contrast_series(errors, name="error_rate", anchor=anchor)
    assert info["anomalous"] and info["onset"] == anchor and info["level_after"] == 1.0
    # 15 ms -> 28 ms doubles the latency but is under the 20 ms rise an operator would notice.
    wiggle = [(anchor - 60, 15.0), (anchor, 28.0), (anchor + 60, 30.0)]
    assert not contrast_series(wiggle, name="latency_p95_ms", anchor=anchor)["anomalous"]
    slow = [(anchor - 60, 15.0), (anchor, 300.0), (anchor + 60, 280.0)]
    assert contrast_series(slow, name="caller_latency_p95_ms", anchor=anchor)["anomalous"]
    # Nothing before the trigger: no baseline, no verdict.
    assert contrast_series([(anchor, 1.0), (anchor + 60, 1.0)], name="error_rate", anchor=anchor) is None


def test_coarse_latency_bucket_steps_are_not_anomalous():
    values = [9.8] * 40 + [9.8, 24.2, 9.8, 22.0, 9.8, 24.2] * 3
    info = analyse_series(_series(values), name="mesh_latency_p95_ms", baseline_end=T0 + 60 * 30,
                          anchor=T0 + 60 * 50)
    assert not info["anomalous"]
