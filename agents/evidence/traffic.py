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

from statistics import median
from typing import Any

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
    strength}}`` for services whose rate fell at least MIN_DROP with at least one caller holding its traffic
    (and none losing it) and with a sign of its own trouble; ``strength`` 0..1.
    """
    levels: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    for item in series_list:
        svc, kind = str(item.get("service") or ""), _kind(str(item.get("name") or ""))
        if not svc or kind is None or kind in levels.get(svc, {}):
            continue
        found = _levels(_points(item, parse_ts), split=split, stop=stop)
        if found is not None:
            levels.setdefault(svc, {})[kind] = found
    out: dict[str, dict[str, Any]] = {}
    for svc, own in levels.items():
        if "requests" not in own:
            continue
        before, after, low, _ = own["requests"]
        if before <= 0:
            continue
        drop = 1.0 - after / before
        # Noise-aware: a rate that was as low in healthy minutes (a few requests a minute, often none) shows
        # nothing by falling there again; the stretch must sit below the series' own low decile.
        if drop < MIN_DROP or after >= low:
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
        waiting = wait is not None and wait[1] >= WAIT_RATIO * wait[0] and wait[1] - wait[0] >= WAIT_RISE_MS \
            and wait[1] > wait[3]
        if not (failing or waiting):
            continue
        out[svc] = {"before": round(before, 3), "after": round(after, 3), "drop": round(drop, 3), "callers": steady,
                    "error_before": round(err[0], 4) if err else None, "error_after": round(err[1], 4) if err else None,
                    "wait_before": round(wait[0], 1) if wait else None, "wait_after": round(wait[1], 1) if wait else None,
                    "strength": round(min(1.0, drop / FULL_DROP), 4)}
    return out
