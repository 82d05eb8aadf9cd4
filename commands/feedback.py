"""What people say of a finished investigation (👍 / 👎 / a comment), for the knowledge base.

Front doors (the Slack report's reactions, a ``note: …`` reply in its thread, a Jira resolution) turn what they receive into one call of
:func:`record` (a reaction taken off: :func:`withdraw`); the database keeps it (the source of truth)
and the knowledge base's entry is updated when it can be (a re-index catches up otherwise).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from store import outbox
from store.errors import StoreError
from store.knowledge import (
    Memory,
    add_feedback,
    add_resolution,
    feedback_rows,
    finished_for_ticket,
    remove_feedback,
)
from store.knowledge import tally as summed

_INDEX_LOCK = threading.Lock()

VOTES = {"+1": 1, "thumbsup": 1, "-1": -1, "thumbsdown": -1}

#: A thread reply that is a comment on the investigation, not a question: "note: it was the pool size".
_COMMENT = re.compile(r"^\s*(?:note|feedback|comment)\s*[:\-\u2013\u2014]\s*(?P<text>\S.*)$", re.IGNORECASE | re.DOTALL)
#: Longest comment kept (the knowledge base shows the last few, shortened further).
MAX_COMMENT = 2000
#: What the thread is told when a comment is kept.
COMMENT_NOTED = ("Noted: your comment is kept with this investigation and shown with it when a similar "
                 "incident comes up (\u201cSeen before\u201d).")


@dataclass(frozen=True)
class TicketResolution:
    """A Jira ticket resolved (``name``: "Fixed", "Won't Do", ...) or reopened (``name`` None).

    ``comment``: what was written with the transition; ``fix_versions``: the ticket's fix versions;
    ``user``: who resolved it (display name, else account id).
    """

    ticket: str
    name: str | None
    status: str | None = None
    comment: str | None = None
    fix_versions: tuple[str, ...] = ()
    user: str | None = None


def vote_of(reaction: str | None) -> int | None:
    """1 for a 👍 reaction, -1 for a 👎 (any skin tone), None for anything else."""
    return VOTES.get(str(reaction or "").split("::", 1)[0])


def on_slack_reaction(*, runtime: Any, channel: str, ts: str, reaction: str, user: str | None) -> dict[str, Any] | None:
    """A 👍 / 👎 reaction on an investigation's Slack report message, recorded as feedback.

    Returns:
        :func:`record`'s answer plus ``investigation_id``; None when the reaction is no vote or the
        message is not one of our reports (nothing is recorded).
    """
    return _on_report_vote(record, runtime=runtime, channel=channel, ts=ts, reaction=reaction, user=user)


def on_slack_reaction_removed(*, runtime: Any, channel: str, ts: str, reaction: str,
                              user: str | None) -> dict[str, Any] | None:
    """A 👍 / 👎 reaction taken off an investigation's Slack report message: that user's vote is taken back.

    Returns:
        :func:`withdraw`'s answer plus ``investigation_id``; None when the reaction is no vote or the
        message is not one of our reports.
    """
    return _on_report_vote(withdraw, runtime=runtime, channel=channel, ts=ts, reaction=reaction, user=user)


def _on_report_vote(apply: Any, *, runtime: Any, channel: str, ts: str, reaction: str,
                    user: str | None) -> dict[str, Any] | None:
    """``apply`` (record or withdraw) for a vote reaction on one of our Slack report messages; None otherwise."""
    vote = vote_of(reaction)
    if vote is None:
        return None
    with runtime.session() as s:
        inv_id = outbox.investigation_for_message(session=s, sink="slack", channel=channel, ts=ts)
    if inv_id is None:
        return None
    out = apply(runtime=runtime, memory=getattr(runtime, "memory", None), investigation_id=inv_id, vote=vote,
                user=user, source="slack")
    return {**out, "investigation_id": inv_id}


def comment_of(text: str | None) -> str | None:
    """The comment in a thread reply written as ``note: …`` (or ``feedback:`` / ``comment:``), else None
    (the reply is a follow-up question)."""
    found = _COMMENT.match(text or "")
    return found.group("text").strip()[:MAX_COMMENT] if found else None


def on_thread_comment(*, runtime: Any, investigation_id: str, comment: str, user: str | None,
                      message_ts: str | None) -> dict[str, Any]:
    """Keep a comment written in an investigation's Slack thread as feedback (no vote), and say so in the
    thread (through the outbox, like a follow-up answer).

    Returns:
        :func:`record`'s answer.
    """
    out = record(runtime=runtime, memory=getattr(runtime, "memory", None), investigation_id=investigation_id,
                 vote=0, user=user, comment=comment, source="slack")
    with runtime.session() as s:
        outbox.append(session=s, investigation_id=investigation_id, kind="milestone",
                      payload={"text": COMMENT_NOTED, "followup": True, "user": user, "question_ts": message_ts,
                               "comment": True})
        s.commit()
    return out


def on_ticket_resolution(*, runtime: Any, resolution: TicketResolution) -> dict[str, Any] | None:
    """Record a Jira ticket's resolution on the latest finished investigation started by it or published to it.

    Returns:
        ``{"feedback": tally, "recorded": bool, "indexed": bool, "note": str | None, "investigation_id"}``
        (``recorded`` False: the same resolution was recorded before); None when no finished
        investigation belongs to the ticket (nothing is recorded).
    """
    with runtime.session() as s:
        inv_id = finished_for_ticket(session=s, ticket=resolution.ticket)
        if inv_id is None:
            return None
        tally, added = add_resolution(session=s, investigation_id=inv_id, ticket=resolution.ticket,
                                      name=resolution.name, status=resolution.status, comment=resolution.comment,
                                      fix_versions=resolution.fix_versions, user=resolution.user)
    out = _reindex(getattr(runtime, "memory", None), runtime, inv_id, tally) if added else {
        "feedback": tally, "indexed": False, "note": None}
    return {**out, "recorded": added, "investigation_id": inv_id}


def withdraw(*, runtime: Any, memory: Memory | None, investigation_id: str, vote: int, user: str | None,
             source: str = "slack") -> dict[str, Any]:
    """Take back ``user``'s latest ``vote`` on an investigation and update the knowledge base entry.

    Raises:
        ValueError: a vote other than -1 or 1.

    Returns:
        ``{"feedback": tally, "removed": bool, "indexed": bool, "note": str | None}``; ``removed`` is False
        when that user had no such vote (nothing changed, nothing re-indexed).
    """
    with runtime.session() as s:
        tally = remove_feedback(session=s, investigation_id=investigation_id, vote=vote, user=user, source=source)
        if tally is None:
            return {"feedback": summed(feedback_rows(session=s, investigation_id=investigation_id)),
                    "removed": False, "indexed": False, "note": None}
    return {**_reindex(memory, runtime, investigation_id, tally), "removed": True}


def record(*, runtime: Any, memory: Memory | None, investigation_id: str, vote: int, user: str | None = None,
           comment: str | None = None, source: str = "slack") -> dict[str, Any]:
    """Store one piece of feedback and update the knowledge base entry.

    Args:
        runtime: the pipeline runtime (for a database session).
        memory: the knowledge base (``store.knowledge.memory_from_settings``), or None to skip it.
        vote: 1 (👍), -1 (👎; the root cause becomes disputed when it is the latest vote) or 0 (comment only).

    Raises:
        ValueError: a vote other than -1, 0, 1.
        store.errors.NotFound: no such investigation.

    Returns:
        ``{"feedback": tally, "indexed": bool, "note": str | None}``; ``indexed`` is False when the
        knowledge base could not be updated now (``note`` says why) or holds no entry for it yet.
    """
    with runtime.session() as s:
        tally = add_feedback(session=s, investigation_id=investigation_id, vote=vote, user=user,
                             comment=comment, source=source)
    return _reindex(memory, runtime, investigation_id, tally)


def _reindex(memory: Memory | None, runtime: Any, investigation_id: str, tally: dict[str, Any]) -> dict[str, Any]:
    """Copy the database's tally of ``investigation_id`` into its knowledge base entry (never raises)."""
    if memory is None:
        return {"feedback": tally, "indexed": False, "note": None}
    try:
        # Votes arrive concurrently (the Slack hand-off pool): each writer re-reads the tally under one lock,
        # so the entry ends with the newest one, never with a slower writer's older count. (Across processes
        # the last writer still wins; a re-index rebuilds every tally from the database.)
        with _INDEX_LOCK:
            with runtime.session() as s:
                tally = summed(feedback_rows(session=s, investigation_id=investigation_id))
            indexed = memory.kb().set_feedback(investigation_id, tally)
    except StoreError as exc:
        memory.reset()
        return {"feedback": tally, "indexed": False, "note": str(exc)}
    return {"feedback": tally, "indexed": indexed, "note": None}
