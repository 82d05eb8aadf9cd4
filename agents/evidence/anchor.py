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

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

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


def alert_burst_start(times: Iterable[float]) -> float | None:
    """The first alert of the densest burst of alerts (ties: the earlier burst).

    Params: times — alert timestamps (epoch s). Returns: epoch s, or None without alerts.
    """
    ordered = sorted(times)
    best, best_count = None, 0
    for index, first in enumerate(ordered):
        count = sum(1 for t in ordered[index:] if t - first <= ALERT_BURST_S)
        if count > best_count:
            best, best_count = first, count
    return best
