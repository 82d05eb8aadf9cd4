"""``@bot …``: in an investigation's thread it is a follow-up; elsewhere it starts an investigation."""

from __future__ import annotations

import re
from typing import Any

from bot.slack.context import pm
from bot.slack.inbound import link
from bot.slack.listeners.message_thread import answer_in_thread
from bot.slack.normalise import USAGE, fingerprint, parse_slash
from commands import investigate
from commands.errors import CommandError
from commands.requests import InvestigationRequest, Origin
from publishers.escape import mrkdwn

_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")


HANDLES = ("event", "app_mention")


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.event("app_mention")(handle)


def handle(ack: Any, event: dict[str, Any], client: Any, context: Any) -> None:
    """Ack, then hand the rest to the work pool (the ack never waits for it)."""
    ack()
    pm(context).handoff.defer(context, _work, event, client, context)


def _work(event: dict[str, Any], client: Any, context: Any) -> None:
    """Answer in a thread, or treat ``@bot <what> [mode]`` like ``/investigate`` on that message."""
    ctx = pm(context)
    if event.get("thread_ts") and event.get("thread_ts") != event.get("ts"):
        if answer_in_thread(ctx, event) is not None:
            return
    text = _MENTION.sub("", event.get("text") or "").strip()
    text = re.sub(r"^investigate\b", "", text, flags=re.IGNORECASE).strip()
    channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
    try:
        cmd = parse_slash(text, ctx.slack.default_mode)
        if cmd.kind != "start" or cmd.trigger is None:
            raise CommandError("mention me with what to investigate")
        result = investigate.start(runtime=ctx.runtime, request=InvestigationRequest(
            trigger=cmd.trigger, mode=cmd.mode, fingerprint=fingerprint(cmd.trigger), requested_by=user,
            origin=Origin(kind="slack", channel=channel, thread_ts=event.get("thread_ts") or ts, message_ts=ts,
                          user=user),
            sources=dict(ctx.sources), raw=event))
    except CommandError as exc:
        client.chat_postEphemeral(channel=channel, user=user,
                                  text=f":warning: {mrkdwn(str(exc))}\n" + USAGE.format(reaction=ctx.slack.reaction))
        return
    key = context.get("delivery_key")
    if key:
        with ctx.runtime.session() as session:
            link(session=session, key=key, investigation_id=result.investigation_id)
