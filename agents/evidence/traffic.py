"""Request-rate collapse at a callee whose callers kept sending: failing where no error line says so.

Read without logs, a callee's fault often shows most clearly in its callers: the user-facing service's
error rate climbs while the callee's own failed-span share grows only modestly (issue #15: entry 0 → 0.1…0.8,
callee's error rate 0.02 → 0.08). What the callee shows is its traffic: the requests it completes fall
(47 → 9 req/s) while its callers' own traffic holds, and its callers wait longer for it
(``caller_latency*`` 45 → 103 ms). Callers that kept their traffic but whose calls to it stopped completing
are failing because of it, not the other way round.

A drop alone is not enough: a caller that breaks before it calls (a bad deploy on the entry service) also
sends fewer calls down, but then its callee neither fails more nor makes anyone wait. So a drop counts only
with a sign of the callee's own trouble: a higher failed-span share or a longer wait of its callers.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Any

from agents.evidence.anomalies import binomial_tail, sample_step

# The callee's request rate must fall at least this share below its earlier level ...
MIN_DROP = 0.4
# ... (full strength at this drop) ...
FULL_DROP = 0.8
# ... while each caller with a request rate of its own keeps at least this share of its traffic.
CALLER_STEADY = 0.8
# The earlier level: the median over this span before the stretch (seasonal traffic moves over hours).
BEFORE_SPAN_S = 1800.0
# Signs of the callee's own trouble: its failed-span share up this much, or its callers' wait for it up this
# share and this many ms (the practical-significance bar of latency in anomalies.py).
ERROR_RISE = 0.03
WAIT_RATIO = 1.3
WAIT_RISE_MS = 20.0
# Samples needed on each side: a pocket of sampled traces is no traffic history.
MIN_BEFORE = 4
MIN_AFTER = 2
# A failed share of few requests is judged by counts (_failing_by_count): the failed requests since the rate fell
# must be this improbable under the earlier share (one-sided Poisson tail).
COUNT_P = 0.01
# ... counted over at least this long from the fall (a few requests a minute need minutes to say anything; the
# stretch around a trigger that came right after the fall holds two or three of them).
COUNT_SPAN_S = 600.0
# A sample of fewer requests than this is a count of few: its rate moves in steps of a request (0.05 req/s a
# minute at 3 requests), so the earlier low decile ties the stretch's level and the fall is judged by counts
# (_fewer_by_count) — and its callers' p95 wait is the slowest of a handful, heavy-tailed (_waits_by_sign).
FEW_REQUESTS = 30.0


def _points(item: dict[str, Any], parse_ts: Any) -> list[tuple[float, float]]:
    out = []
    for pair in item.get("points") or []:
        if isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[1], int | float) and pair[1] == pair[1]:
            ts = parse_ts(pair[0])
            if ts is not None:
                out.append((ts, float(pair[1])))
    return out


def _levels(points: list[tuple[float, float]], *, split: float,
            stop: float) -> tuple[float, float, float, float] | None:
    """(earlier median, stretch median, earlier low decile, earlier high decile), or None when too few samples."""
    before = sorted(v for t, v in points if split - BEFORE_SPAN_S <= t < split)
    after = [v for t, v in points if split <= t <= stop]
    if len(before) < MIN_BEFORE or len(after) < MIN_AFTER:
        return None
    return median(before), median(after), before[int(0.1 * (len(before) - 1))], before[-1 - int(0.1 * (len(before) - 1))]


def _kind(name: str) -> str | None:
    lowered = name.lower()
    if "request" in lowered and ("per_s" in lowered or "rate" in lowered or "rps" in lowered):
        return "requests"
    if "error" in lowered:
        return "errors"
    if "caller" in lowered and ("latency" in lowered or lowered.endswith("_ms")):
        return "wait"
    return None


def request_series(name: str) -> bool:
    """Whether a metric is a request rate (requests_per_s, request_rate, rps)."""
    return _kind(name) == "requests"


def collapses(series_list: list[dict[str, Any]], *, callers: dict[str, set[str]], split: float, stop: float,
              parse_ts: Any) -> dict[str, dict[str, Any]]:
    """Per service: its request rate collapsed in [split, stop] while its callers' traffic held.

    Params: series_list — metrics.series items; callers — service → the services that call it (topology);
    split, stop — the stretch (epoch s); parse_ts — ISO → epoch s (or None).
    Returns: ``{service: {before, after, drop, callers, error_before, error_after, wait_before, wait_after,
    strength, fell_at}}`` for services whose rate fell at least MIN_DROP with at least one caller holding its traffic
    (and none losing it) and with a sign of its own trouble; ``strength`` 0..1; ``fell_at`` where the rate fell
    (_fell_at, epoch s).
    """
    levels: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    raw: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for item in series_list:
        svc, kind = str(item.get("service") or ""), _kind(str(item.get("name") or ""))
        if not svc or kind is None or kind in levels.get(svc, {}):
            continue
        points = _points(item, parse_ts)
        found = _levels(points, split=split, stop=stop)
        if found is not None:
            levels.setdefault(svc, {})[kind] = found
            raw.setdefault(svc, {})[kind] = points
    out: dict[str, dict[str, Any]] = {}
    for svc, own in levels.items():
        if "requests" not in own:
            continue
        before, after, low, _ = own["requests"]
        if before <= 0:
            continue
        drop = 1.0 - after / before
        # Where the request rate fell (_fell_at): the stretch around a trigger that came right after the fall holds
        # a few samples from before it, which hide the fall from the stretch's median; measured from there too.
        fell = _fell_at(raw[svc]["requests"], split=split, stop=stop)
        since_stop = max(stop, fell + COUNT_SPAN_S)  # measured from the fall: at least COUNT_SPAN_S
        if drop < MIN_DROP or after >= low:
            since = _levels(raw[svc]["requests"], split=fell, stop=since_stop)
            if since is None or since[0] <= 0:
                continue
            before, after, low, _ = since
            drop = 1.0 - after / before
        # Noise-aware: a rate that was as low in healthy minutes (a few requests a minute, often none) shows
        # nothing by falling there again; the stretch must sit below the series' own low decile — or, for a rate
        # of few requests a sample, hold improbably few requests for the earlier rate (_fewer_by_count).
        few = _few(raw[svc]["requests"], split=fell)
        if drop < MIN_DROP or (after >= low and not (few and _fewer_by_count(raw[svc]["requests"], split=fell,
                                                                             stop=since_stop))):
            continue
        steady: list[str] = []
        for caller in sorted(callers.get(svc, set())):
            rate = levels.get(caller, {}).get("requests")
            if rate is None or rate[0] <= 0:
                continue
            if rate[1] / rate[0] < CALLER_STEADY:
                steady = []  # a caller that lost its own traffic: the drop may come from above
                break
            steady.append(caller)
        if not steady:
            continue
        err = own.get("errors")
        wait = own.get("wait")
        # Each above the series' own high decile too: noisy p95s and error shares of little traffic jump often.
        failing = err is not None and err[1] - err[0] >= ERROR_RISE and err[1] > err[3]
        error_levels = (err[0], err[1]) if err else None
        # Few requests: failed requests counted since the request rate fell (_failing_by_count; a stretch of a few
        # minutes holds too few requests of a service with a few a minute).
        counted = None if failing else _failing_by_count(raw[svc].get("errors"), raw[svc]["requests"],
                                                         split=fell, stop=since_stop)
        if counted is not None:
            failing, error_levels = True, counted
        waiting = _waits(wait) or (few and "wait" in raw[svc]
                                   and _waits_by_sign(raw[svc]["wait"], split=fell, stop=since_stop))
        if not waiting and fell < split and "wait" in raw[svc]:
            # Its callers' wait measured from where the rate fell as well: the stretch's earlier samples then hold
            # the fall's first minutes, whose waits lift the earlier high decile (issue #15 round 10, field 2235
            # gen-0029: a callee's requests fell at 14:08, 30 s before the stretch began, its callers' wait 2.1x).
            since_wait = _levels(raw[svc]["wait"], split=fell, stop=since_stop)
            if _waits(since_wait):
                waiting, wait = True, since_wait
        if not (failing or waiting):
            continue
        out[svc] = {"before": round(before, 3), "after": round(after, 3), "drop": round(drop, 3), "callers": steady,
                    "error_before": round(error_levels[0], 4) if error_levels else None,
                    "error_after": round(error_levels[1], 4) if error_levels else None,
                    "wait_before": round(wait[0], 1) if wait else None, "wait_after": round(wait[1], 1) if wait else None,
                    "strength": round(min(1.0, drop / FULL_DROP), 4), "fell_at": fell}
    return out


def _waits(wait: tuple[float, float, float, float] | None) -> bool:
    """Whether callers' wait on a callee rose: WAIT_RATIO and WAIT_RISE_MS over its earlier median, and above
    the earlier high decile (noisy p95s of little traffic jump often)."""
    return wait is not None and wait[1] >= WAIT_RATIO * wait[0] and wait[1] - wait[0] >= WAIT_RISE_MS \
        and wait[1] > wait[3]


def _few(requests: list[tuple[float, float]], *, split: float) -> bool:
    """Whether the earlier samples of a request rate each stand for fewer than FEW_REQUESTS requests."""
    step = sample_step(sorted(t for t, _ in requests))
    before = [v for t, v in requests if split - BEFORE_SPAN_S <= t < split]
    return step is not None and bool(before) and median(before) * step < FEW_REQUESTS


def _fewer_by_count(requests: list[tuple[float, float]], *, split: float, stop: float) -> bool:
    """Whether the requests completed in [split, stop] are improbably few for the earlier rate (COUNT_P, one-sided
    Poisson lower tail): a service with a few requests a minute whose traffic fell to one or two (issue #15 round
    15, field 2244 gen-0007: 6 a minute to 3, the earlier low decile at 3 too)."""
    step = sample_step(sorted(t for t, _ in requests))
    before = [v for t, v in requests if split - BEFORE_SPAN_S <= t < split]
    after = [v for t, v in requests if split <= t <= stop]
    if step is None or len(before) < MIN_BEFORE or len(after) < MIN_AFTER:
        return False
    expected = sum(before) / len(before) * step * len(after)
    return poisson_low_tail(round(sum(after) * step), expected) < COUNT_P


def _waits_by_sign(wait: list[tuple[float, float]], *, split: float, stop: float) -> bool:
    """Whether callers waited longer in [split, stop] by a sign test: the p95 of a few requests a minute is the
    slowest of a handful, so lone waits of seconds lift the earlier high decile out of reach of any slowdown;
    instead nearly every sample must stand above the earlier median (one-sided binomial tail under COUNT_P), by
    WAIT_RATIO and WAIT_RISE_MS at the median (issue #15 round 15, field 2244 gen-0005: a 0.36 req/s callee's
    callers waiting 120 → 181 ms, every sample above 120, while lone waits of 1.4–3.4 s came and went before)."""
    before = sorted(v for t, v in wait if split - BEFORE_SPAN_S <= t < split)
    after = [v for t, v in wait if split <= t <= stop]
    if len(before) < MIN_BEFORE or len(after) < MIN_AFTER:
        return False
    level, now = median(before), median(after)
    if now < WAIT_RATIO * level or now - level < WAIT_RISE_MS:
        return False
    return binomial_tail(sum(1 for v in after if v > level), len(after), 0.5) < COUNT_P


def _fell_at(requests: list[tuple[float, float]], *, split: float, stop: float) -> float:
    """When the request rate fell: the split of [split - BEFORE_SPAN_S, stop] into two stretches of constant level
    with the least squared error (one change point, the later stretch the lower); ``split`` when none."""
    points = sorted((t, v) for t, v in requests if split - BEFORE_SPAN_S <= t <= stop)
    values = [v for _, v in points]
    n = len(values)
    if n < MIN_BEFORE + MIN_AFTER:
        return split
    prefix, squares = [0.0], [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
        squares.append(squares[-1] + v * v)

    def sse(i: int, j: int) -> float:
        total = prefix[j] - prefix[i]
        return squares[j] - squares[i] - total * total / (j - i)

    best, at = sse(0, n), split
    for i in range(MIN_BEFORE, n - MIN_AFTER + 1):
        cost = sse(0, i) + sse(i, n)
        if (prefix[n] - prefix[i]) / (n - i) < prefix[i] / i and cost < best:
            best, at = cost, points[i][0]
    return at


def _failing_by_count(errors: list[tuple[float, float]] | None, requests: list[tuple[float, float]], *,
                      split: float, stop: float) -> tuple[float, float] | None:
    """The failed share before ``split`` and after it, counted over requests, when it rose clearly; else None.

    A service with a few requests a minute has a share of 0 in most minutes and 0.33 or 1.0 in some: the median
    share stays 0 however often it now fails (issue #15 item 3: a 0.15 req/s callee failing one request in six
    after its traffic collapsed, its entry service's deploy blamed at 84). Pooled — failed requests over requests,
    each sample's share weighted by its request count — the share must rise by ERROR_RISE and the failed count be
    improbable (COUNT_P, one-sided Poisson) under the earlier share (half a failure when none failed before).
    """
    if not errors or len(requests) < 2:
        return None
    times = sorted(t for t, _ in requests)
    step = median(b - a for a, b in zip(times, times[1:], strict=False))
    rate = dict(requests)

    def pooled(lo: float, hi: float) -> tuple[float, float]:
        failed = total = 0.0
        for t, share in errors:
            if lo <= t < hi and rate.get(t, 0.0) > 0:
                count = rate[t] * step
                failed += min(1.0, max(0.0, share)) * count
                total += count
        return failed, total

    failed_before, before = pooled(split - BEFORE_SPAN_S, split)
    failed_after, after = pooled(split, stop + 1e-9)
    if before < 1 or after < 1:
        return None
    shares = (failed_before / before, failed_after / after)
    if shares[1] - shares[0] < ERROR_RISE \
            or poisson_tail(round(failed_after), max(failed_before, 0.5) / before * after) >= COUNT_P:
        return None
    return shares


def poisson_low_tail(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean)."""
    if k < 0:
        return 0.0
    term = total = math.exp(-mean)
    for i in range(1, k + 1):
        term *= mean / i
        total += term
    return min(1.0, total)


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean)."""
    if k <= 0:
        return 1.0
    term = total = math.exp(-mean)
    for i in range(1, k):
        term *= mean / i
        total += term
    return max(0.0, 1.0 - total)
