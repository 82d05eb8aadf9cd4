"""Callees no longer reached: a service that its caller stopped reaching between two of the caller's lines.

An exception thrown at the start of a service's handler leaves no line of
its own: the service logs nothing, fails nothing it can name, and its
callers carry on (TrainTicket answers most failures with an error body).
What changes is the shape of each trace: a caller that used to log line L,
then wait while the callee logged, then log line R, now logs L and R back
to back. This is Nezha's "expected event pattern absent" (Yu et al.,
ESEC/FSE 2023: per-trace event graphs of log templates and span calls, a
fault-free phase against a faulty one) read from trace-joined log lines:

- In every trace, each pair of consecutive lines (L, R) of one service A
  opens a *gap*; the service of the first line inside it is the callee A
  reached between them.
- Earlier (before the stretch), the share of traces holding the gap
  (A, L, R) whose first inner line came from callee B is measured in short
  stretches of time and its highest value kept: telemetry comes in pockets
  and a pocket can hold an earlier fault on the same callee, so the pooled
  share would count that fault as normal.
- In the stretch, each trace holding such a gap is one Bernoulli trial
  with that share (capped: sampled logs can lose a line); B is reached when
  any of its lines lies inside the gap. The Poisson-binomial lower tail of
  the reached count says how unlikely the silence is by chance.

Because the caller still logs R, the trace was not cut short by the
caller's own failure: the callee was skipped, and it is the callee that is
blamed, not the caller whose lines changed.
"""

from __future__ import annotations

import math
from typing import Any

from agents.evidence.logtemplates import mask

ERROR_LEVELS = ("ERROR", "FATAL", "CRITICAL")
# Earlier traces are read in stretches this long (s) ...
WINDOW_S = 60.0
# ... holding at least this many traces with the gap; the gap's callee must have opened it in at least
# this share of them in one such stretch.
MIN_EARLIER = 3
MIN_SHARE = 0.9
# Never treat a pattern as certain: a sampled or reordered log can hide a reached callee by chance.
MAX_P_REACH = 0.95
# Lower tail at or below which the callee counts as no longer reached. On nezha-tt no service that was not
# the culprit came below 0.3 (45 worlds); the six culprits it flags are all below 4e-3.
MAX_TAIL = 0.01
# -log10(tail) at which the strength reaches 1.
FULL_DECADES = 5.0
# Weight of the strength in a service's score (engine._add_signatures; a strong metric excursion scores ~1).
SCORE_WEIGHT = 3.5


def _head(message: str, limit: int = 200) -> str:
    """The message's first ``limit`` characters, without a token cut in half (a cut id would not be masked,
    and two lines of one statement would get two shapes)."""
    if len(message) <= limit:
        return message
    head = message[:limit]
    return head.rsplit(" ", 1)[0] if " " in head else head


def _gaps(trace: list[dict[str, Any]], cache: dict[str, str]) -> dict[tuple[str, str, str], tuple[set[str], str | None]]:
    """Per gap (A, L, R) of one trace: the services logging inside it and the first one (None if empty)."""
    seq: list[tuple[str, str]] = []
    for line in trace:
        if str(line.get("level", "")).upper() in ERROR_LEVELS:
            continue
        text = _head(str(line.get("message", "")))
        shape = cache.get(text)
        if shape is None:
            shape = cache[text] = mask(text)[:120]
        seq.append((str(line.get("service")), shape))
    out: dict[tuple[str, str, str], tuple[set[str], str | None]] = {}
    last: dict[str, tuple[int, str]] = {}
    for i, (svc, shape) in enumerate(seq):
        if svc in last:
            j, lead = last[svc]
            key = (svc, lead, shape)
            if key not in out:
                inside = {seq[k][0] for k in range(j + 1, i)} - {svc}
                out[key] = (inside, seq[j + 1][0] if i > j + 1 else None)
        last[svc] = (i, shape)
    return out


def poisson_binomial_cdf(k: int, probs: list[float]) -> float:
    """P(X ≤ k) for X the number of successes of independent Bernoulli trials.

    Params: k — observed successes; probs — each trial's success probability (0..1).
    Returns: the lower tail probability.
    """
    if k >= len(probs):
        return 1.0
    dist = [1.0]
    for p in probs:
        nxt = [0.0] * (len(dist) + 1)
        for i, mass in enumerate(dist):
            nxt[i] += mass * (1.0 - p)
            nxt[i + 1] += mass * p
        dist = nxt
    return min(1.0, sum(dist[: k + 1]))


def _expected(earlier: list[tuple[float, dict[tuple[str, str, str], tuple[set[str], str | None]]]]
              ) -> dict[tuple[str, str, str], list[tuple[str, float]]]:
    """Per gap: the callees that opened it in at least MIN_SHARE of its traces in some WINDOW_S stretch."""
    best: dict[tuple[tuple[str, str, str], str], float] = {}
    for i, (begin, _) in enumerate(earlier):
        held: dict[tuple[str, str, str], int] = {}
        opened: dict[tuple[tuple[str, str, str], str], int] = {}
        for start, gaps in earlier[i:]:
            if start - begin > WINDOW_S:
                break
            for key, (_, first) in gaps.items():
                held[key] = held.get(key, 0) + 1
                if first is not None:
                    opened[(key, first)] = opened.get((key, first), 0) + 1
        for (key, callee), count in opened.items():
            if held[key] >= MIN_EARLIER:
                best[(key, callee)] = max(best.get((key, callee), 0.0), count / held[key])
    out: dict[tuple[str, str, str], list[tuple[str, float]]] = {}
    for (key, callee), share in best.items():
        if share >= MIN_SHARE:
            out.setdefault(key, []).append((callee, min(MAX_P_REACH, share)))
    return out


def unreached_callees(traces: dict[str, list[dict[str, Any]]], *, split: float, stop: float,
                      parse_ts: Any) -> dict[str, dict[str, Any]]:
    """Per service: callers that used to reach it between two of their lines and, in [split, stop], do not.

    Params: traces — ``signatures.joined_traces``' answer (lines per trace id, time-ordered);
    split, stop — the stretch (epoch s); parse_ts — ISO → epoch s (or None).
    Returns: ``{service: {caller, leader, resume, traces, reached, expected, tail, strength}}`` for services
    whose lower tail is at most MAX_TAIL; ``caller``/``leader``/``resume`` name one gap it used to open,
    ``expected`` is the reached count the earlier shares predict, ``strength`` 0..1.
    """
    cache: dict[str, str] = {}
    earlier: list[tuple[float, dict[tuple[str, str, str], tuple[set[str], str | None]]]] = []
    recent: list[dict[tuple[str, str, str], tuple[set[str], str | None]]] = []
    for trace in traces.values():
        start = parse_ts(trace[0].get("ts")) if trace else None
        if start is None or start > stop:
            continue
        gaps = _gaps(trace, cache)
        if not gaps:
            continue
        if start >= split:
            recent.append(gaps)
        else:
            earlier.append((start, gaps))
    earlier.sort(key=lambda item: item[0])
    expected = _expected(earlier)
    if not expected:
        return {}
    # One trial per recent trace and callee: reached if any gap expecting the callee holds one of its lines.
    trials: dict[str, list[tuple[float, bool, tuple[str, str, str]]]] = {}
    for gaps in recent:
        per: dict[str, tuple[float, bool, tuple[str, str, str]]] = {}
        for key, (inside, _) in gaps.items():
            for callee, share in expected.get(key, ()):
                hit = callee in inside
                if callee in per:
                    old = per[callee]
                    per[callee] = (max(old[0], share), old[1] or hit, old[2] if old[0] >= share else key)
                else:
                    per[callee] = (share, hit, key)
        for callee, trial in per.items():
            trials.setdefault(callee, []).append(trial)
    out: dict[str, dict[str, Any]] = {}
    for callee, rows in trials.items():
        count = sum(1 for _, hit, _ in rows if hit)
        probs = [p for p, _, _ in rows]
        tail = poisson_binomial_cdf(count, probs)
        if tail > MAX_TAIL:
            continue
        key = next((k for _, hit, k in rows if not hit), rows[0][2])
        out[callee] = {"caller": key[0], "leader": key[1], "resume": key[2], "traces": len(rows),
                       "reached": count, "expected": round(sum(probs), 2), "tail": tail,
                       "strength": round(min(1.0, -math.log10(max(tail, 1e-300)) / FULL_DECADES), 4)}
    return out
