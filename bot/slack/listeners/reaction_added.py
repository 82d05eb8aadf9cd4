"""An emoji reaction on a message: PM_SLACK_REACTION (default :mag:) investigates that message; a 👍 / 👎
on an investigation's report message is feedback for the knowledge base (a 👎 disputes its root cause)."""

from __future__ import annotations

import logging
from typing import Any

from bot.slack.context import pm
from bot.slack.inbound import link
from bot.slack.normalise import reaction_request
from commands import feedback, investigate
from commands.alert_parse import parse_alert_message
from commands.errors import CommandError
from publishers.escape import mrkdwn

log = logging.getLogger(__name__)


HANDLES = ("event", "reaction_added")


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.event("reaction_added")(handle)


def fetch_message(client: Any, channel: str, ts: str) -> dict[str, Any] | None:
    """The message at ``ts``: top-level via conversations.history, a thread reply via conversations.replies."""
    resp = client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
    for msg in resp.get("messages") or []:
        if msg.get("ts") == ts:
            return msg
    resp = client.conversations_replies(channel=channel, ts=ts, inclusive=True, limit=1)
    for msg in resp.get("messages") or []:
        if msg.get("ts") == ts:
            return msg
    return None


def handle(ack: Any, event: dict[str, Any], client: Any, context: Any) -> None:
    """Ack, then hand the rest to the work pool (the ack never waits for it)."""
    ack()
    pm(context).handoff.defer(context, _work, event, client, context)


def _work(event: dict[str, Any], client: Any, context: Any) -> None:
    """Parse the reacted-on message into a trigger and start (or join) its investigation."""
    ctx = pm(context)
    item = event.get("item") or {}
    if item.get("type") == "message" and feedback.vote_of(event.get("reaction")) is not None:
        vote(event, item, context)
        return
    if event.get("reaction") != ctx.slack.reaction or item.get("type") != "message":
        return
    channel, ts, user = item.get("channel"), item.get("ts"), event.get("user")
    if not channel or not ts:  # a reaction without its message: nothing to investigate
        return
    message = fetch_message(client, channel, ts)
    try:
        if message is None:
            raise CommandError("I cannot read that message; invite me to the channel and react again")
        trigger = parse_alert_message(message)
        service = trigger.get("service")
        domain = service if service in ctx.slack.domain_channels else None
        request = reaction_request(trigger, event, message, sources=ctx.sources, mode=ctx.slack.default_mode,
                                   domain=domain)
        result = investigate.start(runtime=ctx.runtime, request=request)
    except CommandError as exc:
        client.chat_postEphemeral(channel=channel, user=user, text=f":warning: {mrkdwn(str(exc))}")
        return
    key = context.get("delivery_key")
    if key:
        with ctx.runtime.session() as session:
            link(session=session, key=key, investigation_id=result.investigation_id)
    log.info("reaction by %s on %s/%s -> %s (created=%s)", user, channel, ts, result.investigation_id,
             result.created)


def vote(event: dict[str, Any], item: dict[str, Any], context: Any, *, removed: bool = False) -> None:
    """Record a 👍 / 👎 on one of our report messages, or with ``removed`` take it back (any other
    message: ignored); the delivery is linked to the investigation either way."""
    ctx = pm(context)
    apply = feedback.on_slack_reaction_removed if removed else feedback.on_slack_reaction
    out = apply(runtime=ctx.runtime, channel=str(item.get("channel") or ""), ts=str(item.get("ts") or ""),
                reaction=str(event.get("reaction")), user=event.get("user"))
    done = bool(out) and (not removed or bool(out and out["removed"]))
    key = context.get("delivery_key")
    if key:
        with ctx.runtime.session() as session:
            link(session=session, key=key, investigation_id=out["investigation_id"] if out else None,
                 status=("feedback_removed" if removed else "feedback") if done else "ignored")
    if out:
        log.info("feedback %s %s by %s on %s: %s", event.get("reaction"), "removed" if removed else "given",
                 event.get("user"), out["investigation_id"], out["feedback"])
