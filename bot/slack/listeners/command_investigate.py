"""``/investigate``: ack within 3 s, then start / open the form / answer status, cancel, help."""

from __future__ import annotations

from typing import Any

from bot.slack import modal
from bot.slack.context import pm
from bot.slack.inbound import link
from bot.slack.normalise import USAGE, parse_slash, slash_request
from commands import investigate
from commands.errors import CommandError
from publishers.slack import trigger_label

HANDLES = ("command", "/investigate")


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.command("/investigate")(handle)


def handle(ack: Any, body: dict[str, Any], client: Any, context: Any) -> None:
    """Dispatch one slash command; every reply is ephemeral (the ack's response)."""
    ctx = pm(context)
    usage = USAGE.format(reaction=ctx.slack.reaction)
    try:
        cmd = parse_slash(body.get("text", ""), ctx.slack.default_mode)
    except CommandError as exc:
        ack(text=f":warning: {exc}\n{usage}")
        return
    if cmd.kind == "help":
        ack(text=usage)
    elif cmd.kind == "modal":
        ack()
        # The trigger_id dies 3 s after the command: the ui lane never waits behind a burst of starts.
        ctx.handoff.defer(context, client.views_open, ui=True, trigger_id=body["trigger_id"],
                          view=modal.view(body.get("channel_id"), ctx.slack.default_mode))
    elif cmd.kind == "status":
        try:
            inv = investigate.status(runtime=ctx.runtime, investigation_id=cmd.investigation_id or "")
        except CommandError as exc:
            ack(text=f":warning: {exc}")
            return
        verdict = f", verdict {inv['verdict']} ({inv['confidence']}%)" if inv.get("verdict") else ""
        ack(text=f"`{inv['id']}`: *{inv['status']}*, phase {inv['phase']}{verdict}")
    elif cmd.kind == "cancel":
        try:
            investigate.cancel(runtime=ctx.runtime, investigation_id=cmd.investigation_id or "",
                               user=body.get("user_id"), admins=ctx.admins())
        except CommandError as exc:
            ack(text=f":no_entry: {exc}")
            return
        ack(text=f"Cancelling `{cmd.investigation_id}`; it stops at the next phase boundary.")
    else:
        ack(text=f":hourglass_flowing_sand: Starting an investigation of {trigger_label(cmd.trigger or {})}…")
        ctx.handoff.defer(context, start, ctx, body, slash_request(cmd, body, sources=ctx.sources),
                          context.get("delivery_key"), client)


def start(ctx: Any, body: dict[str, Any], request: Any, key: str | None, client: Any) -> None:
    """Start (or attach to) the investigation and tell the requester which one it is."""
    result = investigate.start(runtime=ctx.runtime, request=request)
    if key:
        with ctx.runtime.session() as session:
            link(session=session, key=key, investigation_id=result.investigation_id)
    if not result.created:
        user = request.requested_by
        client.chat_postEphemeral(channel=request.origin.channel, user=user,
                                  text=f"This is already being investigated in `{result.investigation_id}`; "
                                       "I added you to it.")
