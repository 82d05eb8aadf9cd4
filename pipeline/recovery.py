"""Rebuilding a lost queue from the database: the reconciler.

The database is the source of truth and the queue a cache of it. Every process that runs a
worker also runs a :class:`Reconciler`: every ``interval_s`` (with jitter) it looks for
investigations that are open (QUEUED/RUNNING), have no live lease and made no progress for
``stale_after_s``, and re-enqueues each of them once. A duplicate message is harmless: the
machine's lease lets one run and the checkpoints make the other a no-op. So a message lost by
the broker (Redis flushed, a worker killed after it took the message, an in-process queue that
died with its process) costs at most the lease plus one period, not an investigation.

"Once": a compare-and-set on ``requeue_count`` lets one reconciler of one process win; the same
investigation is re-enqueued again only if it still made no progress ``stale_after_s · 2^n``
later (n = re-enqueues since a worker last took it, capped), so a long legitimate backlog is
not doubled every period. docs/reliability.md states the guarantee.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from pipeline import metrics
from store.models import OPEN_STATUSES, Investigation, utcnow

log = logging.getLogger(__name__)
#: The growing wait between re-enqueues of one investigation stops growing at stale · 2^this.
MAX_DOUBLINGS = 6


def requeue_stale(runtime: Any, *, stale_after_s: float = 60.0, now: datetime | None = None,
                  jitter_ms: int = 0, force: bool = False) -> list[str]:
    """Re-enqueue open investigations without a live lease that made no progress for ``stale_after_s``.

    An investigation whose lease is still live is being worked on and is left alone. One that
    was re-enqueued before is re-enqueued again only after ``stale_after_s · 2^n`` (see module).

    Args:
        stale_after_s: how long without progress (``updated_at``) counts as lost; 0 takes every
            open investigation without a live lease (an in-process queue that just started empty).
        jitter_ms: each message is delayed by a random 0..jitter_ms, so many re-enqueued at once
            do not reach the workers in one burst.
        force: ignore earlier re-enqueues (a fresh in-process queue holds none of them).

    Returns:
        The ids re-enqueued.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stale_after_s)
    with runtime.session() as s:
        rows = s.execute(
            select(Investigation.id, Investigation.priority, Investigation.requeued_at,
                   Investigation.requeue_count).where(
                Investigation.status.in_(OPEN_STATUSES),
                Investigation.updated_at <= cutoff,
                or_(Investigation.lease_until.is_(None), Investigation.lease_until < now),
            ).order_by(Investigation.created_at)
        ).all()
    requeued: list[str] = []
    for inv_id, priority, requeued_at, count in rows:
        count = count or 0
        wait = timedelta(seconds=stale_after_s * 2 ** min(count, MAX_DOUBLINGS))
        if not force and requeued_at is not None and count and requeued_at > now - wait:
            continue
        with runtime.session() as s:
            won = s.execute(
                update(Investigation)
                .where(Investigation.id == inv_id, Investigation.requeue_count == count,
                       Investigation.status.in_(OPEN_STATUSES),
                       or_(Investigation.lease_until.is_(None), Investigation.lease_until < now))
                # updated_at is kept: a re-enqueue is not progress
                .values(requeued_at=now, requeue_count=count + 1, updated_at=Investigation.updated_at)
                .execution_options(synchronize_session=False)
            ).rowcount == 1  # type: ignore[attr-defined]
        if not won:
            continue  # another process's reconciler, or a worker, got there first
        runtime.enqueue(inv_id, priority=priority, delay_ms=random.randint(0, jitter_ms) if jitter_ms else None)
        metrics.REQUEUED.inc()
        requeued.append(inv_id)
    if requeued:
        log.warning("re-enqueued %d investigation(s) the queue had lost: %s", len(requeued),
                    ", ".join(requeued[:10]) + (" …" if len(requeued) > 10 else ""))
    return requeued


class Reconciler:
    """A daemon thread running :func:`requeue_stale` every ``interval_s`` (±20 % jitter).

    Args:
        runtime: the pipeline runtime (``session()``, ``enqueue()``).
        interval_s: the period (PM_RECONCILE_INTERVAL_S).
        stale_after_s: no progress for this long counts as lost (the lease by default).
    """

    def __init__(self, runtime: Any, *, interval_s: float, stale_after_s: float) -> None:
        self.runtime, self.interval_s, self.stale_after_s = runtime, interval_s, stale_after_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pm-reconciler", daemon=True)

    def start(self) -> Reconciler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        # the first round comes after a random part of a period, so processes started together
        # do not all scan at the same moment
        wait = random.uniform(0.2, 1.0) * self.interval_s
        while not self._stop.wait(wait):
            try:
                requeue_stale(self.runtime, stale_after_s=self.stale_after_s,
                              jitter_ms=int(min(self.interval_s / 4, 5.0) * 1000))
            except Exception:  # noqa: BLE001 - a database blip: the next period tries again
                log.warning("reconciling the queue with the database failed", exc_info=True)
            wait = self.interval_s * random.uniform(0.8, 1.2)
