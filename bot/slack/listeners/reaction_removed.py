"""A 👍 / 👎 taken off an investigation's report message: that user's vote is taken back (a 👎 removed
may end the root cause's dispute). Other reactions, and votes on other messages, are ignored."""

from __future__ import annotations

from typing import Any

from bot.slack.context import pm
from bot.slack.inbound import link
from bot.slack.listeners.reaction_added import vote

HANDLES = ("event", "reaction_removed")


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.event("reaction_removed")(handle)


def handle(ack: Any, event: dict[str, Any], context: Any) -> None:
    """Ack, then hand the rest to the work pool (the ack never waits for it)."""
    ack()
    pm(context).handoff.defer(context, _work, event, context)


def _work(event: dict[str, Any], context: Any) -> None:
    """Take the vote back when the reaction was a vote on one of our report messages."""
    item = event.get("item") or {}
    if item.get("type") == "message":
        vote(event, item, context, removed=True)
        return
    key = context.get("delivery_key")
    if key:
        with pm(context).runtime.session() as session:
            link(session=session, key=key, investigation_id=None, status="ignored")
