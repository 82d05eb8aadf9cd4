"""Fault signatures that point at one service rather than at everyone on the failing path.

Error rates and latencies propagate up the call graph: a broken callee makes
its callers fail and wait too. Two views do not propagate:

- **Wait gap.** A service's callers measure how long they waited for it
  (``caller_latency*``), the service measures its own work (``latency*``).
  A delay on the network path to one service (or in its sidecar) widens the
  gap between the two for that service only; its callers' own latency rises
  with it, but their gap does not. We compare each service's gap in the
  stretch around the anchor with the lower quartile of its earlier samples
  (an earlier pocket of the same fault must not become the baseline) and
  demand that the rise stand far above the other services' rises.
- **First error of a trace.** When log lines carry trace ids that join
  services, the earliest ERROR line of a trace was written by the service
  where the failure began; callers log theirs after the callee answered.
  Counting, per service and error shape, how many traces it opens the errors
  of in the stretch, against the share it opened earlier, blames the writer,
  not its callers.

A statement a service always logged after another one in the same trace,
and no longer does while the first goes on (**skipped in traces**), is how
an exception between the two shows when nothing else does (Nezha's code
region no longer reached). Within one trace the pairing is exact, unlike
counts over a window, so a few traces are enough.

A fourth, **saturation**, is local by nature: a utilisation (a 0..1 share of
a limit, such as ``cpu_util``) that sat well below its limit and reaches it
in the stretch says the service itself ran out of room; a caller of a slow
service waits, it does not burn its own CPU. A periodic job's next run on top
of a level that a surge raised reaches the limit too; when earlier runs rose
as high above their level, the stretch is judged by its level, not its peak.

The first two are our own reading of the ideas in Nezha (Yu et al., ESEC/FSE 2023: log
and trace events per code region, compared across a fault and a fault-free
phase) and MicroRank (Yu et al., WWW 2021: spans on failing traces localise
the fault), on per-minute aggregates and trace-joined logs.
"""

from __future__ import annotations

import math
from statistics import mean
from typing import Any

from agents.evidence.anomalies import is_own_latency
from agents.evidence.logtemplates import mask
from agents.evidence.skipped import binomial_cdf
from agents.evidence.topology import mentioned_services

# A wait-gap rise must be at least this many ms ...
GAP_MIN_RISE_MS = 50.0
# ... and more than this many times the typical (80th percentile) rise among all services: a delay on
# one service's path stands out by an order of magnitude, while p95 waits of lightly used services jump
# by a few typical rises all the time (nezha-tt: noise up to ~40x, network delays 45x to 700x).
GAP_OUTLIER_RATIO = 15.0
# ... on at least this share of the GAP_PERSIST_LEN samples from the first lifted one (as anomalies' persistence) ...
GAP_LIFTED_SHARE = 0.6
GAP_PERSIST_LEN = 5
# Ratio at which the strength reaches 1 (log scale between the two).
GAP_FULL_RATIO = 150.0
# Only log lines with a trace id shared by two or more services count as trace-joined; a world where
# fewer than this share of multi-line traces span services has per-line ids, not traces.
MIN_JOINED_SHARE = 0.2
MIN_JOINED_TRACES = 20
# Excess first errors at which the strength reaches 1 - 1/e.
FIRST_ERROR_SCALE = 4.0
# A service must open at least this many more traces' errors than expected to count.
MIN_FIRST_ERROR_EXCESS = 2.0
NO_HISTORY_SHARE = 0.3
# A writer whose share of the traces grew at least this much in the stretch is expected to open errors in
# proportion to its own traces, not to all traces: a service that always fails some requests fails more of
# them when its traffic surges (nezha-tt: a batch writer's traffic jumps 4x between pockets).
WRITER_SURGE = 2.0
# A pocket must hold at least this many traces of the writer to give it an errors-per-own-trace share.
MIN_WRITER_TRACES = 3
# Earlier traces this far apart belong to different pockets of trace data.
POCKET_GAP_S = 120.0
ERROR_LEVELS = ("ERROR", "FATAL", "CRITICAL")
# Skipped in traces: the follower came after its leader in at least this share of earlier traces that hold
# the leader (and at least SKIP_MIN_EARLIER of them) ...
SKIP_MIN_FOLLOW = 0.66
SKIP_MIN_EARLIER = 2
# ... and P(so few followers | that share) in the stretch is below this (strict: a service has many pairs).
SKIP_MAX_TAIL = 1e-5
# -log10(tail) above -log10(SKIP_MAX_TAIL) at which the strength reaches 1.
SKIP_FULL_DECADES = 5.0
# A utilisation saturates when it reaches this share of its limit in the stretch ...
SATURATED = 0.8
# ... rising by at least this much over its earlier median within minutes (a service that always runs hot
# is not news, nor one that warms under a surge walking in from its callers).
MIN_SATURATION_RISE = 0.5
# A series whose earlier history holds excursions above its median (at least two, each a run of points more
# than max(SPIKE_MIN_HEIGHT, SPIKE_MAD_FACTOR x its median absolute deviation) above it) has a recurring
# job: a stretch peak that stands above the stretch's own level (its lower quartile) by more than that noise
# floor and no more than RECURRING_TOLERANCE x the height those excursions reached at least twice is that
# job's next run riding on the level, and the level, not the peak, is what the stretch reached.
SPIKE_MIN_HEIGHT = 0.05
SPIKE_MAD_FACTOR = 4.0
RECURRING_TOLERANCE = 1.25


def _quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))]


def _is_caller_latency(name: str) -> bool:
    lowered = name.lower()
    return "caller" in lowered and ("latency" in lowered or lowered.endswith("_ms"))


def wait_gaps(series_list: list[dict[str, Any]], *, anchor: float, split: float, stop: float,
              parse_ts: Any) -> dict[str, dict[str, Any]]:
    """Per service: the rise of (callers' wait − own latency) in [split, stop] over its earlier level.

    Params: series_list — metrics.series items; anchor — epoch s (kept for the record);
    split, stop — the stretch (epoch s); parse_ts — ISO → epoch s (or None).
    Returns: ``{service: {before, after, rise, ratio, strength}}`` for services with both series and
    samples in the stretch; ``ratio`` is the rise over the typical rise of all services, ``strength``
    0..1 (0 unless the rise is practically large and an outlier among services).
    """
    caller: dict[str, dict[float, float]] = {}
    own: dict[str, dict[float, float]] = {}
    for item in series_list:
        name, svc = str(item.get("name") or ""), str(item.get("service") or "")
        target = caller if _is_caller_latency(name) else own if is_own_latency(name) else None
        if target is None or not svc or svc in target:
            continue
        points: dict[float, float] = {}
        for pair in item.get("points") or []:
            if isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[1], int | float):
                ts = parse_ts(pair[0])
                if ts is not None and pair[1] == pair[1]:
                    points[ts] = float(pair[1])
        target[svc] = points
    raw: dict[str, dict[str, Any]] = {}
    for svc, waits in caller.items():
        work = own.get(svc) or {}
        gap = {t: w - work[t] for t, w in waits.items() if t in work}
        after = [g for t, g in gap.items() if split <= t <= stop]
        if not after:
            continue
        earlier = [g for t, g in gap.items() if t < split]
        # The lower quartile: a window can hold an earlier pocket of the same fault, which the median
        # would take for the normal level; a gap is a wait, never below 0 for long.
        before = max(0.0, _quantile(earlier, 0.25)) if earlier else 0.0
        # A delay on the path lasts: it lifts the wait of most samples from when it began. One or two slow requests
        # of a service with a few a minute lift its p95 — and the gap, a share of it — for a sample or two (issue
        # #15 item 3: a low-traffic bystander's two-minute 2.8 s spike read as a 67x wait rise, stated at 98 %).
        # Counted from the stretch's first lifted sample over the next few (past the stretch when the onset falls
        # late in it): the stretch often straddles the onset.
        ordered = sorted(gap.items())
        first = next((i for i, (t, g) in enumerate(ordered) if split <= t <= stop and g >= before + GAP_MIN_RISE_MS),
                     None)
        ahead = [g for _, g in ordered[first:first + GAP_PERSIST_LEN]] if first is not None else []
        lifted = sum(1 for g in ahead if g >= before + GAP_MIN_RISE_MS) / len(ahead) if ahead else 0.0
        raw[svc] = {"before": round(before, 2), "after": round(mean(after), 2),
                    "rise": round(mean(after) - before, 2), "lifted": round(lifted, 2)}
    if not raw:
        return {}
    typical = max(_quantile([abs(v["rise"]) for v in raw.values()], 0.8), 1.0)
    top = max(v["rise"] for v in raw.values())
    for info in raw.values():
        ratio = info["rise"] / typical
        info["ratio"] = round(ratio, 2)
        strength = 0.0
        if info["rise"] >= GAP_MIN_RISE_MS and ratio > GAP_OUTLIER_RATIO and info["lifted"] >= GAP_LIFTED_SHARE:
            strength = min(1.0, math.log(ratio / GAP_OUTLIER_RATIO) / math.log(GAP_FULL_RATIO / GAP_OUTLIER_RATIO))
            # A delay on one path makes every caller of that service wait; the callers' own callers see a
            # smaller echo of it. Only the largest rise gets the full strength.
            strength *= info["rise"] / top
        info["strength"] = round(strength, 4)
    return raw


def joined_traces(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]] | None:
    """Lines grouped by trace id, in the order given, or None when ids do not join services.

    Params: lines — log lines (``trace_id``, ``service``, ``level``, ``message``, ``ts``), time-ordered.
    Returns: ``{trace_id: [lines]}`` or None (too few traces, or ids that never span two services).
    """
    traces: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        tid = line.get("trace_id")
        if tid:
            traces.setdefault(str(tid), []).append(line)
    multi = [ls for ls in traces.values() if len(ls) >= 2]
    if len(multi) < MIN_JOINED_TRACES:
        return None
    spanning = sum(1 for ls in multi if len({str(x.get("service")) for x in ls}) >= 2)
    if spanning < MIN_JOINED_SHARE * len(multi):
        return None
    return traces


def first_errors(traces: dict[str, list[dict[str, Any]]], *, split: float, stop: float,
                 parse_ts: Any, known: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per service: traces in [split, stop] whose first error line it wrote, beyond its earlier share.

    Params: traces — joined_traces' answer; split, stop — the stretch (epoch s); parse_ts — ISO → epoch s;
    known — service names: a first error whose text names another service ("no instances available for
    X", "call to X timed out") reports that service's trouble, not the writer's, and is not counted.
    Returns: ``{service: {after, expected, excess, shapes, strength}}`` for services that opened the errors
    of a trace in the stretch. Per error shape, the expected count is the shape's share of earlier traces
    times the traces seen in the stretch (all of them when there is no earlier trace: nothing to compare);
    for a writer whose share of the traces at least doubled (WRITER_SURGE), at least its share of the
    writer's own earlier traces times the writer's traces in the stretch.
    """
    seen = {"before": 0, "after": 0}
    counts: dict[tuple[str, str], list[int]] = {}
    earlier: list[tuple[float, tuple[str, str] | None]] = []
    # Traces each service took part in, before / in the stretch, and per earlier trace its services.
    held: dict[str, list[int]] = {}
    members_earlier: list[tuple[float, tuple[str, str] | None, set[str]]] = []
    for trace in traces.values():
        start = parse_ts(trace[0].get("ts"))
        if start is None or start > stop:
            continue
        phase = "after" if start >= split else "before"
        seen[phase] += 1
        members = {str(x.get("service")) for x in trace}
        for member in members:
            held.setdefault(member, [0, 0])[1 if phase == "after" else 0] += 1
        first = next((x for x in trace if str(x.get("level", "")).upper() in ERROR_LEVELS), None)
        text = str(first.get("message", ""))[:300] if first is not None else ""
        if first is None or (known and mentioned_services(text, known, str(first.get("service")))):
            if phase == "before":
                earlier.append((start, None))
                members_earlier.append((start, None, members))
            continue
        key = (str(first.get("service")), mask(text)[:120])
        counts.setdefault(key, [0, 0])[1 if phase == "after" else 0] += 1
        if phase == "before":
            earlier.append((start, key))
            members_earlier.append((start, key, members))
    # Without earlier traces every error shape looks new: the counts still say who failed first, at a
    # share NO_HISTORY_SHARE of the strength.
    history = seen["before"] >= MIN_JOINED_TRACES
    ratio = seen["after"] / seen["before"] if history else 0.0
    quietest = _quietest_pocket_shares(earlier)
    per_own = _quietest_own_shares(members_earlier) if history else {}
    out: dict[str, dict[str, Any]] = {}
    for key, (before, after) in counts.items():
        svc = key[0]
        if not after:
            continue
        expected = before * ratio
        if quietest is not None:
            # Telemetry in pockets: an earlier pocket can hold the same fault (faults recur minutes apart),
            # so a shape is expected at its share in the pocket where it was rarest.
            expected = min(expected, quietest.get(key, 0.0) * seen["after"])
        own_before, own_after = held.get(svc, [0, 0])
        if history and own_before >= MIN_WRITER_TRACES and seen["after"] \
                and own_after / seen["after"] >= WRITER_SURGE * own_before / seen["before"]:
            # The writer's traffic surged: expect its errors per trace it took part in (at that share's
            # quietest earlier pocket), so more requests failing at the usual rate are no new fault.
            share = min(before / own_before, per_own.get(key, 1.0))
            expected = max(expected, share * own_after)
        entry = out.setdefault(svc, {"after": 0, "expected": 0.0, "excess": 0.0, "shapes": 0})
        entry["after"] += after
        entry["expected"] = round(entry["expected"] + expected, 2)
        if after - expected > 0:
            entry["excess"] = round(entry["excess"] + after - expected, 2)
            entry["shapes"] += 1
    for entry in out.values():
        excess = entry["excess"]
        strength = 0.0
        if excess >= MIN_FIRST_ERROR_EXCESS:
            strength = (1.0 - math.exp(-excess / FIRST_ERROR_SCALE)) * excess / (excess + entry["expected"] + 1.0)
            strength *= 1.0 if history else NO_HISTORY_SHARE
        entry["strength"] = round(strength, 4)
    return out


def _shapes(trace: list[dict[str, Any]], cache: dict[str, str]) -> dict[str, list[str]]:
    """Per service: the masked shapes of its non-error lines in one trace, in order."""
    out: dict[str, list[str]] = {}
    for line in trace:
        if str(line.get("level", "")).upper() in ERROR_LEVELS:
            continue
        text = str(line.get("message", ""))[:200]
        shape = cache.get(text)
        if shape is None:
            shape = cache[text] = mask(text)[:120]
        out.setdefault(str(line.get("service")), []).append(shape)
    return out


def skipped_in_traces(traces: dict[str, list[dict[str, Any]]], *, split: float, stop: float,
                      parse_ts: Any) -> dict[str, dict[str, Any]]:
    """Per service: a statement that followed another in its earlier traces and stops following it.

    Params: traces — joined_traces' answer; split, stop — the stretch (epoch s); parse_ts — ISO → epoch s.
    Returns: ``{service: {leader, follower, earlier_share, traces, followed, tail, strength}}`` for the
    most unlikely silence of each service whose binomial tail is below SKIP_MAX_TAIL.
    """
    cache: dict[str, str] = {}
    earlier: dict[str, list[list[str]]] = {}
    recent: dict[str, list[list[str]]] = {}
    for trace in traces.values():
        start = parse_ts(trace[0].get("ts"))
        if start is None or start > stop:
            continue
        target = recent if start >= split else earlier
        for svc, seq in _shapes(trace, cache).items():
            target.setdefault(svc, []).append(seq)
    out: dict[str, dict[str, Any]] = {}
    for svc, now in recent.items():
        leaders: dict[str, int] = {}
        pairs: dict[tuple[str, str], int] = {}
        for seq in earlier.get(svc, []):
            for lead in set(seq):
                leaders[lead] = leaders.get(lead, 0) + 1
                for follow in set(seq[seq.index(lead) + 1:]) - {lead}:
                    pairs[(lead, follow)] = pairs.get((lead, follow), 0) + 1
        best: dict[str, Any] | None = None
        for (lead, follow), both in pairs.items():
            if leaders[lead] < SKIP_MIN_EARLIER:
                continue
            share = min(0.95, both / leaders[lead])
            if share < SKIP_MIN_FOLLOW:
                continue
            holding = [seq for seq in now if lead in seq]
            followed = sum(1 for seq in holding if follow in seq[seq.index(lead) + 1:])
            tail = binomial_cdf(followed, len(holding), share) if holding else 1.0
            if tail <= SKIP_MAX_TAIL and (best is None or tail < float(best["tail"])):
                best = {"leader": lead, "follower": follow, "earlier_share": round(share, 3),
                        "traces": len(holding), "followed": followed, "tail": tail}
        if best is not None:
            decades = -math.log10(max(float(best["tail"]), 1e-300)) + math.log10(SKIP_MAX_TAIL)
            best["strength"] = round(min(1.0, decades / SKIP_FULL_DECADES), 4)
            out[svc] = best
    return out


def _quietest_pocket_shares(earlier: list[tuple[float, tuple[str, str] | None]]) -> dict[tuple[str, str], float] | None:
    """Per error shape, its lowest share of traces among the earlier pockets of trace data.

    Params: earlier — (start epoch s, first-error key or None) of each earlier trace.
    Returns: ``{key: share}`` minimised over pockets (runs of traces with no gap over POCKET_GAP_S) of at least
    MIN_JOINED_TRACES traces; None with fewer than two such pockets (one pocket is the pooled share already).
    """
    pockets: list[list[tuple[str, str] | None]] = []
    last = None
    for start, key in sorted(earlier, key=lambda item: item[0]):
        if last is None or start - last > POCKET_GAP_S:
            pockets.append([])
        pockets[-1].append(key)
        last = start
    full = [p for p in pockets if len(p) >= MIN_JOINED_TRACES]
    if len(full) < 2:
        return None
    keys = {k for p in full for k in p if k is not None}
    return {key: min(sum(1 for k in p if k == key) / len(p) for p in full) for key in keys}


def _quietest_own_shares(earlier: list[tuple[float, tuple[str, str] | None, set[str]]]
                         ) -> dict[tuple[str, str], float]:
    """Per error shape, its lowest share of the writer's own traces among the earlier pockets.

    Params: earlier — (start epoch s, first-error key or None, services in the trace) of each earlier trace.
    Returns: ``{key: share}`` minimised over pockets of at least MIN_JOINED_TRACES traces holding at least
    MIN_WRITER_TRACES traces of the key's writer; keys with fewer than two such pockets are left out.
    """
    pockets: list[tuple[dict[str, int], dict[tuple[str, str], int], list[int]]] = []
    last = None
    for start, key, members in sorted(earlier, key=lambda item: item[0]):
        if last is None or start - last > POCKET_GAP_S:
            pockets.append(({}, {}, [0]))
        held, opened, size = pockets[-1]
        size[0] += 1
        for member in members:
            held[member] = held.get(member, 0) + 1
        if key is not None:
            opened[key] = opened.get(key, 0) + 1
        last = start
    full = [p for p in pockets if p[2][0] >= MIN_JOINED_TRACES]
    shares: dict[tuple[str, str], list[float]] = {}
    keys = {k for _, opened, _ in full for k in opened}
    for key in keys:
        for held, opened, _ in full:
            if held.get(key[0], 0) >= MIN_WRITER_TRACES:
                shares.setdefault(key, []).append(opened.get(key, 0) / held[key[0]])
    return {key: min(values) for key, values in shares.items() if len(values) >= 2}


def _is_utilisation(name: str) -> bool:
    lowered = name.lower()
    return "util" in lowered or lowered.startswith("cpu") or "_cpu" in lowered


def _recurring_height(points: list[tuple[float, float]], median: float) -> tuple[float | None, float]:
    """The height above ``median`` that the earlier excursions of a series reached at least twice.

    Params: points — earlier (epoch s, value) pairs; median — their median.
    Returns: ``(height, floor)``: the second-highest excursion peak above the median (None with fewer than
    two excursions) and the least height that counts as an excursion (above the series' noise).
    """
    mad = sorted(abs(v - median) for _, v in points)[len(points) // 2]
    floor = max(SPIKE_MIN_HEIGHT, SPIKE_MAD_FACTOR * mad)
    peaks: list[float] = []
    inside = False
    for _, value in sorted(points):
        if value > median + floor:
            if inside:
                peaks[-1] = max(peaks[-1], value - median)
            else:
                peaks.append(value - median)
            inside = True
        else:
            inside = False
    return (sorted(peaks)[-2] if len(peaks) >= 2 else None), floor


def saturations(series_list: list[dict[str, Any]], *, split: float, stop: float,
                parse_ts: Any) -> dict[str, dict[str, Any]]:
    """Per service: utilisations (0..1 shares of a limit) that reach their limit in [split, stop].

    Params: series_list — metrics.series items; split, stop — the stretch (epoch s); parse_ts — ISO → epoch s.
    Returns: ``{service: {metric, before, peak, strength}}`` for services with a saturating utilisation
    (the strongest one); series with values above 1.05 are not shares and are skipped.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in series_list:
        name, svc = str(item.get("name") or ""), str(item.get("service") or "")
        if not svc or not _is_utilisation(name):
            continue
        points = []
        for pair in item.get("points") or []:
            if isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[1], int | float):
                ts = parse_ts(pair[0])
                if ts is not None and pair[1] == pair[1]:
                    points.append((ts, float(pair[1])))
        if not points or max(v for _, v in points) > 1.05:
            continue
        after = [v for t, v in points if split <= t <= stop]
        earlier = sorted(v for t, v in points if t < split)
        if not after or not earlier:
            continue
        before, peak = earlier[len(earlier) // 2], max(after)
        # A periodic job's run on top of a level raised by a surge reaches the limit without being news:
        # judge the level the stretch holds when its peak stands above it no more than the earlier runs did.
        # (A peak within the noise of a level that sits at the limit is no such run.)
        recurring, floor = _recurring_height([(t, v) for t, v in points if t < split], before)
        level = sorted(after)[len(after) // 4]
        if recurring is not None and floor < peak - level <= RECURRING_TOLERANCE * recurring:
            peak = level
        if peak < SATURATED or peak - before < MIN_SATURATION_RISE:
            continue
        strength = min(1.0, (peak - before) / (MIN_SATURATION_RISE + 0.2))
        if strength > out.get(svc, {}).get("strength", 0.0):
            out[svc] = {"metric": name, "before": round(before, 4), "peak": round(peak, 4),
                        "strength": round(strength, 4)}
    return out
