"""Slack payloads → our request types (Slack-specific reading; commands/ does the rest)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from commands.errors import BadRequest
from commands.parse import parse_trigger_text, split_mode
from commands.requests import InvestigationRequest, Origin

USAGE = (
    "*Usage:* `/investigate <TICKET-KEY | alert id | free text> [fast|balanced|deep]`\n"
    "• `/investigate SCHED-45895 deep` · `/investigate pd-7781` · `/investigate checkout is slow since 14:00`\n"
    "• `/investigate status <id>` · `/investigate cancel <id>` · `/investigate help`\n"
    "• `/investigate` with nothing opens a form. React with :{reaction}: on an alert to investigate it."
)


@dataclass(frozen=True)
class SlashCommand:
    """What ``/investigate <text>`` asks for: ``kind`` is start | modal | help | status | cancel."""

    kind: str
    trigger: dict[str, Any] | None = None
    mode: str = "balanced"
    investigation_id: str | None = None


def parse_slash(text: str, default_mode: str = "balanced") -> SlashCommand:
    """Read the text after ``/investigate``.

    Raises:
        BadRequest: ``status``/``cancel`` without an id.
    """
    words = (text or "").split()
    if not words:
        return SlashCommand("modal")
    head = words[0].lower()
    if head in ("help", "-h", "--help", "?"):
        return SlashCommand("help")
    if head in ("status", "cancel"):
        if len(words) != 2:
            raise BadRequest(f"`/investigate {head} <id>` needs one investigation id, e.g. inv-2026-02-21-143000-x")
        return SlashCommand(head, investigation_id=words[1])
    rest, mode = split_mode(words, default_mode)
    if not rest:
        raise BadRequest("say what to investigate before the mode, e.g. `/investigate SCHED-45895 deep`")
    if len(rest) == 2 and "text" not in parse_trigger_text(rest[0]):
        # "pd-7053 turbo": a key or id and one more word reads as a mistyped mode, not as free text.
        raise BadRequest(f"unknown mode {rest[1]!r} after {rest[0]}; use fast, balanced or deep, "
                         f"e.g. `/investigate {rest[0]} deep`")
    return SlashCommand("start", trigger=parse_trigger_text(" ".join(rest)), mode=mode)


def fingerprint(trigger: dict[str, Any]) -> str:
    """Same incident asked twice → same fingerprint (ticket key, alert id, or normalised text)."""
    if trigger.get("ticket"):
        return f"ticket:{trigger['ticket'].upper()}"
    if trigger.get("alert"):
        return f"alert:{str(trigger['alert']).lower()}"
    text = " ".join(str(trigger.get("text", "")).lower().split())
    return "text:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def slash_request(cmd: SlashCommand, body: dict[str, Any], *, sources: dict[str, Any],
                  channel: str | None = None) -> InvestigationRequest:
    """The InvestigationRequest of a ``start`` slash command (or modal submission)."""
    assert cmd.trigger is not None
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    return InvestigationRequest(
        trigger=cmd.trigger,
        origin=Origin(kind="slack", channel=channel or body.get("channel_id"), user=user),
        mode=cmd.mode, fingerprint=fingerprint(cmd.trigger), requested_by=user, sources=dict(sources),
        raw=body,
    )


def reaction_request(trigger: dict[str, Any], event: dict[str, Any], message: dict[str, Any], *,
                     sources: dict[str, Any], mode: str, domain: str | None) -> InvestigationRequest:
    """The InvestigationRequest for a reaction on ``message``: results go to that message's thread."""
    item = event.get("item") or {}
    channel, ts = item.get("channel"), item.get("ts")
    thread_ts = message.get("thread_ts") or ts
    core = {k: v for k, v in trigger.items() if v is not None}
    return InvestigationRequest(
        trigger=core,
        origin=Origin(kind="slack", channel=channel, thread_ts=thread_ts, message_ts=ts, user=event.get("user"),
                      source=trigger.get("source")),
        mode=mode, domain=domain,
        # Two people reacting on one message are one incident; the alert id also joins other posts of it.
        fingerprint=fingerprint(core) if core.get("alert") else f"slack-message:{channel}:{ts}",
        requested_by=event.get("user"), sources=dict(sources), raw={"event": event, "message": message},
    )
