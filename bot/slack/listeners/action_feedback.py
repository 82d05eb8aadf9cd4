"""👍 / 👎 buttons: the vote is kept on the persisted inbound delivery (status feedback_up/down) and recorded
as knowledge-base feedback (commands.feedback; a 👎 disputes the root cause)."""

from __future__ import annotations

import re
from typing import Any

from bot.slack.context import ack_and_defer, pm
from bot.slack.inbound import link
from commands import feedback
from publishers.slack import ACTIONS
from store.errors import NotFound

HANDLES = ("action", ACTIONS["up"], ACTIONS["down"])


def register(app: Any) -> None:
    """Attach the listener to the Bolt app (one listener for both buttons)."""
    app.action(re.compile(f"^({ACTIONS['up']}|{ACTIONS['down']})$"))(handle)


def _work(body: dict[str, Any], client: Any, context: Any) -> None:
    """Record the vote against the investigation and thank the voter."""
    ctx = pm(context)
    action = body["actions"][0]
    vote = "feedback_up" if action["action_id"] == ACTIONS["up"] else "feedback_down"
    key = context.get("delivery_key")
    if key:
        with ctx.runtime.session() as session:
            link(session=session, key=key, investigation_id=action["value"], status=vote)
    try:
        feedback.record(runtime=ctx.runtime, memory=ctx.runtime.memory, investigation_id=str(action["value"]),
                        vote=1 if vote == "feedback_up" else -1, user=body["user"]["id"])
    except NotFound:
        return
    client.chat_postEphemeral(channel=(body.get("channel") or {}).get("id"), user=body["user"]["id"],
                              text="Thanks, noted." if vote == "feedback_up" else
                              "Thanks, noted. Reply in the thread with what was wrong and I'll keep it with the report.")


# Ack at once; the work above runs in the hand-off pool.
handle = ack_and_defer(_work)
