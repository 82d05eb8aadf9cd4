"""The /investigate form (opened when the command has no argument) and reading its submission."""

from __future__ import annotations

from typing import Any

from bot.slack.normalise import SlashCommand
from commands.errors import BadRequest
from commands.parse import parse_trigger_text

CALLBACK_ID = "pm_investigate_modal"


def view(channel: str | None, default_mode: str = "balanced") -> dict[str, Any]:
    """The modal: ticket / alert / free text, mode, channel (pre-filled with where it was asked)."""
    modes = [{"text": {"type": "plain_text", "text": m}, "value": m} for m in ("fast", "balanced", "deep")]
    channel_el: dict[str, Any] = {"type": "conversations_select", "action_id": "channel",
                                  "filter": {"include": ["public", "private"], "exclude_bot_users": True}}
    if channel:
        channel_el["initial_conversation"] = channel
    return {
        "type": "modal", "callback_id": CALLBACK_ID, "private_metadata": channel or "",
        "title": {"type": "plain_text", "text": "Investigate"},
        "submit": {"type": "plain_text", "text": "Start"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": "what", "label": {"type": "plain_text", "text": "What to investigate"},
             "hint": {"type": "plain_text", "text": "A ticket key (SCHED-45895), an alert id (pd-7781) or a sentence"},
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True}},
            {"type": "input", "block_id": "mode", "label": {"type": "plain_text", "text": "Mode"},
             "element": {"type": "static_select", "action_id": "value", "options": modes,
                         "initial_option": next(o for o in modes if o["value"] == default_mode)}},
            {"type": "input", "block_id": "channel", "label": {"type": "plain_text", "text": "Post results in"},
             "element": channel_el},
        ],
    }


def read_submission(view_state: dict[str, Any]) -> tuple[SlashCommand, str | None]:
    """The command and channel a submitted form asks for.

    Raises:
        BadRequest: the "what" field is empty (shown next to the field).
    """
    values = (view_state.get("state") or {}).get("values") or {}
    what = ((values.get("what") or {}).get("value") or {}).get("value") or ""
    mode_opt = ((values.get("mode") or {}).get("value") or {}).get("selected_option") or {}
    channel = ((values.get("channel") or {}).get("channel") or {}).get("selected_conversation")
    if not what.strip():
        raise BadRequest("enter a ticket key, an alert id or a sentence")
    cmd = SlashCommand("start", trigger=parse_trigger_text(what), mode=mode_opt.get("value") or "balanced")
    return cmd, channel or view_state.get("private_metadata") or None
