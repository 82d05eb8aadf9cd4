"""Metric anomalies: robust baselines, onset and recovery of each series.

The baseline is the median of the pre-incident samples and the spread their
median absolute deviation scaled by 1.4826 (the MAD estimator of a normal
standard deviation; Rousseeuw & Croux, "Alternatives to the Median Absolute
Deviation", JASA 1993). On windows longer than a day and a half the baseline
of a sample is taken from the same hour of day (daily seasonality) when that
hour has enough history.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Any

# A series has left its baseline when it sits this many robust deviations away
# from it; 4 keeps the false-alarm rate per sample well below 1% under noise.
ONSET_Z = 4.0
# Going back from the first clear exceedance, samples above this still belong
# to the excursion (ramps start small).
RAMP_Z = 2.0
# A lead of this many samples or more that does not rise (its later half at most SHELF_RISE times its earlier one)
# and stays under SHELF_SHARE of the run after it is a shelf, not a ramp (_shelf).
SHELF_LEN = 10
SHELF_RISE = 1.25
SHELF_SHARE = 0.25
# Share of the following samples that must also exceed, so one spike is no onset.
PERSIST_SHARE = 0.6
PERSIST_LEN = 5
# ... and on a busy service's series whose healthy samples spike now and then, only where so many exceedances
# together would come by chance less often than this (_excursions).
SPIKE_P = 0.001
# Severities are capped so one absurd series cannot dominate a ranking.
MAX_Z = 50.0
LATENCY_MIN_RATIO = 1.3
LATENCY_MIN_RISE_MS = 20.0
# An excursion no higher than 1 / REPEAT_SHARE times the series' previous one, and about as long, repeats it ...
REPEAT_SHARE = 0.6
# ... when the series was back within its band this long in between (periodic jobs run every 10 min or more).
REPEAT_GAP_S = 360.0

_UP_ONLY = ("error", "latency", "_ms", "cpu", "mem", "db_conn", "connections", "saturation", "queue",
            "timeout", "restart", "gc_")
_SATURATION = ("cpu", "mem", "db_conn", "connections", "saturation", "pool")


def direction(name: str) -> str:
    """Say which way of a metric is bad: ``up`` (errors, latency, saturation) or ``both``."""
    lowered = name.lower()
    return "up" if any(key in lowered for key in _UP_ONLY) else "both"


def is_saturation(name: str) -> bool:
    """True for resource-saturation metrics (cpu, memory, connections, pools)."""
    lowered = name.lower()
    return any(key in lowered for key in _SATURATION)


def is_own_latency(name: str) -> bool:
    """True for a service's own latency series, not its callers' view of calls into it (caller_latency*, mesh*)."""
    lowered = name.lower()
    return ("latency" in lowered or lowered.endswith("_ms")) and "caller" not in lowered and "mesh" not in lowered


def noise_floor(name: str, level: float) -> float:
    """The smallest spread a series of this metric is given (see _floor)."""
    return _floor(name, level)


def _floor(name: str, level: float) -> float:
    # Why a floor: a perfectly flat baseline has MAD 0 and would turn noise
    # into infinite z; 5% of the level (or half a percentage point for rates
    # in 0..1) is below what an operator would call a change.
    lowered = name.lower()
    absolute = 0.005 if ("error" in lowered or lowered.endswith("_util")) else 1e-6
    return max(0.05 * abs(level), absolute)


def _seasonal_levels(points: list[tuple[float, float]], base: list[tuple[float, float]]) -> list[float] | None:
    span = points[-1][0] - points[0][0] if points else 0.0
    if span < 36 * 3600:
        return None
    by_hour: dict[int, list[float]] = {}
    for ts, value in base:
        by_hour.setdefault(int(ts // 3600) % 24, []).append(value)
    overall = median(v for _, v in base)
    levels = []
    for ts, _ in points:
        hour_values = by_hour.get(int(ts // 3600) % 24, [])
        levels.append(median(hour_values) if len(hour_values) >= 3 else overall)
    return levels


def analyse_series(points: list[tuple[float, float]], *, name: str, baseline_end: float,
                   anchor: float, busy: bool = False) -> dict[str, Any] | None:
    """Find whether, when and how far one metric series left its baseline.

    Params: points — (epoch seconds, value) pairs, any order; name — metric
    name (chooses the bad direction and the noise floor); baseline_end —
    samples before this time form the baseline; anchor — the trigger time, to
    pick the excursion that belongs to this incident when there are several.
    Returns: None when fewer than 4 usable samples, else a dict with
    ``baseline`` (median), ``scale``, ``anomalous``, ``onset`` (epoch s or
    None), ``recovered`` (epoch s or None), ``severity`` (median robust z of
    the excursion, capped), ``peak_z``, ``level_after`` (median value in the
    excursion) and ``shift`` (relative change of the level); an excursion that repeats the previous one
    (_recurs: a periodic job's next run) is not anomalous and carries ``recurrent: True``.
    """
    clean = sorted((float(t), float(v)) for t, v in points
                   if t is not None and isinstance(v, int | float) and v == v)
    if len(clean) < 4:
        return None
    base = [p for p in clean if p[0] < baseline_end]
    if len(base) < 3:
        base = clean[: max(3, len(clean) // 3)]
    base_values = [v for _, v in base]
    level = median(base_values)
    mad = median(abs(v - level) for v in base_values) * 1.4826
    scale = max(mad, _floor(name, level))
    seasonal = _seasonal_levels(clean, base)
    sign_up = direction(name) == "up"
    zs = []
    for index, (_, value) in enumerate(clean):
        ref = seasonal[index] if seasonal else level
        z = (value - ref) / scale
        zs.append(min(z if sign_up else abs(z), MAX_Z))
    segments = _excursions(zs)
    spike_rate = 0.0
    if busy:
        # A busy service's healthy series that stood out now and then on its own (lone exceedances before the
        # baseline's end, outside any run: an earlier incident's run is no healthy spike) gives that spike rate.
        in_runs = {index for first, last in segments for index in range(first, last)}
        base_index = [i for i, (t, _) in enumerate(clean) if t < baseline_end and i not in in_runs]
        spikes = sum(1 for i in base_index if zs[i] > ONSET_Z)
        if spikes and len(base_index) >= PERSIST_LEN:
            spike_rate = spikes / len(base_index)
            segments = _excursions(zs, spike_rate)
    result: dict[str, Any] = {"baseline": level, "scale": scale, "anomalous": False, "onset": None,
                              "recovered": None, "severity": 0.0, "peak_z": max(zs), "level_after": level,
                              "shift": 0.0}
    if not segments:
        return result
    times = [t for t, _ in clean]
    start, end = _pick_segment(segments, times, anchor)
    if _recurs(segments, (start, end), zs, times):
        return {**result, "recurrent": True}
    start = _ramp_back(_past_wobble(_past_job(start, end, segments, zs, times), end, zs, spike_rate), zs, times,
                       baseline_end - 3600)
    excursion = zs[start:end]
    values = [v for _, v in clean[start:end]]
    # A fault that flaps sample by sample (a queue that stalls every other minute) leaves an excursion whose median
    # is its healthy half: its level is that of the samples that stood out (issue #15 round 10, alt37-037: a
    # flapping broker's latency 10 -> 60 ms every other minute read as no slowdown at all).
    stood_out = [index for index in range(start, end) if zs[index] > ONSET_Z]
    if len(stood_out) < PERSIST_SHARE * (end - start):
        excursion = [zs[index] for index in stood_out]
        values = [clean[index][1] for index in stood_out]
    # The excursion's level is its own; a flapping fault is dated from its first flap (and that flap's ramp).
    onset_index = _first_flap(segments, (start, end), zs, times)
    if onset_index < start:
        onset_index = _ramp_back(onset_index, zs, times, baseline_end - 3600)
    level_after = median(values)
    if not _practically_significant(name, level, _upper_quartile(values)):
        return result
    result.update({
        "anomalous": True,
        "onset": clean[onset_index][0],
        # The last sample before the excursion: when a gap in the series precedes it, the excursion began
        # somewhere in the gap, not at its first sample.
        "since": clean[onset_index - 1][0] if onset_index > 0 else None,
        "recovered": clean[end][0] if end < len(clean) else None,
        "severity": median(excursion),
        "peak_z": max(excursion),
        "level_after": level_after,
        "shift": (level_after - level) / max(abs(level), 1e-9),
    })
    return result


def _recurs(segments: list[tuple[int, int]], chosen: tuple[int, int], zs: list[float], times: list[float]) -> bool:
    """True when an excursion repeats the series' previous one after a quiet spell: a periodic job's next run.

    A periodic job (a reconcile every 30 min, a cache warm-up every 10) lifts CPU and latency by about the
    same amount for the same few minutes each time; a person reading the chart sees the pattern and does not
    date an incident by its next run. The excursion counts as a repeat when the previous one rose at least
    REPEAT_SHARE as high, the new one lasts no more than twice as long (plus two samples: a fault that stays
    is no repeat), and the series was quiet for REPEAT_GAP_S in between (a flapping fault comes back within
    minutes, and its flaps are the incident).
    """
    start, end = chosen
    earlier = [seg for seg in segments if seg[1] <= start]
    if not earlier:
        return False
    first, last = earlier[-1]
    if times[start] - times[last - 1] < REPEAT_GAP_S:
        return False
    return max(zs[first:last]) >= REPEAT_SHARE * max(zs[start:end]) and end - start <= 2 * (last - first) + 2


def _past_wobble(start: int, end: int, zs: list[float], spike_rate: float = 0.0) -> int:
    """Where an excursion's own run begins, past a short, lower wobble that merely leads into it.

    The persistence test looks PERSIST_LEN samples ahead, so a bump of a sample or two (a periodic job's run, a noisy
    minute) just before a fault starts the fault's run and dates it minutes early — before the change that caused it
    (issue #15 round 11: alt39-040, a two-minute latency blip 4 min ahead of a deploy's slowdown; alt42-019, a cron
    job's bump one minute ahead of a migration's). A lead of at most two samples,
    back within RAMP_Z after it, then a run that holds (its first PERSIST_LEN samples all above RAMP_Z) and stands
    higher (the lead under REPEAT_SHARE of its median z, as _first_flap: a fault's flaps hold its level) is no part
    of the run. Lone failed requests that come and go ahead of a fault (lead, back, lead, back …) are not cut: the
    run after the first return does not hold. On a series whose healthy samples spike now and then (``spike_rate``,
    the share of them above ONSET_Z; analyse_series' spike test), a lead however high is cut when that many spikes
    are not improbable under that rate (SPIKE_P): a healthy multi-second request is higher than any slowdown.
    """
    burst, back = _head(start, end, zs)
    if burst - start > 2 or back is None:
        return start
    lead = zs[start:burst]
    if median(lead) < REPEAT_SHARE * median(zs[back:end]):
        return back
    # However high, a lead the series' healthy samples make now and then (``spike_rate``: the share of them that
    # stood out) is one of its spikes, not the fault's first sign (round 16: a quiet service's lone multi-second
    # request a minute or two before the flag that slowed every request dated its failure ahead of the flag).
    if spike_rate > 0 and binomial_tail(sum(1 for z in lead if z > ONSET_Z), len(lead), spike_rate) >= SPIKE_P:
        return back
    return start


def _past_job(start: int, end: int, segments: list[tuple[int, int]], zs: list[float], times: list[float]) -> int:
    """Where an excursion's own run begins, past a periodic job's run that the merge of short gaps joined to it.

    _excursions joins runs a sample or two apart, so a job that lifts CPU and latency for two minutes every half
    hour (cache warm-up, reconcile) and happens to run just before a fault becomes the head of the fault's run and
    dates it minutes early — before the change that caused it (issue #15 round 15, alt12-012: a search-api
    scale-down at 16:30:50, its service dated by the job's run at 16:29:30 and the change ruled "after" the failure).
    The head is a job's run when the series came back within RAMP_Z after it, then held (its first PERSIST_LEN
    samples above RAMP_Z), and the head repeats the series' previous excursion after a quiet spell (_recurs: as
    high, no more than twice as long). A fault's flaps come back within minutes and are no repeat.
    """
    burst, back = _head(start, end, zs)
    return back if back is not None and _recurs(segments, (start, burst), zs, times) else start


def _head(start: int, end: int, zs: list[float]) -> tuple[int, int | None]:
    """An excursion's head: (the index past its first burst above RAMP_Z, the index where the run resumes after the
    series came back within RAMP_Z) — the second None unless it came back and then held (its first PERSIST_LEN samples
    all above RAMP_Z)."""
    burst = start
    while burst < end and zs[burst] > RAMP_Z:
        burst += 1
    back = burst
    while back < end and zs[back] <= RAMP_Z:
        back += 1
    held = zs[back: back + PERSIST_LEN]
    if back == burst or len(held) < PERSIST_LEN or min(held) <= RAMP_Z:
        return burst, None
    return burst, back


def _ramp_back(index: int, zs: list[float], times: list[float], floor: float) -> int:
    """Move an excursion's first index back over the ramp that leads into it (samples above RAMP_Z, not before
    ``floor``) — unless what lies before it is a long, flat shelf far below it (_shelf)."""
    start = index
    while index > 0 and zs[index - 1] > RAMP_Z and times[index - 1] >= floor:
        index -= 1
    return start if _shelf(zs[index:start], zs[start:start + PERSIST_LEN]) else index


def _shelf(lead: list[float], run: list[float]) -> bool:
    """Whether the samples before a run are a shelf the series sat on, not a ramp into the run.

    A ramp rises into the fault it leads to (a canary's share growing, a pool filling): its later half stands
    higher than its earlier one. A series that crept a little off its baseline and sat there for many samples, then
    jumped far higher (memory at 0.52 of its limit for 16 min, then 0.97 when the limit was cut: issue #15 round 14,
    alt58-007, the cut dated at the creep's start and ruled "after" at 96), shows no such rise: the run starts at
    the jump. Needs SHELF_LEN samples or more, the later half no higher than SHELF_RISE times the earlier one, and the
    shelf under SHELF_SHARE of the run's first PERSIST_LEN samples (median z).
    """
    if len(lead) < SHELF_LEN or not run:
        return False
    half = len(lead) // 2
    return (median(lead[half:]) <= SHELF_RISE * median(lead[:half])
            and median(lead) < SHELF_SHARE * median(run))


def _first_flap(segments: list[tuple[int, int]], chosen: tuple[int, int], zs: list[float], times: list[float]) -> int:
    """The index of the first flap of a flapping excursion: where the incident's trouble began.

    A flapping fault (a datastore that stalls for two minutes, recovers for three, stalls again) leaves one
    excursion per flap; the one under way at the trigger is its latest, and dating the service by it puts its
    onset at the last flap, after the victims whose own flaps happened to be picked earlier (issue #15 round 10,
    alt36-021: a flapping mongo dated 12 min late, its caller's deploy blamed at 80). Earlier excursions count as
    flaps of the same fault when each came back within REPEAT_GAP_S of the previous one's end, stood at least
    REPEAT_SHARE as high (median z: a fault's flaps hold its level, while a job's bump or a few noise spikes ahead
    of it do not — alt33-057: a 30-min job's bump at 150 ms before spikes of 300 ms), and is no periodic job's run
    (one that repeats an earlier run after a longer quiet spell, _recurs).
    """
    start, _ = chosen
    first = start
    for seg_start, seg_end in reversed([seg for seg in segments if seg[1] <= start]):
        if times[first] - times[seg_end - 1] >= REPEAT_GAP_S or \
                median(zs[seg_start:seg_end]) < REPEAT_SHARE * median(zs[chosen[0]:chosen[1]]) or \
                _recurs(segments, (seg_start, seg_end), zs, times):
            break
        first = seg_start
    return first


def _upper_quartile(values: list[float]) -> float:
    # How high an excursion climbed and held for a quarter of its samples: a slowdown that ramps up (a store
    # stalling ever longer) is as large as where it got to, not its median half-way up the ramp
    # (issue #15 round 11, alt40-021: kafka 14 -> 18 ... 50 ms, median +19 ms, read as healthy).
    ordered = sorted(values)
    return ordered[(3 * len(ordered)) // 4]


def _practically_significant(name: str, level: float, level_after: float) -> bool:
    # Why: coarse series (histogram-bucket latencies, flat baselines) have a
    # tiny robust spread, so statistically "far" can be operationally nothing.
    # A latency excursion whose typical level is under 1.3x the baseline is not
    # what an operator calls slow, nor is a rise of a few milliseconds.
    lowered = name.lower()
    if "latency" in lowered or lowered.endswith("_ms"):
        return level_after >= LATENCY_MIN_RATIO * level and level_after - level >= LATENCY_MIN_RISE_MS
    return True


def _excursions(zs: list[float], spike_rate: float = 0.0) -> list[tuple[int, int]]:
    """Runs of persistent exceedance as (start, end-exclusive) index pairs; gaps of ≤ 2 samples merge.

    A run starts where PERSIST_SHARE of the next PERSIST_LEN samples exceed ONSET_Z — and, on a busy service's series
    whose healthy samples stood out now and then on their own (``spike_rate``: the share of such baseline samples),
    where that many would come together by chance less than SPIKE_P of the time (binomial tail): three lone spikes
    within five minutes of an error rate that spikes one minute in twelve do not date a failure (issue #15 round 10,
    alt31-019: a noisy error rate dated 4 min before the fault, its service's infra change blamed at 85). A
    low-traffic service's series spike by sampling a few requests, and its real failures come as such spikes too:
    they keep the plain rule (analyse_series ``busy``).
    """
    flags = []
    for index, z in enumerate(zs):
        if z <= ONSET_Z:
            flags.append(False)
            continue
        ahead = zs[index: index + PERSIST_LEN]
        hits = sum(1 for value in ahead if value > ONSET_Z)
        share = hits / len(ahead)
        # The last sample of a window may stand alone, but only when it is extreme.
        flags.append(share >= PERSIST_SHARE and (len(ahead) > 1 or z > 3 * ONSET_Z)
                     and (spike_rate <= 0 or binomial_tail(hits, len(ahead), spike_rate) < SPIKE_P))
    segments: list[tuple[int, int]] = []
    index = 0
    while index < len(flags):
        if not flags[index]:
            index += 1
            continue
        start = index
        last_hit = index
        probe = index + 1
        while probe < len(zs) and probe - last_hit <= 3:
            if zs[probe] > RAMP_Z:
                last_hit = probe
            probe += 1
        end = last_hit + 1
        segments.append((start, end))
        index = end
    merged: list[tuple[int, int]] = []
    for seg in segments:
        if merged and seg[0] - merged[-1][1] <= 2:
            merged[-1] = (merged[-1][0], seg[1])
        else:
            merged.append(seg)
    return merged


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (n may be thousands of requests)."""
    if k <= 0 or p >= 1.0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    head = math.lgamma(n + 1)
    return min(1.0, sum(math.exp(head - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
                        for i in range(k, n + 1)))


def _pick_segment(segments: list[tuple[int, int]], times: list[float], anchor: float) -> tuple[int, int]:
    # The incident's excursion is the one under way at the trigger, else the
    # latest one starting before it, else the first after it: earlier,
    # recovered excursions are other incidents.
    before = [s for s in segments if times[s[0]] <= anchor + 120]
    covering = [s for s in before if s[1] >= len(times) or times[s[1] - 1] >= anchor - 300]
    if covering:
        return covering[0]
    if before:
        return before[-1]
    return segments[0]


# A series is sparse when its samples cover less than this share of the span
# from its first sample to the anchor: traces sampled in pockets, scrapes that
# failed. A robust baseline needs history, so sparse series get a contrast test.
SPARSE_COVERAGE = 0.5
# ... unless it has this many samples before the anchor: then its history is its baseline, however many samples
# it lost (a scrape that fails now and then, a low-traffic minute with no sampled span). Issue #15 round 13: a
# regular series that lost half its samples at random read as pocketed whenever its median gap was one step and
# was dated by the contrast at the report, minutes after its real onset (generated seed 202 with traces thinned
# to half: a flag's service dated 8 min late, its caller's change blamed at 89).
SPARSE_MIN_HISTORY = 16
# Practical-significance thresholds of the contrast test, per metric family
# (the same tests as the "in world" sanity check of the Nezha TrainTicket
# worlds' README: error rate +0.10, latency at least 2x and 20 ms higher, CPU
# +0.20); reaching a threshold counts as a robust z of ONSET_Z.
CONTRAST_HORIZON_S = 300.0
CONTRAST_LAG_S = 30.0


def _gaps(times: list[float]) -> list[float]:
    """The positive gaps between consecutive sorted sample times, smallest first."""
    return sorted(b - a for a, b in zip(times, times[1:], strict=False) if b > a)


def grid_step(times: list[float]) -> float | None:
    """The step of the grid a series is sampled on: its lower-quartile gap (missing samples lengthen some gaps,
    not the grid's); None without two times."""
    gaps = _gaps(times)
    return gaps[len(gaps) // 4] if gaps else None


def open_onset(info: dict[str, Any], times: list[float], *, max_gap: float) -> float | None:
    """The earliest time an excursion first seen after missing samples can have begun, else None.

    Params: info — analyse_series' answer (``onset``, ``since``: the sample before the excursion's first);
    times — the series' sample times; max_gap — a longer gap is an outage, not missing samples (handled apart).
    Returns: the first grid step after ``since`` when more than one step (and at most ``max_gap``) separates
    it from the onset; None otherwise (no gap: the onset is where it was first seen).
    """
    since, onset = info.get("since"), info.get("onset")
    if since is None or onset is None:
        return None
    grid = grid_step(sorted(times))
    if grid is None or not since + grid < onset <= since + max_gap:
        return None
    return float(since + grid)


def coverage(times: list[float]) -> float:
    """The share of its own grid's slots a series filled between its first and last sample (0..1).

    The grid is the series' lower-quartile gap (grid_step): a series that lost half its samples covers about
    half; a pocketed one (samples in short bursts, as trace-derived series) less; fewer than three samples, 0.
    """
    times = sorted(set(times))
    step = grid_step(times)
    if len(times) < 3 or step is None or times[-1] <= times[0]:
        return 0.0
    return min(1.0, (len(times) - 1) * step / (times[-1] - times[0]))


def sample_step(times: list[float]) -> float | None:
    """A series' sample step: the (upper) median gap between its sorted sample times; None without two times."""
    gaps = _gaps(times)
    return gaps[len(gaps) // 2] if gaps else None


def is_sparse(points: list[tuple[float, float]], *, anchor: float) -> bool:
    """True when the samples before the anchor are fewer than SPARSE_MIN_HISTORY and cover less than
    SPARSE_COVERAGE of their span.

    Params: points — (epoch s, value) pairs; anchor — the trigger time.
    Returns: True for pocketed or very short series (fewer than 4 samples count as sparse).
    """
    times = sorted(t for t, _ in points if t is not None)
    if len(times) < 4:
        return True
    step = sample_step(times)
    if step is None:
        return True
    history = sum(1 for t in times if t <= anchor)
    if history >= SPARSE_MIN_HISTORY:
        return False
    span = max(step, min(anchor, times[-1]) - times[0])
    return history * step < SPARSE_COVERAGE * span


def contrast_series(points: list[tuple[float, float]], *, name: str, anchor: float) -> dict[str, Any] | None:
    """Judge a sparse series by contrast: samples just after the trigger against all earlier ones.

    The "after" level is the median of the samples from CONTRAST_LAG_S before
    the anchor to CONTRAST_HORIZON_S after it (a median, so one busy minute is
    no incident); the baseline is the median of every earlier sample.
    Params: points — (epoch s, value) pairs; name — metric name; anchor — trigger time.
    Returns: None without samples on both sides, else a dict shaped like analyse_series'.
    """
    clean = sorted((float(t), float(v)) for t, v in points
                   if t is not None and isinstance(v, int | float) and v == v)
    split = anchor - CONTRAST_LAG_S
    before = [v for t, v in clean if t < split]
    after_pts = [(t, v) for t, v in clean if split <= t <= anchor + CONTRAST_HORIZON_S]
    if not before or not after_pts:
        return None
    level = median(before)
    after = median(v for _, v in after_pts)
    lowered = name.lower()
    if "error" in lowered:
        ratio = (after - level) / 0.10
    elif "latency" in lowered or lowered.endswith("_ms"):
        ratio = min(after / max(level, 1e-9) / 2.0, (after - level) / 20.0)
    elif lowered.startswith("cpu") or "cpu_" in lowered:
        ratio = (after - level) / 0.20
    else:
        ratio = 0.0
    result: dict[str, Any] = {"baseline": level, "scale": 0.0, "anomalous": False, "onset": None,
                              "recovered": None, "severity": 0.0, "peak_z": 0.0, "level_after": after,
                              "shift": (after - level) / max(abs(level), 1e-9), "sparse": True}
    if ratio >= 1.0:
        severity = min(MAX_Z, ONSET_Z * ratio)
        result.update({"anomalous": True, "onset": after_pts[0][0], "severity": severity, "peak_z": severity})
    return result
