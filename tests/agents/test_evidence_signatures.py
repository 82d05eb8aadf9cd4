"""Fault signatures that do not propagate to callers (agents/evidence/signatures.py) and their use."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agents import engine
from agents.evidence import signatures
from agents.evidence.timeutil import fmt_ts, parse_ts
from sandbox.tools import WorldTools

T0 = 1_700_000_000.0
ANCHOR = T0 + 1200.0
SPLIT, STOP = ANCHOR - 150.0, ANCHOR + 90.0


def _series(service: str, name: str, values: list[float], step: float = 60.0) -> dict:
    return {"service": service, "name": name,
            "points": [[fmt_ts(T0 + i * step), v] for i, v in enumerate(values)]}


def _flat_then(level: float, after: float, n: int = 24, jump_at: int = 18) -> list[float]:
    return [level if i < jump_at else after for i in range(n)]


def test_wait_gap_blames_the_service_callers_wait_for_not_the_callers() -> None:
    # "db": callers wait 2 s longer while its own work stays at 10 ms (a delay on the path to it).
    # "api": calls db, so both its own latency and its callers' wait rise together: no gap.
    series = [
        _series("db", "caller_latency_p95_ms", _flat_then(12.0, 2012.0)),
        _series("db", "latency_p95_ms", _flat_then(10.0, 10.0)),
        _series("api", "caller_latency_p95_ms", _flat_then(60.0, 2070.0)),
        _series("api", "latency_p95_ms", _flat_then(55.0, 2060.0)),
    ] + [s for i in range(6) for s in (_series(f"svc{i}", "caller_latency_p95_ms", _flat_then(20.0 + i, 22.0 + i)),
                                       _series(f"svc{i}", "latency_p95_ms", _flat_then(18.0 + i, 19.0 + i)))]
    gaps = signatures.wait_gaps(series, anchor=ANCHOR, split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert gaps["db"]["rise"] == 2000.0
    assert gaps["db"]["strength"] == 1.0
    assert gaps["api"]["strength"] == 0.0


def test_wait_gap_ignores_an_earlier_pocket_of_the_same_fault_as_baseline() -> None:
    # An earlier pocket of the same delay (samples 6-7) must not become the normal level.
    waits = [12.0] * 6 + [2012.0, 2012.0] + [12.0] * 10 + [2012.0] * 6
    series = [_series("db", "caller_latency_p95_ms", waits), _series("db", "latency_p95_ms", [10.0] * 24)]
    series += [s for i in range(6) for s in (_series(f"svc{i}", "caller_latency_p95_ms", [20.0 + i] * 24),
                                             _series(f"svc{i}", "latency_p95_ms", [18.0 + i] * 24))]
    gaps = signatures.wait_gaps(series, anchor=ANCHOR, split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert gaps["db"]["before"] == 2.0 and gaps["db"]["strength"] == 1.0


def test_wait_gap_of_a_slow_request_or_two_is_no_delay_on_the_path() -> None:
    # "reviews" serves a few requests a minute: one slow request sets its p95 (2.8 s) and its callers' (3.6 s)
    # for two samples at the onset, then both are back. A delay on the path lasts: "db"'s wait stays up.
    spike = [150.0] * 18 + [2830.0, 2870.0] + [150.0] * 4
    series = [_series("reviews", "latency_p95_ms", spike),
              _series("reviews", "caller_latency_p95_ms", [v * 1.25 for v in spike]),
              _series("db", "caller_latency_p95_ms", _flat_then(12.0, 412.0)),
              _series("db", "latency_p95_ms", _flat_then(10.0, 10.0))]
    series += [s for i in range(6) for s in (_series(f"svc{i}", "caller_latency_p95_ms", [20.0 + i] * 24),
                                             _series(f"svc{i}", "latency_p95_ms", [18.0 + i] * 24))]
    gaps = signatures.wait_gaps(series, anchor=ANCHOR, split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert gaps["reviews"]["rise"] > 300 and gaps["reviews"]["strength"] == 0.0
    assert gaps["db"]["strength"] > 0.5
    # The same spike at the stretch's end, followed by a wait that stays: a delay that began there.
    late = [150.0] * 21 + [2830.0, 2870.0, 2870.0]
    series[:2] = [_series("reviews", "latency_p95_ms", [150.0] * 24),
                  _series("reviews", "caller_latency_p95_ms", [v * 1.25 for v in late])]
    gaps = signatures.wait_gaps(series, anchor=ANCHOR, split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert gaps["reviews"]["strength"] > 0.0


def test_wait_gap_needs_both_series() -> None:
    series = [_series("db", "latency_p95_ms", _flat_then(10.0, 900.0))]
    assert signatures.wait_gaps(series, anchor=ANCHOR, split=SPLIT, stop=STOP, parse_ts=parse_ts) == {}


def _trace_lines(tid: str, at: float, chain: list[tuple[str, str, str]]) -> list[dict]:
    return [{"ts": fmt_ts(at + i * 0.01), "service": svc, "level": level, "message": msg, "trace_id": tid}
            for i, (svc, level, msg) in enumerate(chain)]


def _traces(before: int, after: int, broken: list[tuple[str, str, str]]) -> list[dict]:
    ok = [("gateway", "INFO", "request in"), ("orders", "INFO", "order query"), ("stock", "INFO", "stock read")]
    lines: list[dict] = []
    for i in range(before):
        lines += _trace_lines(f"b{i}", SPLIT - 400 + i, ok)
    for i in range(after):
        lines += _trace_lines(f"a{i}", SPLIT + 10 + i, broken)
    return lines


def test_first_error_of_a_trace_blames_its_writer_not_the_callers_that_log_after_it() -> None:
    broken = [("gateway", "INFO", "request in"), ("stock", "ERROR", "stock row 42 missing"),
              ("orders", "ERROR", "order failed: stock answered 500"), ("gateway", "ERROR", "request failed")]
    traces = signatures.joined_traces(_traces(30, 10, broken))
    assert traces is not None
    firsts = signatures.first_errors(traces, split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert set(firsts) == {"stock"}
    assert firsts["stock"]["excess"] == 10 and firsts["stock"]["strength"] > 0.8


def test_first_error_that_names_another_service_is_not_the_writers_own() -> None:
    # "orders" logs first, but its error reports trouble reaching "stock": not a fault of its own code.
    broken = [("gateway", "INFO", "request in"), ("orders", "ERROR", "no instances available for stock"),
              ("gateway", "ERROR", "request failed")]
    traces = signatures.joined_traces(_traces(30, 10, broken))
    known = ["gateway", "orders", "stock"]
    assert signatures.first_errors(traces, split=SPLIT, stop=STOP, parse_ts=parse_ts, known=known) == {}
    assert set(signatures.first_errors(traces, split=SPLIT, stop=STOP, parse_ts=parse_ts)) == {"orders"}


def test_first_error_discounts_a_shape_the_service_always_opened() -> None:
    noisy = [("gateway", "INFO", "request in"), ("stock", "ERROR", "cache miss for 17")]
    lines = []
    for i in range(30):
        lines += _trace_lines(f"b{i}", SPLIT - 400 + i, noisy)
    for i in range(10):
        lines += _trace_lines(f"a{i}", SPLIT + 10 + i, noisy)
    firsts = signatures.first_errors(signatures.joined_traces(lines), split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert firsts["stock"]["strength"] == 0.0


def test_first_error_is_weaker_without_earlier_traces_and_needs_ids_that_join_services() -> None:
    broken = [("gateway", "INFO", "request in"), ("stock", "ERROR", "stock row 42 missing")]
    traces = signatures.joined_traces(_traces(0, 30, broken))
    # Without earlier traces every shape looks new: the writer still counts, at a share of the strength.
    firsts = signatures.first_errors(traces, split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert 0 < firsts["stock"]["strength"] <= signatures.NO_HISTORY_SHARE
    # One id per line (as some generators write them) is not a trace.
    per_line = [{"ts": fmt_ts(SPLIT + i), "service": "stock", "level": "ERROR", "message": "x", "trace_id": f"t{i}"}
                for i in range(100)]
    assert signatures.joined_traces(per_line) is None


def test_saturation_needs_a_share_that_reaches_its_limit_from_well_below() -> None:
    series = [_series("cache", "cpu_util", _flat_then(0.02, 0.97)),
              _series("hot", "cpu_util", _flat_then(0.85, 0.95)),       # always hot: not news
              _series("web", "cpu_util", _flat_then(0.10, 0.40)),       # rose, far from its limit
              _series("box", "cpu_seconds", _flat_then(5.0, 90.0))]     # not a share of a limit
    sats = signatures.saturations(series, split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert set(sats) == {"cache"} and sats["cache"]["strength"] == 1.0


def _cron_on_a_level(level_from: float, level_to: float, rise_at: int, spike: float, n: int = 60,
                     period: int = 10) -> list[float]:
    """A utilisation at ``level_from`` (``level_to`` from point ``rise_at``) with a ``spike``-high run of a
    periodic job every ``period`` points, two points long, the last one inside the stretch."""
    values = []
    for i in range(n):
        base = level_from if i < rise_at else level_to
        values.append(base + (spike if i % period in (3, 4) else 0.0) + 0.01 * ((i * 7) % 3 - 1))
    return values


def test_saturation_skips_a_periodic_job_riding_on_a_raised_level() -> None:
    # One point a minute from 40 min before the stretch: the stretch holds points 40..44, the job runs at
    # points 3-4, 13-14, ..., 43-44 (one run inside the stretch).
    t0 = SPLIT - 40 * 60.0

    def series(service: str, values: list[float]) -> dict:
        return {"service": service, "name": "cpu_util",
                "points": [[fmt_ts(t0 + i * 60.0), v] for i, v in enumerate(values)]}

    # The job lifts CPU by 0.27 every 10 min; a surge raised the level from 0.40 to 0.65 a few minutes before
    # the stretch, so the job's run in the stretch reaches 0.92: its earlier runs reached the same height.
    worker = _cron_on_a_level(0.40, 0.65, 35, 0.27)
    # The same job, but the service itself saturates in the stretch (0.40 -> 0.97): still a saturation.
    hot = [v if i < 40 else 0.97 for i, v in enumerate(_cron_on_a_level(0.40, 0.40, 35, 0.27))]
    # No job: the same raised level with one new 0.27 jump in the stretch is news (no earlier runs).
    single = [0.40 + 0.01 * ((i * 7) % 3 - 1) if i < 35 else 0.65 for i in range(60)]
    single[43] = single[44] = 0.92
    # Small earlier excursions (0.08), then the service sits at its limit in the stretch, wobbling by 0.04:
    # the wobble is no job's run, the service saturated.
    pinned = [0.48 + (0.08 if i % 10 in (3, 4) else 0.0) if i < 40 else 0.95 + 0.02 * (i % 3) for i in range(60)]
    sats = signatures.saturations([series("worker", worker), series("hot", hot), series("single", single),
                                   series("pinned", pinned)], split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert "pinned" in sats
    assert max(worker[40:45]) >= signatures.SATURATED            # the job's run does reach the line
    assert "worker" not in sats
    assert sats["hot"]["peak"] >= 0.95
    assert "single" in sats


def _write_world(root: Path) -> Path:
    """A small world: a leaf ("stock") behind a network delay, its caller ("orders") slow because of it.

    A second callee ("prices") works slower too, by less: without the wait gap it is the deeper anomaly
    in its own latency, and stock's own latency never moves."""
    world = root / "gap-world"
    world.mkdir()
    start, end = T0, T0 + 1800.0
    (world / "world.yaml").write_text(yaml.safe_dump({
        "name": "gap-world", "window": {"start": fmt_ts(start), "end": fmt_ts(end)},
        "trigger": {"alert": "a1"}, "domain": "test"}))
    (world / "topology.yaml").write_text(yaml.safe_dump({"services": [
        {"name": "gateway", "calls": ["orders", "users"], "tier": "frontend"},
        {"name": "orders", "calls": ["stock", "prices"], "tier": "core"},
        {"name": "users", "calls": [], "tier": "backend"},
        {"name": "stock", "calls": [], "tier": "backend"},
        {"name": "prices", "calls": [], "tier": "backend"}]}))
    (world / "alerts.jsonl").write_text(json.dumps({
        "id": "a1", "ts": fmt_ts(ANCHOR), "source": "alertmanager", "service": "gateway", "severity": "critical",
        "title": "High p95 latency on gateway", "labels": {}}) + "\n")
    (world / "changes.jsonl").write_text("")
    (world / "logs.jsonl").write_text("")
    rows = []
    jump = ANCHOR - 120.0
    for i in range(30):
        ts = start + 60.0 * i
        slow = ts >= jump
        own = {"gateway": 40.0, "orders": 30.0, "users": 8.0, "stock": 10.0, "prices": 9.0}
        wait = {"gateway": 42.0, "orders": 32.0, "users": 10.0, "stock": 12.0, "prices": 11.0}
        if slow:
            own["orders"] += 2000.0
            own["gateway"] += 2000.0
            wait["orders"] += 2000.0
            wait["gateway"] += 2000.0
            wait["stock"] += 2000.0
            own["prices"] += 600.0
            wait["prices"] += 600.0
        for svc in own:
            rows.append({"ts": fmt_ts(ts), "service": svc, "name": "latency_p95_ms", "value": own[svc] + i % 3})
            rows.append({"ts": fmt_ts(ts), "service": svc, "name": "caller_latency_p95_ms", "value": wait[svc] + i % 3})
            rows.append({"ts": fmt_ts(ts), "service": svc, "name": "error_rate", "value": 0.0})
    (world / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return world


def test_engine_blames_the_service_behind_the_wait_gap(tmp_path: Path) -> None:
    report = engine.run_all(WorldTools(_write_world(tmp_path)), None, None)
    top = report["hypotheses"][0]
    assert top["service"] == "stock"
    # The signature is the first piece of evidence, in the report's own sources.
    assert top["evidence"][0]["source"] == "metrics"
    assert top["evidence"][0]["summary"].startswith("callers wait 2000 ms longer for stock")


def test_skipped_in_traces_finds_a_statement_no_longer_reached_after_its_leader() -> None:
    good = [("gateway", "INFO", "request in"), ("trips", "INFO", "query trips start"),
            ("trips", "INFO", "query trips done, 3 found")]
    cut = [("gateway", "INFO", "request in"), ("trips", "INFO", "query trips start"),
           ("gateway", "ERROR", "request failed")]
    lines = []
    for i in range(8):
        lines += _trace_lines(f"b{i}", SPLIT - 400 + i, good)
    for i in range(9):
        lines += _trace_lines(f"a{i}", SPLIT + 10 + i, cut)
    traces = {}
    for line in lines:
        traces.setdefault(line["trace_id"], []).append(line)
    skips = signatures.skipped_in_traces(traces, split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert set(skips) == {"trips"}
    assert skips["trips"]["follower"].startswith("query trips done") and skips["trips"]["followed"] == 0
    assert skips["trips"]["strength"] > 0.5
    # The same traces with the follower still there: nothing is skipped.
    for i in range(9):
        traces[f"a{i}"] = _trace_lines(f"a{i}", SPLIT + 10 + i, good)
    assert signatures.skipped_in_traces(traces, split=SPLIT, stop=STOP, parse_ts=parse_ts) == {}


def test_first_error_expects_a_shape_at_its_rarest_earlier_pocket() -> None:
    # Two earlier pockets of trace data: a clean one, then one where the same fault already showed.
    # Pooled, the fault's shape would look expected; the clean pocket says it is not normal.
    ok = [("gateway", "INFO", "request in"), ("stock", "INFO", "stock read")]
    broken = [("gateway", "INFO", "request in"), ("stock", "ERROR", "stock row 42 missing")]
    lines = []
    for i in range(30):
        lines += _trace_lines(f"p{i}", SPLIT - 900 + i, ok)
    for i in range(30):
        lines += _trace_lines(f"q{i}", SPLIT - 400 + i, broken)
    for i in range(30):
        lines += _trace_lines(f"a{i}", SPLIT + 10 + i, broken)
    firsts = signatures.first_errors(signatures.joined_traces(lines), split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert firsts["stock"]["expected"] == 0.0 and firsts["stock"]["strength"] > 0.9



def _pocketed(pockets: list[tuple[float, int, int]], after: tuple[int, int], *, failing_before: bool = True) -> list[dict]:
    """Traces in earlier pockets (start, other traces, batch traces) and in the stretch (other, batch).

    A batch trace holds a "batch" line and, when failing, an ERROR "job state wrong" line; the other traces
    are healthy "orders" requests. In the stretch the batch always fails."""
    ok = [("gateway", "INFO", "request in"), ("orders", "INFO", "order query")]
    failing = [("batch", "INFO", "job start"), ("batch", "ERROR", "job state wrong for 7")]
    healthy = [("batch", "INFO", "job start"), ("batch", "INFO", "job done")]
    lines: list[dict] = []
    for p, (start, others, batches) in enumerate(pockets + [(SPLIT + 5, *after)]):
        batch = failing if failing_before or start >= SPLIT else healthy
        for i in range(others):
            lines += _trace_lines(f"o{p}-{i}", start + i * 0.5, ok)
        for i in range(batches):
            lines += _trace_lines(f"b{p}-{i}", start + 0.25 + i * 0.5, batch)
    return lines


def test_first_error_of_a_surging_writer_is_expected_per_its_own_traces() -> None:
    # The batch opens the errors of every trace it runs in, in each earlier pocket. In the stretch its traffic
    # quadruples (2 -> 8 traces among 40): measured against all traces its errors look new; per its own traces
    # they are as usual.
    lines = _pocketed([(SPLIT - 900, 38, 2), (SPLIT - 400, 38, 2)], (32, 8))
    firsts = signatures.first_errors(signatures.joined_traces(lines), split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert firsts["batch"]["expected"] == 8.0 and firsts["batch"]["strength"] == 0.0


def test_first_error_of_a_surging_writer_that_never_failed_before_is_new() -> None:
    # Same surge, but the batch never failed before: its errors are new, whatever its traffic.
    lines = _pocketed([(SPLIT - 900, 38, 2), (SPLIT - 400, 38, 2)], (32, 8), failing_before=False)
    firsts = signatures.first_errors(signatures.joined_traces(lines), split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert firsts["batch"]["expected"] == 0.0 and firsts["batch"]["strength"] > 0.5


def test_first_error_without_a_surge_keeps_the_all_traces_expectation() -> None:
    # Its traffic share holds (12 of 50 -> 10 of 40), its failures per trace jump (1 in 6 -> all): new.
    lines = _pocketed([(SPLIT - 900, 38, 12), (SPLIT - 400, 38, 12)], (30, 10), failing_before=False)
    # Two earlier failures per pocket (of 12 batch traces).
    for p, start in enumerate((SPLIT - 900, SPLIT - 400)):
        for i in range(2):
            lines += _trace_lines(f"x{p}-{i}", start + 30 + i, [("batch", "ERROR", "job state wrong for 9")])
    firsts = signatures.first_errors(signatures.joined_traces(lines), split=SPLIT, stop=STOP, parse_ts=parse_ts)
    assert firsts["batch"]["expected"] < 2.0 and firsts["batch"]["strength"] > 0.5
