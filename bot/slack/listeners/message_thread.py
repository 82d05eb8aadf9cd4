"""A question in an investigation's thread: answer it there, from the investigation's evidence."""

from __future__ import annotations

import re
from typing import Any

from bot.slack.context import pm
from bot.slack.inbound import claim, link
from commands import feedback, followup
from commands.errors import CommandError

_QUESTION = re.compile(r"\?\s*$|^\s*(what|why|which|how|when|who|where|show|list|explain|tell|is|did|does|any)\b",
                       re.IGNORECASE)
_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")


HANDLES = ("event", "message")


def register(app: Any) -> None:
    """Attach the listener to the Bolt app."""
    app.event("message")(handle)


def handle(ack: Any, event: dict[str, Any], context: Any) -> None:
    """Ack, then hand the rest to the work pool (the ack never waits for it)."""
    ack()
    pm(context).handoff.defer(context, _work, event, context)


def _work(event: dict[str, Any], context: Any) -> None:
    """Thread replies by people that read as questions or are ``note: …`` comments; everything else is ignored."""
    if not event.get("thread_ts") or event.get("bot_id") or event.get("subtype"):
        return
    if event.get("thread_ts") == event.get("ts"):
        return
    text = event.get("text") or ""
    bare = _MENTION.sub("", text)
    if not _QUESTION.search(bare) and not _MENTION.search(text) and feedback.comment_of(bare.strip()) is None:
        return
    answer_in_thread(pm(context), event)


def answer_in_thread(ctx: Any, event: dict[str, Any]) -> str | None:
    """Answer ``event`` if its thread belongs to an investigation (once per message).

    The same message reaches us as a ``message`` and, when it mentions the bot, as an
    ``app_mention``: the ``followup:<channel>:<ts>`` claim makes it one answer.

    Returns:
        The investigation id answered for, or None when the thread is not one of ours.
    """
    channel, thread_ts = event.get("channel"), event.get("thread_ts")
    if not channel or not thread_ts:
        return None
    with ctx.runtime.session() as session:
        inv_id = followup.find_thread_investigation(session=session, channel=channel, thread_ts=thread_ts)
        if inv_id is None:
            return None
        key = f"followup:{channel}:{event.get('ts')}"
        if not claim(session=session, key=key, payload=event):
            return inv_id
    question = _MENTION.sub("", event.get("text") or "").strip()
    comment = feedback.comment_of(question)
    if comment is not None:  # "note: …": a comment for the knowledge base, not a question
        feedback.on_thread_comment(runtime=ctx.runtime, investigation_id=inv_id, comment=comment,
                                   user=event.get("user"), message_ts=event.get("ts"))
        with ctx.runtime.session() as session:
            link(session=session, key=key, investigation_id=inv_id, status="feedback")
        return inv_id
    try:
        followup.ask(runtime=ctx.runtime, investigation_id=inv_id, question=question, user=event.get("user"),
                     message_ts=event.get("ts"), answerer=ctx.followup_answerer)
    except CommandError:
        return None
    with ctx.runtime.session() as session:
        link(session=session, key=key, investigation_id=inv_id)
    return inv_id
