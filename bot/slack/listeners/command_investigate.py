"""``/investigate``: ack within 3 s, then start / open the form / answer status, cancel, help."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.slack import modal
from bot.slack.context import authoriser, pm
from bot.slack.normalise import USAGE, parse_slash, slash_request
from commands import investigate
from commands.errors import CommandError
from publishers.escape import mrkdwn
from publishers.slack import trigger_label

HANDLES = ("command", "/investigate")


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.command("/investigate")(handle)


def quick_ack(body: dict[str, Any], ctx: Any) -> tuple[dict[str, Any], Callable[[str | None, bool], None] | None] | None:
    """The ack of a command whose answer needs neither the database nor Slack: usage, help, start.

    The socket front (:mod:`bot.slack.front`) acks these without running the Bolt app, so a burst
    of ``/investigate`` is acked at the speed of the journal; :func:`handle` uses the same answers.

    Returns:
        ``(ack payload, then)`` where ``then(delivery_key, replay)`` queues the work to do after the
        ack (None: nothing), or None when the command needs :func:`handle` (modal, status, cancel).
    """
    usage = USAGE.format(reaction=ctx.slack.reaction)
    try:
        cmd = parse_slash(body.get("text", ""), ctx.slack.default_mode)
    except CommandError as exc:
        return {"text": f":warning: {mrkdwn(str(exc))}\n{usage}"}, None
    if cmd.kind == "help":
        return {"text": usage}, None
    if cmd.kind != "start":
        return None
    request = slash_request(cmd, body, sources=ctx.sources)

    def then(key: str | None, replay: bool) -> None:
        ctx.starts.submit(request, key, replay=replay)

    return {"text": f":hourglass_flowing_sand: Starting an investigation of {trigger_label(cmd.trigger or {})}…"}, then


def handle(ack: Any, body: dict[str, Any], client: Any, context: Any) -> None:
    """Dispatch one slash command; every reply is ephemeral (the ack's response)."""
    ctx = pm(context)
    quick = quick_ack(body, ctx)
    if quick is not None:
        payload, then = quick
        ack(**payload)
        if then is not None:
            context["handed_off"] = True  # the start batcher links (and so finishes) the delivery
            then(context.get("delivery_key"), bool(context.get("replay")))
        return
    cmd = parse_slash(body.get("text", ""), ctx.slack.default_mode)
    if cmd.kind == "modal":
        ack()
        # The trigger_id dies 3 s after the command: the ui lane never waits behind a burst of starts.
        ctx.handoff.defer(context, client.views_open, ui=True, trigger_id=body["trigger_id"],
                          view=modal.view(body.get("channel_id"), ctx.slack.default_mode))
    elif cmd.kind == "status":
        try:
            inv = investigate.status(runtime=ctx.runtime, investigation_id=cmd.investigation_id or "")
        except CommandError as exc:
            ack(text=f":warning: {mrkdwn(str(exc))}")
            return
        verdict = f", verdict {inv['verdict']} ({inv['confidence']}%)" if inv.get("verdict") else ""
        ack(text=f"`{inv['id']}`: *{inv['status']}*, phase {inv['phase']}{verdict}")
    elif cmd.kind == "cancel":
        try:
            user = body.get("user_id") or ""
            investigate.cancel(runtime=ctx.runtime, investigation_id=cmd.investigation_id or "", user=user,
                               authorise=authoriser(ctx, user, body.get("channel_id")))
        except CommandError as exc:
            ack(text=f":no_entry: {mrkdwn(str(exc))}")
            return
        ack(text=f"Cancelling `{cmd.investigation_id}`; it stops at the next phase boundary.")
