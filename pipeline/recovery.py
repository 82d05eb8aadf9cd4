"""Rebuilding a lost queue from the database."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from store.models import OPEN_STATUSES, Investigation, utcnow

log = logging.getLogger(__name__)


def requeue_stale(runtime: Any, *, stale_after_s: float = 600.0, now: datetime | None = None) -> list[str]:
    """Re-enqueue QUEUED/RUNNING investigations that made no progress for ``stale_after_s``.

    An investigation whose lease is still live is being worked on and is left alone. A
    duplicate message is harmless: the machine's lease lets one run, and checkpoints make the
    other a no-op.

    Returns:
        The ids re-enqueued.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stale_after_s)
    with runtime.session() as s:
        rows = s.execute(
            select(Investigation.id, Investigation.priority).where(
                Investigation.status.in_(OPEN_STATUSES),
                Investigation.updated_at <= cutoff,
                or_(Investigation.lease_until.is_(None), Investigation.lease_until < now),
            ).order_by(Investigation.created_at)
        ).all()
    for inv_id, priority in rows:
        runtime.enqueue(inv_id, priority=priority)
    if rows:
        log.info("re-enqueued %d stale investigation(s)", len(rows))
    return [r[0] for r in rows]
