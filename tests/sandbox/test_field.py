"""The generator's field mode (sandbox/gen_field.py): the metrics-first shapes of issue #15, as written."""

from __future__ import annotations

import hashlib
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from sandbox.generator import FAMILIES, generate_suite, generate_world
from tests.sandbox.test_generator import _ts, check_world, load, series

ROOT = Path(__file__).resolve().parents[2]
FILES = ("world.yaml", "topology.yaml", "changes.jsonl", "alerts.jsonl", "tickets.jsonl", "chat.jsonl",
         "logs.jsonl", "metrics.jsonl", "truth.yaml")
REQUEST_LEVEL = ("error_rate", "latency_p95_ms", "caller_latency_p95_ms")


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Three field worlds per family (21), loaded and checked against the spec."""
    root = tmp_path_factory.mktemp("field")
    worlds = generate_suite(root, count=21, seed=31, field=True)
    return [load(w) for w in worlds]


def _shapes(data: dict) -> dict:
    return data["truth"]["meta"]["field"]


def _onset(data: dict) -> datetime:
    return _ts(data["truth"]["meta"]["onset"])


def _values(data: dict, svc: str, name: str, lo: float, hi: float) -> list[float]:
    """Values of a series between ``lo`` and ``hi`` minutes from the onset."""
    onset = _onset(data)
    return [v for t, v in series(data, svc, name) if lo * 60 <= (t - onset).total_seconds() < hi * 60]


def test_field_worlds_are_valid_and_every_service_has_caller_latency(suite: list[dict]) -> None:
    for data in suite:
        low = set(_shapes(data).get("low_traffic", {}))
        # Minutes without a request at a low-traffic service carry no error share or latency: leave those
        # series out of the one-sample-per-minute check, which every other series still meets.
        full = dict(data, metrics=[m for m in data["metrics"]
                                   if not (m["service"] in low and m["name"] in REQUEST_LEVEL)])
        check_world(full, data["truth"]["meta"]["family"])
        names = {s["name"] for s in data["topology"]}
        assert {m["service"] for m in data["metrics"] if m["name"] == "caller_latency_p95_ms"} == names


def test_same_seed_gives_the_same_field_world_and_truth_matches_the_plain_world(tmp_path: Path) -> None:
    one = generate_world(tmp_path / "one", family="config", seed=8, log_lines=1500, field=True, name="w")
    two = generate_world(tmp_path / "two", family="config", seed=8, log_lines=1500, field=True, name="w")
    plain = generate_world(tmp_path / "plain", family="config", seed=8, log_lines=1500, name="w")
    for name in FILES:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert (one / "metrics.jsonl").read_bytes() != (plain / "metrics.jsonl").read_bytes()
    assert load(one)["truth"]["root_cause"] == load(plain)["truth"]["root_cause"]


def _digest(world: Path) -> str:
    return hashlib.sha256(b"".join((world / name).read_bytes() for name in FILES)).hexdigest()[:16]


def test_plain_and_hard_worlds_stay_byte_identical(tmp_path: Path) -> None:
    # Digests taken with the generator before the field mode existed (commit 7638acd): adding the mode must
    # not move a byte of ordinary or hard worlds, whose suites hold the project's recorded figures.
    plain = generate_world(tmp_path / "plain", family="dependency", seed=5, log_lines=1500)
    hard = generate_world(tmp_path / "hard", family="dependency", seed=5, log_lines=1500, hard=True)
    assert (_digest(plain), _digest(hard)) == ("ae55d1c408d25c43", "7677d55532cc71b1")


def test_a_failing_callee_loses_requests_while_the_entry_errs_more(suite: list[dict]) -> None:
    shaped = [d for d in suite if "callee" in _shapes(d)]
    assert 8 <= len(shaped) < len(suite), "most eligible worlds, not all"
    for data in shaped:
        callee = _shapes(data)["callee"]
        origin, entry = callee["origin"], callee["entry"]
        assert origin == data["truth"]["root_cause"]["service"] and entry in data["truth"]["meta"]["affected"]
        rps_before = statistics.median(_values(data, origin, "requests_per_s", -40, -10))
        rps_after = statistics.median(_values(data, origin, "requests_per_s", 8, 20))
        assert 0.1 < rps_after / rps_before < 0.62, (data["world"]["name"], rps_before, rps_after)
        lat_before = statistics.median(_values(data, origin, "caller_latency_p95_ms", -40, -10))
        lat_after = statistics.median(_values(data, origin, "caller_latency_p95_ms", 8, 20))
        assert lat_after / lat_before > 1.3
        if callee["own_latency_silent"] and origin not in _shapes(data).get("low_traffic", {}):
            own = statistics.median(_values(data, origin, "latency_p95_ms", 8, 20)) / \
                statistics.median(_values(data, origin, "latency_p95_ms", -40, -10))
            assert 0.85 < own < 1.15, "the origin's own latency stays flat"
        if origin in _shapes(data).get("low_traffic", {}):
            continue  # a few requests a minute: error shares are too coarse to compare per window
        rise = {svc: statistics.mean(_values(data, svc, "error_rate", 8, 20))
                - statistics.mean(_values(data, svc, "error_rate", -40, -10)) for svc in (origin, entry)}
        assert 0.01 < rise[origin] < 0.4  # a flag errs only in its rolled-out share
        assert rise[entry] > rise[origin] and rise[entry] > 0.08, rise
        # A synchronous call fails its caller at once: the entry's errors start within a minute or two.
        first = next(t for t, v in series(data, entry, "error_rate") if t >= _onset(data) and v > 0.05)
        assert (first - _onset(data)).total_seconds() < 240
    alerted = [d for d in shaped if d["truth"]["meta"]["alerted_service"] == _shapes(d)["callee"]["entry"]]
    assert len(alerted) >= len(shaped) / 2, "the trigger is usually about the entry"


def test_a_pre_onset_wobble_bumps_a_bystander_then_settles(suite: list[dict]) -> None:
    wobbly = [d for d in suite if "wobble" in _shapes(d)]
    assert 4 <= len(wobbly) < len(suite)
    for data in wobbly:
        w = _shapes(data)["wobble"]
        assert w["service"] not in data["truth"]["meta"]["affected"] and w["service"] != \
            data["truth"]["root_cause"]["service"]
        points = series(data, w["service"], "latency_p95_ms")
        start = points[0][0]
        steps = {int((t - start).total_seconds() // 60): v for t, v in points}
        onset_step = int((_onset(data) - start).total_seconds() // 60)
        healthy = statistics.median(v for s, v in steps.items() if s < w["first_step"] - 2)
        bumped = [steps[s] for s in range(w["first_step"], w["first_step"] + w["samples"]) if s in steps]
        assert bumped and min(bumped) > 1.2 * healthy
        assert 2 <= onset_step - w["first_step"] <= 4 and w["first_step"] + w["samples"] < onset_step
        after = [steps[s] for s in range(w["first_step"] + w["samples"], onset_step + 10) if s in steps]
        assert after and statistics.median(after) < 1.2 * healthy, "it settles"


def test_low_traffic_services_count_few_requests_and_spike_when_healthy(suite: list[dict]) -> None:
    low = [(d, svc) for d in suite for svc in _shapes(d).get("low_traffic", {})]
    assert len(low) >= 5
    assert any(svc == d["truth"]["root_cause"]["service"] for d, svc in low), "sometimes the origin"
    spiky = 0
    for data, svc in low:
        rps = _values(data, svc, "requests_per_s", -60, -5)
        assert 0.05 < statistics.mean(rps) < 0.8
        assert all(abs(v * 60 - round(v * 60)) < 0.05 for v in rps), "whole requests per minute"
        errs = _values(data, svc, "error_rate", -60, -5)
        assert all(v * 60 * r >= 0 for v, r in zip(errs, rps, strict=False)) and min(errs) == 0.0
        lat = _values(data, svc, "latency_p95_ms", -60, -5)
        spiky += max(lat) > 4 * statistics.median(lat)
    assert spiky >= len(low) / 2, "heavy-tailed latency: single spikes of 5-20x when healthy"


def test_downstream_noise_is_a_small_latency_rise_under_a_silent_origin(tmp_path: Path) -> None:
    worlds = [load(w) for w in generate_suite(tmp_path, count=28, seed=12, field=True)]
    noisy = [d for d in worlds if "downstream" in _shapes(d)]
    assert noisy
    for data in noisy:
        shapes = _shapes(data)
        down, origin = shapes["downstream"]["service"], data["truth"]["root_cause"]["service"]
        assert shapes["callee"]["own_latency_silent"]
        assert down in next(s["calls"] for s in data["topology"] if s["name"] == origin)
        ratio = statistics.median(_values(data, down, "latency_p95_ms", 8, 20)) / \
            statistics.median(_values(data, down, "latency_p95_ms", -40, -10))
        assert 1.15 < ratio < 2.0
        errs = [statistics.mean(_values(data, down, "error_rate", lo, hi)) for lo, hi in ((-40, -10), (8, 20))]
        assert errs[1] - errs[0] < 0.01, "no errors of its own"


def test_field_mode_covers_every_family(suite: list[dict]) -> None:
    assert {d["truth"]["meta"]["family"] for d in suite} == set(FAMILIES)
    assert any(d["truth"]["meta"]["decoys"] for d in suite)


def _variant(tmp_path: Path, flag: str) -> tuple[Path, Path]:
    """A field world and the variant ``bench/variants.py FLAG`` writes of it."""
    world = generate_world(tmp_path / "w" / "gen-0000-deploy", family="deploy", seed=3, log_lines=500, field=True)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "variants.py"), flag, "--out",
                           str(tmp_path / "variants"), str(world)], capture_output=True, text=True, check=True)
    return world, Path(done.stdout.strip())


def test_variants_cli_leaves_logs_out_of_field_worlds(tmp_path: Path) -> None:
    world, variant = _variant(tmp_path, "--no-logs")
    assert variant.parent.name == "nologs" and (variant / "world.yaml").exists()
    assert not (variant / "logs.jsonl").exists()
    assert (variant / "metrics.jsonl").read_bytes() == (world / "metrics.jsonl").read_bytes()


def test_variants_cli_leaves_the_topology_out(tmp_path: Path) -> None:
    world, variant = _variant(tmp_path, "--no-topology")
    assert variant.parent.name == "logs-notopo" and (world / "topology.yaml").exists()
    assert not (variant / "topology.yaml").exists()
    assert (variant / "logs.jsonl").read_bytes() == (world / "logs.jsonl").read_bytes()


def test_variants_cli_names_a_missing_world_folder(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "variants.py"), "--no-topology", "--out",
                           str(tmp_path / "v"), str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert done.returncode == 2 and "not a world folder" in done.stderr and "Traceback" not in done.stderr
