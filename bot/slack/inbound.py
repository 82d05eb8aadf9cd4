"""Persist each inbound Slack delivery before it is acked, and drop repeats.

Slack re-sends an envelope it believes was not acked, and retries Events API
deliveries. The key of a delivery is what stays the same across those resends:
the ``event_id`` of an Events API callback, the ``trigger_id`` of a slash command
or an interaction. A unique ``(source, delivery_key)`` row in ``inbound_deliveries``
makes the second arrival a no-op.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.exc import IntegrityError

from commands.feedback import vote_of
from store.models import InboundDelivery

SOURCE = "slack"


def delivery_key(body: dict[str, Any], reaction: str) -> str | None:
    """The dedup key of a Bolt request body, or None when we will ignore it anyway.

    Args:
        body: the envelope payload (slash command, event callback or interaction).
        reaction: the emoji that starts an investigation (other reactions are ignored).
    """
    if body.get("command"):
        return f"cmd:{body.get('trigger_id')}"
    if body.get("type") == "event_callback":
        event = body.get("event") or {}
        kind = event.get("type")
        if kind == "reaction_added" and event.get("reaction") != reaction and vote_of(event.get("reaction")) is None:
            return None
        if kind == "reaction_removed" and vote_of(event.get("reaction")) is None:  # only a vote is taken back
            return None
        if kind == "message" and (not event.get("thread_ts") or event.get("bot_id") or event.get("subtype")):
            return None
        return f"ev:{body.get('event_id')}"
    if body.get("type") in ("block_actions", "view_submission"):
        actions = body.get("actions") or [{}]
        return f"ia:{body.get('trigger_id')}:{actions[0].get('action_ts', '')}"
    return None


def claim(*, session: Any, key: str, payload: dict[str, Any]) -> bool:
    """Record a delivery; False when it was recorded before (a repeat).

    Args:
        session: a SQLAlchemy session (committed here on success, rolled back on a repeat).
        key: from :func:`delivery_key` (or a derived key such as ``followup:<channel>:<ts>``).
        payload: the raw body, kept for audit and replay.
    """
    session.add(InboundDelivery(source=SOURCE, delivery_key=key[:200], payload=payload))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def link(*, session: Any, key: str, investigation_id: str | None, status: str = "processed") -> None:
    """Mark a claimed delivery as handled by ``investigation_id``."""
    session.execute(
        update(InboundDelivery)
        .where(InboundDelivery.source == SOURCE, InboundDelivery.delivery_key == key[:200])
        .values(investigation_id=investigation_id, status=status)
    )
    session.commit()


def link_many(*, session: Any, links: list[tuple[str, str]], status: str = "processed") -> None:
    """:func:`link` for many deliveries in one executemany (a burst of starts); the caller commits.

    Args:
        links: ``(delivery key, investigation id)`` pairs.
    """
    if not links:
        return
    table = cast(Table, InboundDelivery.__table__)
    session.execute(
        update(table)
        .where(table.c.source == SOURCE, table.c.delivery_key == bindparam("k"))
        .values(investigation_id=bindparam("inv"), status=status),
        [{"k": key[:200], "inv": inv_id} for key, inv_id in links],
    )
