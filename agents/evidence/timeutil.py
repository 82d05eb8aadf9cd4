"""ISO-8601 UTC time helpers shared by the evidence modules.

Worlds and tools speak ISO strings with a ``Z`` suffix; the analysis works in
epoch seconds (floats) so that arithmetic stays cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: Answers of parse_ts by input text: log lines share their seconds (a 200,000-line hour holds 3,600
#: distinct times), and the evidence phases parse each line's time several times over.
_PARSED: dict[str, float | None] = {}
#: Bound of the memo, so a world of all-distinct millisecond times cannot grow it without end.
_PARSED_MAX = 500_000


def parse_ts(value: str | None) -> float | None:
    """Parse an ISO-8601 timestamp into epoch seconds.

    Params: value — ``2026-02-20T08:00:00Z`` style string (offsets accepted), or None.
    Returns: epoch seconds, or None when the value is missing or unparseable
    (bad input degrades instead of raising).
    """
    if not value or not isinstance(value, str):
        return None
    try:
        return _PARSED[value]
    except KeyError:
        pass
    epoch = _parse(value)
    if len(_PARSED) < _PARSED_MAX:
        _PARSED[value] = epoch
    return epoch


def _parse(value: str) -> float | None:
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def fmt_ts(seconds: float) -> str:
    """Format epoch seconds as an ISO-8601 UTC string with a ``Z`` suffix (whole seconds)."""
    return datetime.fromtimestamp(int(round(seconds)), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
