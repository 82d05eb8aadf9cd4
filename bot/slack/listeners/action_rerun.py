""""Re-run deep" button: who may act is bot.slack.context.authoriser; the new run posts into the same thread."""

from __future__ import annotations

from typing import Any

from bot.slack.context import ack_and_defer, authoriser, pm
from commands import investigate
from commands.errors import CommandError
from commands.requests import Origin
from publishers.escape import mrkdwn
from publishers.slack import ACTIONS

HANDLES = ("action", ACTIONS["rerun"])


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.action(ACTIONS["rerun"])(handle)


def _work(body: dict[str, Any], client: Any, context: Any) -> None:
    """Start a deep re-run, or tell the clicker why not (ephemeral)."""
    ctx = pm(context)
    inv_id = body["actions"][0]["value"]
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id")
    message = body.get("message") or {}
    thread_ts = message.get("thread_ts") or message.get("ts")
    try:
        result = investigate.rerun(runtime=ctx.runtime, investigation_id=inv_id, mode="deep", user=user,
                                   authorise=authoriser(ctx, user, channel),
                                   origin=Origin(kind="slack", channel=channel, thread_ts=thread_ts, user=user))
    except CommandError as exc:
        client.chat_postEphemeral(channel=channel, user=user, text=f":no_entry: {mrkdwn(str(exc))}")
        return
    client.chat_postEphemeral(channel=channel, user=user,
                              text=f"Re-running in deep mode as `{result.investigation_id}`.")


# Ack at once; the work above runs in the hand-off pool.
handle = ack_and_defer(_work)
