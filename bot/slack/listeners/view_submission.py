"""The /investigate form was submitted: validate, close it, start the investigation."""

from __future__ import annotations

from typing import Any

from bot.slack import modal
from bot.slack.context import pm
from bot.slack.normalise import slash_request
from commands.errors import CommandError

HANDLES = ("view", modal.CALLBACK_ID)


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.view(modal.CALLBACK_ID)(handle)


def handle(ack: Any, body: dict[str, Any], client: Any, context: Any) -> None:
    """Errors go back next to the field (``response_action: errors``); success closes the form."""
    ctx = pm(context)
    try:
        cmd, channel = modal.read_submission(body.get("view") or {})
    except CommandError as exc:
        ack(response_action="errors", errors={"what": str(exc)})
        return
    if not channel:
        ack(response_action="errors", errors={"channel": "pick a channel for the results"})
        return
    ack()
    request = slash_request(cmd, {**body, "user_id": (body.get("user") or {}).get("id")}, sources=ctx.sources,
                            channel=channel)
    context["handed_off"] = True  # the start batcher links (and so finishes) the delivery
    ctx.starts.submit(request, context.get("delivery_key"), replay=bool(context.get("replay")))
