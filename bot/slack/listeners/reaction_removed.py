"""A 👍 / 👎 taken off an investigation's report message: that user's vote is taken back (a 👎 removed
may end the root cause's dispute). Other reactions, and votes on other messages, are ignored."""

from __future__ import annotations

import logging
from typing import Any

from bot.slack.context import pm
from bot.slack.inbound import link
from commands import feedback

log = logging.getLogger(__name__)


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
    ctx = pm(context)
    item = event.get("item") or {}
    out = None
    if item.get("type") == "message":
        out = feedback.on_slack_reaction_removed(runtime=ctx.runtime, channel=str(item.get("channel") or ""),
                                                 ts=str(item.get("ts") or ""), reaction=str(event.get("reaction")),
                                                 user=event.get("user"))
    key = context.get("delivery_key")
    if key:
        with ctx.runtime.session() as session:
            link(session=session, key=key, investigation_id=out["investigation_id"] if out else None,
                 status="feedback_removed" if out and out["removed"] else "ignored")
    if out:
        log.info("feedback %s removed by %s on %s: %s", event.get("reaction"), event.get("user"),
                 out["investigation_id"], out["feedback"])
