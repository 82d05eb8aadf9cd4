"""Callees no longer reached between two of their caller's trace lines (agents/evidence/unreached.py)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agents import engine
from agents.evidence import ranking, signatures, unreached
from agents.evidence.logtemplates import mask
from agents.evidence.timeutil import fmt_ts, parse_ts
from sandbox.tools import WorldTools

T0 = 1_700_000_000.0
ANCHOR = T0 + 1200.0
SPLIT, STOP = ANCHOR - 150.0, ANCHOR + 90.0

# A caller ("basic") logs a line, calls "prices" (which logs one line), logs the next line, then calls
# "stations" the same way. A trace starts at the entry ("travel").
HEALTHY = [("travel", "query trips start"), ("basic", "query price config"), ("prices", "price query for route 7"),
           ("basic", "price config done"), ("stations", "station list read"), ("basic", "stations done"),
           ("travel", "query trips done")]
# The price handler throws before it logs: basic logs its two lines back to back, and goes on.
SKIPPED = [step for step in HEALTHY if step[0] != "prices"]
# A different failure: basic itself stops after its first line (the trace is cut short, nothing is skipped).
CUT = HEALTHY[:2]


def _trace(tid: str, at: float, steps: list[tuple[str, str]]) -> list[dict]:
    return [{"ts": fmt_ts(at + i * 0.01), "service": svc, "level": "INFO", "message": msg, "trace_id": tid}
            for i, (svc, msg) in enumerate(steps)]


def _lines(before: list[list[tuple[str, str]]], after: list[list[tuple[str, str]]]) -> list[dict]:
    lines: list[dict] = []
    for i, steps in enumerate(before):
        lines += _trace(f"b{i}", SPLIT - 300 + 5 * i, steps)
    for i, steps in enumerate(after):
        lines += _trace(f"a{i}", SPLIT + 10 + 5 * i, steps)
    return lines


def _unreached(lines: list[dict]) -> dict:
    traces = signatures.joined_traces(lines)
    assert traces is not None
    return unreached.unreached_callees(traces, split=SPLIT, stop=STOP, parse_ts=parse_ts)


def test_a_callee_skipped_between_its_callers_lines_is_blamed_not_the_caller() -> None:
    out = _unreached(_lines([HEALTHY] * 24, [SKIPPED] * 5))
    # basic's own lines changed, but basic still logs its second line: prices, not basic, was skipped.
    assert set(out) == {"prices"}
    found = out["prices"]
    assert (found["caller"], found["leader"], found["resume"]) == ("basic", "query price config", "price config done")
    assert found["traces"] == 5 and found["reached"] == 0
    assert abs(found["tail"] - 0.05 ** 5) < 1e-15 and 0.0 < found["strength"] <= 1.0


def test_a_callee_still_reached_or_a_trace_cut_short_is_no_signature() -> None:
    # Reached as before: nothing.
    assert _unreached(_lines([HEALTHY] * 24, [HEALTHY] * 5)) == {}
    # The caller fails after its first line: the gap (L, R) never closes, so no callee counts as skipped.
    assert _unreached(_lines([HEALTHY] * 24, [CUT] * 5)) == {}


def test_a_loose_pattern_or_one_missed_trace_is_not_enough() -> None:
    # Earlier, basic reached prices between these two lines in only 2 of 3 traces: not a pattern.
    assert _unreached(_lines([HEALTHY, HEALTHY, SKIPPED] * 8, [SKIPPED] * 5)) == {}
    # One trace without the callee is chance (tail 0.05 > MAX_TAIL).
    assert _unreached(_lines([HEALTHY] * 24, [SKIPPED])) == {}


def test_the_expected_share_comes_from_the_healthiest_earlier_stretch() -> None:
    # An earlier pocket of the same fault (right before the stretch, 20 traces) must not make the skip normal:
    # the first pocket, well apart in time, still shows the pattern.
    lines: list[dict] = []
    for i in range(6):
        lines += _trace(f"h{i}", SPLIT - 900 + 5 * i, HEALTHY)
    for i in range(20):
        lines += _trace(f"f{i}", SPLIT - 300 + 5 * i, SKIPPED)
    for i in range(4):
        lines += _trace(f"a{i}", SPLIT + 10 + 5 * i, SKIPPED)
    assert set(_unreached(lines)) == {"prices"}
    # With only the faulty pocket before, there is no healthy pattern to miss.
    assert _unreached([x for x in lines if not x["trace_id"].startswith("h")]) == {}
    # Pooled over both pockets the share is 6 of 26: the pooled share would have missed the skip.


def test_poisson_binomial_cdf() -> None:
    assert abs(unreached.poisson_binomial_cdf(0, [0.5, 0.5, 0.5]) - 0.125) < 1e-12
    assert abs(unreached.poisson_binomial_cdf(1, [0.9, 0.5]) - (0.1 * 0.5 + 0.9 * 0.5 + 0.1 * 0.5)) < 1e-12
    assert unreached.poisson_binomial_cdf(2, [0.3, 0.3]) > 1.0 - 1e-12


def test_the_signature_becomes_the_hypothesis_evidence() -> None:
    found = _unreached(_lines([HEALTHY] * 24, [SKIPPED] * 5))["prices"]
    items = ranking._signature_evidence("prices", {"unreached": found})
    assert items and items[0]["source"] == "logs"
    assert items[0]["summary"].startswith("basic no longer reaches prices between 'query price config'")



def test_a_long_line_is_cut_between_tokens_so_one_statement_keeps_one_shape() -> None:
    # Two lines of one statement with different id lists: cut at a fixed length, an id is cut in half (left
    # unmasked) and the two lines get two shapes.
    ids = ["92708982-77af-4318-be25-57ccb0ff69ad", "aefcef3f-3f42-46e8-afd7-6cb2a928bd3d",
           "a3f256c1-0e43-4f7d-9c21-121bf258101f", "084837bb-53c8-4438-87c8-0321a4d09917",
           "f3d4d4ef-693b-4456-8eed-59c0d717dd08", "20eb7120-5e6d-4a4c-9b3b-6a1f0e2d9c11"]
    head = "f.m.s.BasicServiceImpl#405 [getRoutesByRouteIds][Get Route By Ids][Route IDs: ["
    one = head + ", ".join(ids[:5]) + "]]"
    two = head + ", ".join(ids[:3] + ids[5:]) + "]]"
    assert mask(one[:200])[:120] != mask(two[:200])[:120]
    assert unreached._head(one).endswith(",")
    assert mask(unreached._head(one))[:120] == mask(unreached._head(two))[:120]


def _write_world(root: Path) -> Path:
    """A world where "prices" throws before it logs: only the shape of basic's traces shows it.

    A decoy: "stations" gets slower from two minutes before the report (its own latency, nothing else)."""
    world = root / "unreached-world"
    world.mkdir()
    start, end = T0, T0 + 1800.0
    (world / "world.yaml").write_text(yaml.safe_dump({
        "name": "unreached-world", "window": {"start": fmt_ts(start), "end": fmt_ts(end)},
        "trigger": {"alert": "a1"}, "domain": "test"}))
    (world / "topology.yaml").write_text(yaml.safe_dump({"services": [
        {"name": "travel", "calls": ["basic"], "tier": "frontend"},
        {"name": "basic", "calls": ["prices", "stations"], "tier": "core"},
        {"name": "prices", "calls": [], "tier": "backend"},
        {"name": "stations", "calls": [], "tier": "backend"}]}))
    (world / "alerts.jsonl").write_text(json.dumps({
        "id": "a1", "ts": fmt_ts(ANCHOR), "source": "alertmanager", "service": "travel", "severity": "warning",
        "title": "High p95 latency on travel", "labels": {}}) + "\n")
    (world / "changes.jsonl").write_text("")
    lines = _lines([HEALTHY] * 24, [SKIPPED] * 5)
    (world / "logs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in sorted(lines, key=lambda x: x["ts"])))
    rows = []
    for i in range(30):
        for svc in ("travel", "basic", "prices", "stations"):
            slow = 400.0 if svc == "stations" and start + 60.0 * i >= ANCHOR - 120.0 else 0.0
            rows.append({"ts": fmt_ts(start + 60.0 * i), "service": svc, "name": "latency_p95_ms",
                         "value": 20.0 + i % 3 + slow})
            rows.append({"ts": fmt_ts(start + 60.0 * i), "service": svc, "name": "error_rate", "value": 0.0})
    (world / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return world


def test_engine_blames_the_callee_its_caller_no_longer_reaches(tmp_path: Path) -> None:
    report = engine.run_all(WorldTools(_write_world(tmp_path)), None, None)
    top = report["hypotheses"][0]
    assert top["service"] == "prices"
    assert top["evidence"][0]["summary"].startswith("basic no longer reaches prices")
