"""Short-window contrast: what changed on each service in the minutes around the anchor.

A report (alert, ticket) comes one to a few minutes after a fault starts, so
the fault's own change sits in a short stretch around the anchor. Comparing
that stretch with the minutes just before it, per service and signal, and
scaling the difference by the service's own minute-to-minute variability in
the window, ignores what was already odd earlier (an earlier fault's leftover
"pocket" of data, a service that errs all the time). The same before/after
contrast of a short window is how Nezha compares fault and fault-free phases
(Yu et al., ESEC/FSE 2023); this is our own minimal form of it on per-minute
aggregates.
"""

from __future__ import annotations

import math
from statistics import mean, median
from typing import Any

# The "after" stretch: from this long before the anchor (the fault precedes its report) ...
AFTER_FROM_S = 150.0
# ... to this long after it.
AFTER_TO_S = 90.0
# The "before" stretch ends where the after stretch begins and reaches back this far.
BEFORE_SPAN_S = 480.0
# A rise must be this many units of the service's own variability to count.
MIN_Z = 3.0
# z at which a signal's strength reaches 1 - 1/e of its weight.
Z_SCALE = 6.0
# Practical size of a change per signal family (below it, no operator would call it a change):
# error rate +0.10, latency +20 ms and 1.3x, CPU +0.10.
ERROR_MIN_RISE = 0.10
LATENCY_MIN_RISE_MS = 20.0
LATENCY_MIN_RATIO = 1.3
CPU_MIN_RISE = 0.10
# How much each signal says about the service itself being broken. Latency seen by a service's callers
# includes the network and the service's queue, so it is the service's own latency, counted apart.
WEIGHTS = {"error": 1.0, "latency": 0.8, "caller_latency": 0.8, "cpu": 0.6}
# A service serving fewer requests than this per sample (request rate x step) has a p95 that is one request:
# one slow request of four lifts it 25 → 608 ms for a minute (nezha-tt ts-station-food-service at 0.07 req/s).
# Its latency rise counts only when two samples of the stretch exceed every earlier one (issue #15 item 3).
FEW_REQUESTS = 30.0
# Re-onset (series_contrast): a series back at a healthy level at the stretch's first sample, this long before the
# anchor, after an earlier episode in the before stretch, is contrasted with that first sample (issue #15 round 6).
RECOVERED_LEAD_S = 60.0


def signal_family(name: str) -> str | None:
    """Map a metric name to a contrast family (``error``, ``latency``, ``caller_latency``, ``cpu``) or None."""
    lowered = name.lower()
    if "error" in lowered:
        return "error"
    if "caller" in lowered and ("latency" in lowered or lowered.endswith("_ms")):
        return "caller_latency"
    if "mesh" in lowered:
        return None  # sidecar latency: histogram-bucket steps, not the service's work
    if "latency" in lowered or lowered.endswith("_ms"):
        return "latency"
    if lowered.startswith("cpu") or "_cpu" in lowered:
        return "cpu"
    return None


def _noise(values: list[float]) -> float:
    # Variability from first differences (divided by sqrt 2, the spread of one sample under white
    # noise), as in the anchor's shift test: a level shift moves one difference only, a noisy
    # service moves all of them.
    diffs = sorted(abs(b - a) for a, b in zip(values, values[1:], strict=False))
    if not diffs:
        return 0.0
    return 1.4826 * diffs[len(diffs) // 2] / math.sqrt(2.0)


def _practical(family: str, before: float, after: float) -> bool:
    if family == "error":
        return after - before >= ERROR_MIN_RISE
    if family in ("latency", "caller_latency"):
        return after - before >= LATENCY_MIN_RISE_MS and after >= LATENCY_MIN_RATIO * max(before, 1e-9)
    return after - before >= CPU_MIN_RISE


def _floor(family: str, level: float) -> float:
    # A flat series has no variability: give it the smallest spread an operator would notice.
    if family == "error":
        return 0.02
    if family == "cpu":
        return 0.02
    return max(5.0, 0.1 * abs(level))


def series_contrast(points: list[tuple[float, float]], *, family: str, anchor: float,
                    few: bool = False) -> dict[str, Any] | None:
    """Contrast one series' short stretch around the anchor with the minutes before it.

    Params: points — (epoch s, value) pairs, any order; family — signal_family's answer; anchor — epoch s;
    few — the service serves fewer than FEW_REQUESTS requests per sample (its latency rise counts only when two
    samples of the stretch exceed every sample of the before stretch).
    A series whose first sample in the stretch (more than RECOVERED_LEAD_S before the anchor) sits clearly below the
    before stretch (MIN_Z of its variability and a practical step) had recovered from an earlier episode: the rise is
    measured from that sample, over the stretch's later samples.
    Returns: None without samples on both sides, else ``{before, after, z, strength, first_after}``
    (strength 0 when the rise is small or within the service's own variability).
    """
    clean = sorted((float(t), float(v)) for t, v in points if v == v)
    split, stop = anchor - AFTER_FROM_S, anchor + AFTER_TO_S
    before = [v for t, v in clean if split - BEFORE_SPAN_S <= t < split]
    after_pts = [(t, v) for t, v in clean if split <= t <= stop]
    if not before or not after_pts:
        return None
    level_before = median(before)
    # The mean over the short stretch: a fault can show for one or two minutes only.
    level_after = mean(v for _, v in after_pts)
    window_values = [v for t, v in clean if t <= stop]
    spread = max(_noise(window_values), _floor(family, level_before))
    lead_t, lead = after_pts[0]
    if len(after_pts) >= 2 and lead_t < anchor - RECOVERED_LEAD_S and level_before - lead >= MIN_Z * spread \
            and _practical(family, lead, level_before):
        # Recovered by the stretch's start: the minutes before it were an earlier episode (the same fault injected
        # before, a flapping store), and the stretch's own first sample is the level its rise starts from.
        level_before, level_after = lead, mean(v for _, v in after_pts[1:])
        spread = max(spread, _floor(family, level_before))
    if few and family in ("latency", "caller_latency") and sum(1 for _, v in after_pts if v > max(before)) < 2:
        # Count-based: a p95 over a handful of requests is its slowest request, and one slow request is one
        # sample: the stretch counts only when two of its samples rise above every sample before it.
        level_after = level_before
    z = (level_after - level_before) / spread
    strength = 0.0
    if z >= MIN_Z and _practical(family, level_before, level_after):
        strength = WEIGHTS[family] * (1.0 - math.exp(-(z - MIN_Z + 1.0) / Z_SCALE))
    first = next((t for t, v in after_pts if v > level_before + MIN_Z * spread), after_pts[0][0])
    return {"before": level_before, "after": level_after, "z": round(z, 3), "strength": round(strength, 4),
            "first_after": first}


def service_contrasts(series_list: list[dict[str, Any]], *, anchor: float,
                      parse_ts: Any) -> dict[str, dict[str, Any]]:
    """Per service: the contrast of each signal family and a combined strength.

    Params: series_list — metrics.series items; anchor — epoch s; parse_ts — ISO → epoch s (or None).
    Returns: ``{service: {score, onset, signals: {family: {before, after, z, strength}}}}`` for every
    service with at least one judged signal; ``score`` is the strongest family plus half of the others
    (agreeing modalities are stronger evidence), ``onset`` the first clear sample of a scoring family.
    """
    out: dict[str, dict[str, Any]] = {}
    few = _few_requests(series_list, anchor=anchor, parse_ts=parse_ts)
    for item in series_list:
        family = signal_family(str(item.get("name") or ""))
        if family is None:
            continue
        points = _points(item, parse_ts)
        result = series_contrast(points, family=family, anchor=anchor, few=str(item.get("service") or "") in few)
        if result is None:
            continue
        entry = out.setdefault(str(item.get("service") or "unknown"), {"score": 0.0, "onset": None, "signals": {}})
        kept = entry["signals"].get(family)
        if kept is None or result["strength"] > kept["strength"]:
            entry["signals"][family] = result
    for entry in out.values():
        strengths = sorted((s["strength"] for s in entry["signals"].values()), reverse=True)
        entry["score"] = round(strengths[0] + 0.5 * sum(strengths[1:]), 4) if strengths else 0.0
        onsets = [s["first_after"] for s in entry["signals"].values() if s["strength"] > 0]
        entry["onset"] = min(onsets) if onsets else None
    return out


def _points(item: dict[str, Any], parse_ts: Any) -> list[tuple[float, float]]:
    points = []
    for pair in item.get("points") or []:
        if isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[1], int | float):
            ts = parse_ts(pair[0])
            if ts is not None:
                points.append((ts, float(pair[1])))
    return points


def _few_requests(series_list: list[dict[str, Any]], *, anchor: float, parse_ts: Any) -> set[str]:
    """Services whose request rate times the sample step stays under FEW_REQUESTS around the anchor."""
    few = set()
    split, stop = anchor - AFTER_FROM_S, anchor + AFTER_TO_S
    for item in series_list:
        name = str(item.get("name") or "").lower()
        if "request" not in name or not ("per_s" in name or "rps" in name):
            continue
        points = sorted(_points(item, parse_ts))
        near = [v for t, v in points if split - BEFORE_SPAN_S <= t <= stop]
        gaps = sorted(b[0] - a[0] for a, b in zip(points, points[1:], strict=False) if b[0] > a[0])
        if near and gaps and median(near) * gaps[len(gaps) // 2] < FEW_REQUESTS:
            few.add(str(item.get("service") or ""))
    return few
