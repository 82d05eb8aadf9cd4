"""Argument checks shared by every capability answerer (sandbox tools and real-source providers).

Each takes the capability name, the argument's name and its value, returns the normalised
value (None for "no filter") and raises :class:`sandbox.errors.ToolArgumentError` with one line
saying what to pass instead.
"""

from __future__ import annotations

from typing import Any

from sandbox.errors import ToolArgumentError
from sandbox.world import LEVEL_RANK, LEVELS, parse_ts


def opt_str(cap: str, name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ToolArgumentError(f"{cap}: '{name}' must be a string, got {type(value).__name__}")
    return value or None


def opt_time(cap: str, name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return parse_ts(value)
    except (ValueError, TypeError):
        raise ToolArgumentError(
            f"{cap}: '{name}' {value!r} is not an ISO-8601 time; use e.g. 2026-02-20T08:00:00Z"
        ) from None


def opt_level(cap: str, name: str, value: Any) -> str | None:
    text = opt_str(cap, name, value)
    if text is None:
        return None
    lvl = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(text.upper(), text.upper())
    if lvl not in LEVEL_RANK:
        raise ToolArgumentError(f"{cap}: '{name}' {value!r} is not a level; use one of {'/'.join(LEVELS)}")
    return lvl


def opt_str_list(cap: str, name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):  # a comma-separated string is accepted for convenience
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ToolArgumentError(f"{cap}: '{name}' must be a list of strings")
    return list(value) or None


def opt_int(cap: str, name: str, value: Any, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ToolArgumentError(f"{cap}: '{name}' must be an integer between {low} and {high}")
    if not low <= value <= high:
        raise ToolArgumentError(f"{cap}: '{name}' {value} is out of range; use {low}..{high}")
    return value
