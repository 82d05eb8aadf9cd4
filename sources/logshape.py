"""The log line shape shared by the log providers (``files`` and ``loki``).

Both turn whatever a team writes — JSON lines with their own field names, plain text lines,
Loki entries — into the contract's line ``{ts, service, level, message, host?, trace_id?}``.
This module holds what they share: level names (``warning`` -> ``WARN``), timestamps (ISO-8601
with ``Z`` or an offset, epoch seconds/ms/us/ns) and a quoted sample of a line for messages.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from sandbox.world import LEVEL_RANK, LEVELS, MAX_MESSAGE_CHARS, iso, parse_ts

#: Level spellings seen in the wild (lower case) -> the contract's level. Anything else is INFO.
LEVEL_ALIASES: dict[str, str] = {
    "trace": "DEBUG", "debug": "DEBUG", "dbg": "DEBUG", "verbose": "DEBUG", "finest": "DEBUG", "finer": "DEBUG",
    "fine": "DEBUG",
    "info": "INFO", "information": "INFO", "informational": "INFO", "notice": "INFO", "inf": "INFO",
    "warn": "WARN", "warning": "WARN", "wrn": "WARN",
    "error": "ERROR", "err": "ERROR", "eror": "ERROR", "severe": "ERROR",
    "fatal": "FATAL", "critical": "FATAL", "crit": "FATAL", "crt": "FATAL", "alert": "FATAL", "emerg": "FATAL",
    "emergency": "FATAL", "panic": "FATAL",
}
#: Syslog severities (0 emergency .. 7 debug), for numeric level fields.
_SYSLOG = ("FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG")

#: The default level when a line carries none (or one we do not know).
DEFAULT_LEVEL = "INFO"


def normalise_level(value: Any) -> str:
    """The contract's level for a level field's value (``warning`` -> ``WARN``; unknown or empty -> INFO).

    Numbers are read as syslog severities (0-7), bunyan/pino levels (10..60) being mapped too.
    """
    if value is None:
        return DEFAULT_LEVEL
    if isinstance(value, bool):
        return DEFAULT_LEVEL
    if isinstance(value, int | float):
        number = int(value)
        if 0 <= number <= 7:
            return _SYSLOG[number]
        # pino / bunyan: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal
        for floor, name in ((60, "FATAL"), (50, "ERROR"), (40, "WARN"), (30, "INFO")):
            if number >= floor:
                return name
        return "DEBUG"
    text = str(value).strip()
    if text in LEVEL_RANK:  # the common case: already one of ours
        return text
    return LEVEL_ALIASES.get(text.lower(), DEFAULT_LEVEL)


def aliases_of(levels: set[str] | frozenset[str]) -> list[str]:
    """Every lower-case spelling that :func:`normalise_level` maps into ``levels``, sorted."""
    return sorted(alias for alias, level in LEVEL_ALIASES.items() if level in levels)


def level_set(level: str | None, levels: list[str] | None) -> frozenset[str] | None:
    """The set of levels a line must have: ``level`` (a minimum) and ``levels`` (exact) combined.

    Returns None when neither filters (every level passes).
    """
    wanted: set[str] | None = None
    if level is not None and level != LEVELS[0]:
        wanted = {lv for lv in LEVELS if LEVEL_RANK[lv] >= LEVEL_RANK[level]}
    if levels:
        exact = set(levels)
        wanted = exact if wanted is None else wanted & exact
    return None if wanted is None else frozenset(wanted)


def epoch_of(value: Any) -> float:
    """Epoch seconds of a timestamp field: ISO-8601 (``Z``, offsets, a space or ``,`` accepted) or epoch numbers.

    Numbers (or digit strings) are read by magnitude: seconds, milliseconds, microseconds or
    nanoseconds. Naive times are UTC.

    Raises:
        ValueError: the value is not a time.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return _epoch_number(float(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty time")
        first = text[0]
        if first.isdigit() and len(text) >= 9 and text.replace(".", "", 1).isdigit():
            return _epoch_number(float(text))
        try:
            return parse_ts(text)
        except ValueError:
            pass
        fixed = text.replace(",", ".", 1)
        if fixed.endswith(("z", "UTC")):
            fixed = fixed[:-3 if fixed.endswith("UTC") else -1].rstrip() + "+00:00"
        try:
            parsed = _dt.datetime.fromisoformat(fixed)
        except ValueError:
            raise ValueError(f"not a time: {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.UTC)
        return parsed.timestamp()
    if isinstance(value, _dt.datetime | _dt.date):
        return parse_ts(value)
    raise ValueError(f"not a time: {value!r}")


def _epoch_number(number: float) -> float:
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ValueError(f"not a time: {number!r}")
    for scale in (1.0, 1e3, 1e6, 1e9):  # the first scale that lands before the year 5138
        if number / scale < 1e11:
            return number / scale
    raise ValueError(f"not a time: {number!r}")


def iso_ts(raw: Any, epoch: float) -> str:
    """The ISO ``Z`` text of a line's time: the line's own text when it already is one, else formatted."""
    if isinstance(raw, str) and raw.endswith("Z") and len(raw) >= 20 and raw[10] == "T":
        return raw
    return iso(epoch)


def cut_message(message: Any) -> str:
    """The message as text, cut like the world loader cuts runaway lines."""
    import json

    text = message if isinstance(message, str) else "" if message is None else json.dumps(message)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"...[truncated {len(text) - MAX_MESSAGE_CHARS} chars]"
    return text


def sample(line: str | bytes, width: int = 120) -> str:
    """A line quoted for an error message: escaped (repr) and cut to ``width`` characters."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    text = line.rstrip("\r\n")
    quoted = repr(text[:width])
    return quoted + ("..." if len(text) > width else "")


def dig(rec: dict[str, Any], name: str) -> Any:
    """``rec[name]``, or for a dotted name the nested value (``log.level`` -> ``rec["log"]["level"]``)."""
    if name in rec:
        return rec[name]
    value: Any = rec
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
