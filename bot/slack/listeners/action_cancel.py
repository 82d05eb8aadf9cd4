""""Cancel" button (on the status message while it runs): who may act is bot.slack.context.authoriser."""

from __future__ import annotations

from typing import Any

from bot.slack.context import ack_and_defer, authoriser, pm
from commands import investigate
from commands.errors import CommandError
from publishers.escape import mrkdwn
from publishers.slack import ACTIONS

HANDLES = ("action", ACTIONS["cancel"])


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.action(ACTIONS["cancel"])(handle)


def _work(body: dict[str, Any], client: Any, context: Any) -> None:
    """Ask the investigation to stop; refusals and errors are ephemeral."""
    ctx = pm(context)
    inv_id = body["actions"][0]["value"]
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id")
    try:
        investigate.cancel(runtime=ctx.runtime, investigation_id=inv_id, user=user,
                           authorise=authoriser(ctx, user, channel))
    except CommandError as exc:
        client.chat_postEphemeral(channel=channel, user=user, text=f":no_entry: {mrkdwn(str(exc))}")
        return
    client.chat_postEphemeral(channel=channel, user=user, text=f"Cancelling `{inv_id}`.")


# Ack at once; the work above runs in the hand-off pool.
handle = ack_and_defer(_work)
