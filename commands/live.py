"""Triggers of live investigations (real sources): what happened, when, and which window to read.

The window (docs/sources.md, "The window"): ``--start``/``--end`` when given; else from the
trigger time — ``--at``, else the ticket's or alert's own time as the tools report it, else now
for free text — reaching ``lookback`` before it and ``lookahead`` after it (sources.yaml
``window:``, default 3 h and 30 min), never past the present.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from commands.errors import BadRequest


def parse_time(value: str, what: str) -> datetime:
    """An ISO-8601 time (``Z`` or an offset; a naive time is taken as UTC).

    Raises:
        BadRequest: not a time; the message shows one.
    """
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{what} {value!r} is not an ISO-8601 time; use e.g. 2026-12-06T08:10:00Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def live_trigger(*, text: str | None = None, ticket: str | None = None, alert: str | None = None,
                 at: str | None = None, start: str | None = None, end: str | None = None,
                 lookback_s: float | None = None, lookahead_s: float | None = None) -> dict[str, Any]:
    """The trigger dict of a live investigation (exactly one of text / ticket / alert).

    Returns:
        ``{text|ticket|alert, at?, window?, lookback_s?, lookahead_s?}``: the engine reads ``at`` as the
        trigger time and derives the window from it when no ``window`` is set.

    Raises:
        BadRequest: not exactly one of text/ticket/alert, only one of start/end, start after end, a bad time.
    """
    given = [(k, v) for k, v in (("text", text), ("ticket", ticket), ("alert", alert)) if v and v.strip()]
    if len(given) != 1:
        raise BadRequest("say what to investigate with exactly one of --text, --ticket or --alert")
    trigger: dict[str, Any] = {given[0][0]: given[0][1].strip()}
    if (start is None) != (end is None):
        raise BadRequest("--start and --end go together; give both, or neither to derive the window from --at")
    if at:
        trigger["at"] = iso_z(parse_time(at, "--at"))
    if start and end:
        t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
        if t0 >= t1:
            raise BadRequest(f"--start {start} is not before --end {end}; swap them")
        trigger["window"] = {"start": iso_z(t0), "end": iso_z(t1)}
    if lookback_s:
        trigger["lookback_s"] = float(lookback_s)
    if lookahead_s:
        trigger["lookahead_s"] = float(lookahead_s)
    if "at" not in trigger and "text" in trigger and "window" not in trigger:
        trigger["at"] = iso_z(datetime.now(UTC))
    return trigger
