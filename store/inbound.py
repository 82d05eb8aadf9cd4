"""Stored webhook deliveries that keep failing: count the failures, dead-letter, list, retry.

A delivery is validated before it is stored (commands/webhook_schemas.py), so what still fails
processing is the database or a bug: it is retried (the listener's backoff, a sender's redelivery,
a restart), and after ``max_attempts`` failures it is parked as ``dead`` instead of being retried at
every start forever. ``pm deliveries list|retry`` shows and releases them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.models import InboundDelivery

DEAD = "dead"


def record_failure(*, session: Session, delivery_id: int, error: str, max_attempts: int) -> tuple[str, int, str]:
    """Count one failed processing attempt of a still-``accepted`` row (the caller commits).

    Args:
        session: the session whose transaction records it.
        delivery_id: the InboundDelivery row.
        error: one line saying what failed (kept, cut to 500 characters).
        max_attempts: at this many failures the row becomes ``dead``.

    Returns:
        ``(status, attempts, source)`` afterwards; ``("missing", 0, "")`` when there is no such row.
    """
    row = session.get(InboundDelivery, delivery_id)
    if row is None:
        return "missing", 0, ""
    if row.status != "accepted":  # processed meanwhile (another process), or already parked
        return row.status, row.attempts, row.source
    row.attempts = (row.attempts or 0) + 1
    row.last_error = error[:500]
    if row.attempts >= max_attempts:
        row.status = DEAD
    return row.status, row.attempts, row.source


def dead_letters(*, session: Session, source: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Dead-lettered (and ``failed``) deliveries, oldest first, as dicts."""
    stmt = (select(InboundDelivery).where(InboundDelivery.status.in_((DEAD, "failed")))
            .order_by(InboundDelivery.id).limit(limit))
    if source is not None:
        stmt = stmt.where(InboundDelivery.source == source)
    return [{"delivery_id": r.id, "source": r.source, "delivery_key": r.delivery_key, "status": r.status,
             "attempts": r.attempts, "error": r.last_error,
             "received_at": r.received_at.isoformat().replace("+00:00", "Z") if r.received_at else None}
            for r in session.execute(stmt).scalars()]


def retry_dead(*, session: Session, source: str | None = None, delivery_ids: list[int] | None = None) -> list[int]:
    """Put dead-lettered deliveries back to ``accepted`` with a fresh failure budget (the caller commits).

    ``failed`` rows (an older listener stored a body that no longer validates) are not put back:
    they would fail the same way. Returns the ids put back.
    """
    stmt = select(InboundDelivery.id).where(InboundDelivery.status == DEAD)
    if source is not None:
        stmt = stmt.where(InboundDelivery.source == source)
    if delivery_ids is not None:
        stmt = stmt.where(InboundDelivery.id.in_(delivery_ids))
    ids = list(session.execute(stmt).scalars())
    if ids:
        session.execute(update(InboundDelivery).where(InboundDelivery.id.in_(ids))
                        .values(status="accepted", attempts=0, last_error=None)
                        .execution_options(synchronize_session=False))
    return ids
