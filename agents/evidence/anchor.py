"""The investigation's anchor: when the incident was reported, when the trigger itself carries no date.

A ticket or an alert has a timestamp; a free-text trigger ("checkout is
throwing 500s since about 08:08 UTC") usually has a clock time in its words,
and failing that the alerts say when things went wrong. The first alert is a
poor guess: unrelated warnings (a certificate expiring, a disk filling) fire
all day, while an incident sets off several alerts within minutes of each
other. So without a time in the text the anchor is the first alert of the
densest burst of alerts.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from agents.evidence import anomalies
from agents.evidence.timeutil import parse_ts

# Clock times a person writes: "08:08", "8:08 UTC", "20:42:10". A date before it
# ("2026-04-08 20:42" / "2026-04-08T20:42") pins the day too.
_CLOCK = re.compile(r"(?<![\d:])(?:(\d{4}-\d{2}-\d{2})[T ])?([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?![\d:])")
# A reported start time is rounded down and approximate ("~03:12", "about 08:08"): the
# anchor sits a little after it, and metric onsets up to a few minutes later still belong to it.
TEXT_TIME_SLACK_S = 120.0
# Alerts within this span of a burst's first alert belong to the burst (an incident's alerts
# follow each other within minutes as it spreads to callers).
ALERT_BURST_S = 20 * 60.0
# Series change points within this span of the first belong to one incident (it spreads in minutes).
METRIC_BURST_S = 10 * 60.0
# ... but a first change point that the next one follows only this much later is no part of the spread.
BURST_GAP_S = 5 * 60.0
# A shift counts when the series sits this many noise units above its earlier level, and stays there.
SHIFT_Z = 5.0
STAY_SHARE = 0.7
MIN_HISTORY = 10
# Without a report time, a shift must last this many samples (10 min on the usual 60 s step).
HOLD_SAMPLES = 10
# A report this long after the metrics' burst is late: the baseline before it would hold the incident.
LATE_REPORT_S = 15 * 60.0
# The anchor then sits this long after the burst, as a prompt report would.
REPORT_DELAY_S = 180.0


def time_in_text(text: str, start: float, end: float) -> float | None:
    """The clock time a trigger text names, placed inside the window, as epoch seconds.

    Params: text — the trigger's words; start, end — the window (epoch s).
    Returns: the latest clock time in the text that falls inside the window on
    one of the window's days (plus TEXT_TIME_SLACK_S), or None when the text
    names no such time.
    """
    found: list[float] = []
    day0 = datetime.fromtimestamp(start, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for match in _CLOCK.finditer(text or ""):
        date, hour, minute, second = match.groups()
        offset = timedelta(hours=int(hour), minutes=int(minute), seconds=int(second or 0))
        if date:
            stamp = parse_ts(f"{date}T00:00:00Z")
            days = [datetime.fromtimestamp(stamp, tz=UTC)] if stamp is not None else []
        else:
            days = [day0 + timedelta(days=n) for n in range(-1, int((end - start) // 86400) + 2)]
        for day in days:
            at = (day + offset).timestamp()
            if start <= at <= end:
                found.append(at)
    if not found:
        return None
    return min(max(found) + TEXT_TIME_SLACK_S, end)


def alert_weight(severity: object) -> float:
    """How much one alert says that an incident is under way, by its severity (0..1).

    Paging severities (P1/P2, critical, high, error) count fully; warnings and P3/P4 (a certificate
    expiring in 14 days, a disk at 85 %, a watchdog) are what fires all day and count little. An alert
    without a severity gets the middle weight.
    """
    text = str(severity or "").strip().lower()
    if not text:
        return 0.5
    for keys, weight in ((("p1", "sev1", "sev-1", "critical", "crit", "page", "emergency", "fatal"), 1.0),
                         (("p2", "sev2", "sev-2", "high", "error", "major"), 0.8),
                         (("p3", "sev3", "sev-3", "warn", "medium", "moderate", "minor"), 0.25),
                         (("p4", "p5", "sev4", "sev-4", "low", "info", "none"), 0.1)):
        if any(text == key or text.startswith(key) for key in keys):
            return weight
    return 0.5


def alert_burst_start(times: Iterable[float], weights: Iterable[float] | None = None) -> float | None:
    """The first alert of the heaviest burst of alerts (ties: the earlier burst).

    Params: times — alert timestamps (epoch s); weights — each alert's alert_weight (None: all 1).
    A burst starts at an alert at least half as heavy as the heaviest one (a low-severity warning that
    happens to fire just before the pages does not date the incident) and weighs the sum of its alerts'
    weights within ALERT_BURST_S. Returns: epoch s, or None without alerts.
    """
    times = list(times)
    pairs = sorted(zip(times, list(weights) if weights is not None else [1.0] * len(times), strict=False))
    if not pairs:
        return None
    heaviest = max(w for _, w in pairs)
    best, best_weight = None, 0.0
    for index, (first, weight) in enumerate(pairs):
        if weight < 0.5 * heaviest:
            continue
        total = sum(w for t, w in pairs[index:] if t - first <= ALERT_BURST_S)
        if total > best_weight + 1e-9:
            best, best_weight = first, total
    return best


def series_shift(points: list[tuple[float, float]], *, name: str, until: float,
                 hold: int | None = None) -> tuple[float, float] | None:
    """The first lasting upward shift of one bad-when-up series (errors, latency, saturation) before ``until``.

    The level before a candidate point is the median of everything earlier, the noise the spread of
    first differences (robust to one level shift: 1.4826·MAD/√2, Rousseeuw & Croux 1993); the point
    counts when the next samples up to ``until`` (or the next ``hold`` samples) mostly stay SHIFT_Z
    noise units above that level.
    Params: points — (epoch s, value) sorted by time; name — metric name; until — last time considered;
    hold — how many samples the shift must last (None: until ``until``; an incident may have ended).
    Returns: (time of the shift, median z after it), or None when the series never shifts that way.
    """
    values = [v for t, v in points if t <= until]
    times = [t for t, _ in points if t <= until]
    if len(values) < MIN_HISTORY + 3 or anomalies.direction(name) != "up":
        return None
    diffs = sorted(abs(b - a) for a, b in zip(values, values[1:], strict=False))
    mad = diffs[len(diffs) // 2] * 1.4826 / math.sqrt(2.0)
    low = min(values)
    if low >= 0 and max(values) - low < SHIFT_Z * max(mad, anomalies.noise_floor(name, low)):
        return None  # no sample can stand SHIFT_Z units above any earlier level (cheap early exit)
    earlier = sorted(values[:MIN_HISTORY])
    for index in range(MIN_HISTORY, len(values) - 2):
        if index > MIN_HISTORY:
            bisect.insort(earlier, values[index - 1])
        level = earlier[len(earlier) // 2]
        scale = max(mad, anomalies.noise_floor(name, level))
        if (values[index] - level) / scale < SHIFT_Z:
            continue
        after = [(v - level) / scale for v in values[index: index + hold if hold else len(values)]]
        if sum(1 for z in after if z >= SHIFT_Z) < STAY_SHARE * len(after):
            continue
        return times[index], sorted(after)[len(after) // 2]
    return None


def metric_burst(series: list[dict], *, until: float, hold: int | None = None) -> float | None:
    """When the incident began by the metrics: the first shift of the densest burst of series shifts.

    Params: series — metrics.series items (``service``, ``name``, ``points``); until — last time
    considered (the trigger time, or the window's end without one); hold — see series_shift.
    Returns: epoch s of the burst's first shift, or None when no two series (or no error series) shift.
    """
    shifts: list[tuple[float, float]] = []
    stamps: dict[str, float | None] = {}  # series share their sample times: parse each once
    for item in series:
        name = str(item.get("name") or "")
        points = []
        for p in item.get("points") or []:
            if isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[1], int | float):
                key = str(p[0])
                if key not in stamps:
                    stamps[key] = parse_ts(key)
                if stamps[key] is not None:
                    points.append((stamps[key], float(p[1])))
        points.sort()
        found = series_shift(points, name=name, until=until, hold=hold)
        if found is not None:
            # Error series are the most direct symptom, so they weigh most (signals.METRIC_WEIGHT's order).
            weight = 1.0 if "error" in name.lower() else 0.6
            shifts.append((found[0], weight * (1.0 - math.exp(-found[1] / 8.0))))
    shifts.sort()
    best, best_weight, best_index = None, 0.0, 0
    for index, (first, _) in enumerate(shifts):
        weight = sum(w for t, w in shifts[index:] if t - first <= METRIC_BURST_S)
        if weight > best_weight + 1e-9:
            best, best_weight, best_index = first, weight, index
    if best is None or best_weight < 0.9:
        return None
    # An incident spreads from series to series within minutes: a lone shift that the rest of the burst
    # follows only after a long quiet gap (a slow memory drift crossing its line, a cron job's CPU) is
    # earlier noise that the window happened to reach, so the burst starts at the next shift.
    members = [t for t, _ in shifts[best_index:] if t - best <= METRIC_BURST_S]
    while len(members) > 1 and members[1] - members[0] > BURST_GAP_S:
        members = members[1:]
    return members[0]


def refine_anchor(series: list[dict], ctx: dict) -> float:
    """The anchor the evidence phase should use: the context's, unless the metrics say otherwise.

    Without a dated trigger (anchor at the window's end) the metrics' burst sets it. A dated report
    that comes more than LATE_REPORT_S after a burst still ongoing at report time (a ticket filed an
    hour in) moves back to just after the burst, so the baseline is taken before the incident; so does
    one that comes after a lasting burst already over, when nothing is wrong at report time. A late dated
    report whose words name a clock time before it (time_in_text) moves to that time instead.
    Params: series — metrics.series items of the window; ctx — gather_context output.
    Returns: epoch seconds.
    """
    anchor = float(ctx["anchor"])
    if ctx.get("anchor_from") == "alerts" and ctx.get("alerts"):
        # Dated by the alerts: weigh them by severity (the context phase counted every alert alike).
        dated = [(parse_ts(a.get("ts")), alert_weight(a.get("severity"))) for a in ctx["alerts"]]
        dated = [(t, w) for t, w in dated if t is not None]
        start = parse_ts((ctx.get("window") or {}).get("start"))
        end = parse_ts((ctx.get("window") or {}).get("end"))
        weighed = alert_burst_start([t for t, _ in dated], [w for _, w in dated])
        if weighed is not None:
            anchor = min(max(weighed, start if start is not None else weighed), end if end is not None else weighed)
    if ctx.get("anchor_from") == "window_end":
        # Nothing dates the report, so the incident may be over by the window's end (rolled back):
        # a shift need only last a while.
        burst = metric_burst(series, until=anchor, hold=HOLD_SAMPLES)
        return anchor if burst is None else min(anchor, burst + REPORT_DELAY_S)
    stated = None
    if ctx.get("anchor_from") in ("trigger", "at") and ctx.get("trigger_text"):
        # A late report that says when it started ("errors on checkout from 07:16 UTC"): the reporter's
        # stated time beats a metric burst, which may be an unrelated earlier shift (a cron job's CPU).
        start = parse_ts((ctx.get("window") or {}).get("start"))
        stated = time_in_text(str(ctx["trigger_text"]), start, anchor) if start is not None else None
        if stated is not None and stated < anchor - LATE_REPORT_S:
            return stated
    burst = metric_burst(series, until=anchor)
    if burst is None and ctx.get("anchor_from") != "text" and not ctx.get("alert"):
        # Nothing is still wrong at report time: the report may come after the incident ended (a
        # ticket filed after a rollback), so take a burst that lasted a while and ended before it.
        # Not when the report's words name the start (anchor_from "text"): a burst already over by the
        # time the reporter says the trouble began is another incident (issue #15: a second, unrelated
        # incident 25-50 min before a slow onset took the anchor, and its service the blame). Nor when an
        # alert is the trigger: an alert fires while its condition holds, so the incident is live at its
        # time, however faint the metrics' shifts still are (issue #15 round 4: an alert 3-4 min into a
        # datastore's failure moved to another incident that ended 25-45 min before it).
        burst = metric_burst(series, until=anchor, hold=HOLD_SAMPLES)
    if burst is not None and burst < anchor - LATE_REPORT_S:
        if stated is not None and burst < stated - 2 * TEXT_TIME_SLACK_S:
            # The reporter names a start after the burst (stated carries one slack already): the burst is
            # an earlier shift (a traffic surge before the saturation, a cron job), not what was reported.
            return stated
        return burst + REPORT_DELAY_S
    return anchor
