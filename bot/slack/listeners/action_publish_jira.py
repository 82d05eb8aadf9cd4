""""Publish to Jira" button: queue the report for the Jira sink of the investigation's ticket."""

from __future__ import annotations

from typing import Any

from bot.slack.context import ack_and_defer, pm
from commands import investigate
from commands.errors import CommandError
from publishers.escape import mrkdwn
from publishers.slack import ACTIONS
from store import outbox

HANDLES = ("action", ACTIONS["jira"])


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.action(ACTIONS["jira"])(handle)


def _work(body: dict[str, Any], client: Any, context: Any) -> None:
    """Append a ``report`` event for the jira sink only (the Slack publisher skips it)."""
    ctx = pm(context)
    inv_id = body["actions"][0]["value"]
    channel, user = (body.get("channel") or {}).get("id"), body["user"]["id"]
    try:
        inv = investigate.status(runtime=ctx.runtime, investigation_id=inv_id)
        key = (inv.get("origin") or {}).get("jira_key") or (inv.get("trigger") or {}).get("ticket")
        if not key:
            raise CommandError("this investigation has no Jira ticket; start it from a ticket key to publish")
        if not inv.get("report"):
            raise CommandError("there is no report yet; wait for the investigation to finish")
    except CommandError as exc:
        client.chat_postEphemeral(channel=channel, user=user, text=f":warning: {mrkdwn(str(exc))}")
        return
    with ctx.runtime.session() as session:
        outbox.append(session=session, investigation_id=inv_id, kind="report", sinks=["jira"],
                      payload={"report": inv["report"], "only_sinks": ["jira"], "jira_key": key, "by": user})
        session.commit()
    client.chat_postEphemeral(channel=channel, user=user, text=f"Publishing the report to {key}.")


# Ack at once; the work above runs in the hand-off pool.
handle = ack_and_defer(_work)
