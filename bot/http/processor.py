"""The listener's one database thread: stores deliveries by group commit, processes them in between.

Why one thread. Every request used to run its own INSERT + COMMIT on Starlette's thread pool,
queued behind a lock shared with the processor, which itself spent ~6 ms and three commits per
delivery; under a storm the answers waited for each other's commits and for the processor (p99
165 ms). Here the request handler hands its delivery to this thread and awaits a future; the thread
takes everything that arrived meanwhile, inserts it with one multi-row statement, commits once and
then releases every waiting request (group commit, as databases do for their own logs: Gray &
Reuter, "Transaction Processing", 9.4.7). A delivery is still committed before its 2xx.

Between two intake batches the thread processes a chunk of stored deliveries in one transaction,
paced by :class:`bot.http.pacing.Pacer`: while requests pour in, processing takes a bounded share of
the time in short chunks (a request waits for at most one), and drains the backlog once intake is
quiet. Processing on this single thread also keeps the check-then-create of an
investigation serial within the process (the database's partial unique index covers other
processes), and leaves SQLite one writer per process, so no request sleeps in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from bot.http.pacing import Pacer
from commands.webhooks import (
    MAX_ATTEMPTS,
    SOURCES,
    Accepted,
    WebhookRules,
    accept_many,
    process,
    process_many,
    record_failure,
)
from store.models import InboundDelivery

log = logging.getLogger(__name__)


class ListenerStopped(RuntimeError):
    """The processor is not running, so a delivery cannot be stored now (answer 503, sender retries)."""


class _Store:
    """Queue item: one delivery to store, and the future its request awaits."""

    __slots__ = ("source", "key", "payload", "future")

    def __init__(self, source: str, key: str, payload: Mapping[str, Any]) -> None:
        self.source, self.key, self.payload = source, key, payload
        self.future: concurrent.futures.Future[Accepted] = concurrent.futures.Future()


_RESUME = "resume"  # queue item: sweep rows an earlier process accepted but never processed
_STOP = "stop"


class DeliveryProcessor:
    """Stores deliveries (group commit) and processes them, on one daemon thread.

    Args:
        runtime: the pipeline runtime (``session()``, ``enqueue``).
        rules: filters and routing.
        deploy_scheduler: queues post-deploy checks.
        max_batch: most deliveries stored by one commit.
        pacer: when processing may run while deliveries arrive (default :class:`Pacer`).
        separate_processing: process on a second thread. For a server database (PostgreSQL), where
            processing mostly waits for round trips: storing then goes on while a chunk waits. Not
            for SQLite, which has one writer at a time anyway.
        max_attempts: a delivery whose processing failed this often is dead-lettered (PM_WEBHOOK_MAX_ATTEMPTS).
        retry_s: the first retry of a failed delivery comes after this; each next one 4x later (max 1 h).
    """

    def __init__(
        self, runtime: Any, rules: WebhookRules, deploy_scheduler: Any, *, max_batch: int = 256,
        pacer: Pacer | None = None, separate_processing: bool = False, max_attempts: int = MAX_ATTEMPTS,
        retry_s: float = 5.0,
    ) -> None:
        self.runtime, self.rules, self.deploy_scheduler = runtime, rules, deploy_scheduler
        self.max_batch, self.pacer = max_batch, pacer or Pacer()
        self._queue: queue.Queue[_Store | str] = queue.Queue()
        self._pending: dict[int, None] = {}  # ids to process, in arrival order (a dict: no repeats)
        self._pending_lock = threading.Lock()
        self.max_attempts, self.retry_s = max_attempts, retry_s
        self._retry_at: dict[int, float] = {}  # failed ids -> monotonic time of their next try
        self._failures: dict[int, int] = {}  # failed ids -> failures seen by this process
        self._per_delivery_s = 0.002  # running estimate of one delivery's processing time
        self._idle = threading.Condition()
        self._stopping = False
        self._intake_done = False
        self._work = threading.Event()  # set when the processing thread has something new to look at
        self._thread = threading.Thread(target=self._loop, name="pm-webhook-db", daemon=True)
        self._processing_thread = (
            threading.Thread(target=self._processing_loop, name="pm-webhook-process", daemon=True)
            if separate_processing else None
        )

    # -- called from other threads ---------------------------------------------------------------

    def start(self) -> DeliveryProcessor:
        """Finish what an earlier process left (rows still ``accepted``), then serve new deliveries."""
        self._queue.put(_RESUME)
        self._thread.start()
        if self._processing_thread is not None:
            self._processing_thread.start()
        return self

    async def store(self, source: str, key: str, payload: Mapping[str, Any]) -> Accepted:
        """Persist one delivery; returns once the transaction holding it has committed.

        Raises:
            ListenerStopped: the processor is not running.
            sqlalchemy.exc.SQLAlchemyError: the batch could not be committed (nothing was stored).
        """
        if self._stopping or not self._thread.is_alive():
            raise ListenerStopped("the listener is shutting down; retry the delivery")
        item = _Store(source, key, payload)
        self._queue.put(item)
        return await asyncio.wrap_future(item.future)

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Block until everything stored or queued so far has been processed (tests and the bench).

        Raises:
            TimeoutError: still busy after ``timeout_s``.
        """
        with self._idle:
            if not self._idle.wait_for(self._is_idle, timeout=timeout_s):
                raise TimeoutError(f"webhook processor still busy after {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Store and process what is queued, then end the thread."""
        if self._thread.is_alive():
            self._stopping = True
            self._queue.put(_STOP)
            self._thread.join(timeout=timeout_s)
        if self._processing_thread is not None and self._processing_thread.is_alive():
            self._processing_thread.join(timeout=timeout_s)

    # -- the thread ------------------------------------------------------------------------------

    def _is_idle(self) -> bool:
        return self._queue.unfinished_tasks == 0 and not self._pending

    def _loop(self) -> None:
        separate = self._processing_thread is not None
        stop = False
        wait_s: float | None = None  # None: nothing to process, block until something arrives
        while not (stop and self._queue.empty() and (separate or not self._pending)):
            items = self._take(timeout_s=wait_s)
            stores = [i for i in items if isinstance(i, _Store)]
            if stores:
                self._store_batch(stores)
                self.pacer.intake(time.monotonic())
            if _RESUME in items:
                self._resume()
            stop = stop or _STOP in items
            wait_s = None
            if separate:
                self._work.set()
            else:
                self._promote_due_retries()
                if self._pending:
                    wait_s = self._process_paced(draining=stop)
                if wait_s is None and not stop:
                    wait_s = self._next_retry_in()
            for _ in items:
                self._queue.task_done()
            self._notify_idle()
        self._intake_done = True
        self._work.set()

    def _processing_loop(self) -> None:
        """The second thread (``separate_processing``): process what the intake thread stored."""
        wait_s: float | None = None
        while True:
            self._work.wait(timeout=wait_s)
            self._work.clear()
            done = self._intake_done  # read before looking at pending: nothing is added after it is set
            self._promote_due_retries()
            wait_s = self._process_paced(draining=done) if self._pending else None
            if wait_s is None and not done:
                wait_s = self._next_retry_in()
            self._notify_idle()
            if done and not self._pending:
                return

    def _process_paced(self, *, draining: bool) -> float | None:
        """Process one chunk if the pacer allows; returns how long to wait before the next (None: idle)."""
        budget_s, wait_s = self.pacer.next_chunk(time.monotonic())
        if draining:  # shutting down: no request will come, drain at full speed
            budget_s = self.pacer.idle_chunk_s
        if not budget_s:
            return wait_s
        self._process_chunk(budget_s)
        return 0.0 if self._pending else None

    def _promote_due_retries(self) -> None:
        """Move failed deliveries whose retry is due back to pending."""
        if not self._retry_at:
            return
        now = time.monotonic()
        due = [i for i, at in self._retry_at.items() if at <= now]
        with self._pending_lock:
            for delivery_id in due:
                del self._retry_at[delivery_id]
                self._pending[delivery_id] = None

    def _next_retry_in(self) -> float | None:
        """Seconds until the next failed delivery is due again (None: no retry waiting)."""
        if not self._retry_at:
            return None
        return max(0.001, min(self._retry_at.values()) - time.monotonic())

    def _failed(self, delivery_id: int, exc: BaseException) -> None:
        """Count the failure in the row; retry later with backoff unless it is now dead-lettered."""
        seen = self._failures.get(delivery_id, 0) + 1
        self._failures[delivery_id] = seen
        try:
            status = record_failure(runtime=self.runtime, delivery_id=delivery_id, error=exc,
                                    max_attempts=self.max_attempts)
        except Exception:  # the database itself is away: retry without counting
            log.exception("recording the failure of webhook delivery %s failed", delivery_id)
            status = "accepted"
        if status == "accepted":
            self._retry_at[delivery_id] = time.monotonic() + min(3600.0, self.retry_s * 4 ** (seen - 1))
        else:
            self._failures.pop(delivery_id, None)

    def _notify_idle(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def _take(self, *, timeout_s: float | None) -> list[_Store | str]:
        """Everything queued right now (up to ``max_batch``), waiting up to ``timeout_s`` for the first
        item (None: as long as it takes; 0: not at all)."""
        items: list[_Store | str] = []
        try:
            items.append(self._queue.get(block=timeout_s != 0, timeout=timeout_s or None))
            while len(items) < self.max_batch:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return items

    def _store_batch(self, stores: list[_Store]) -> None:
        try:
            with self.runtime.session() as session:
                accepted = accept_many(session=session, deliveries=[(s.source, s.key, s.payload) for s in stores])
                session.commit()
        except Exception as exc:  # nothing of the batch is stored: every request answers an error
            log.exception("storing %d webhook deliveries failed", len(stores))
            for s in stores:
                s.future.set_exception(exc)
            return
        with self._pending_lock:
            for result in accepted:
                if result.status == "accepted":  # new, or a replay of one never finished
                    self._pending[result.delivery_id] = None
        for s, result in zip(stores, accepted, strict=True):
            s.future.set_result(result)

    def _resume(self) -> None:
        try:
            with self.runtime.session() as session:
                ids = session.execute(
                    select(InboundDelivery.id)
                    .where(InboundDelivery.status == "accepted", InboundDelivery.source.in_(SOURCES))
                    .order_by(InboundDelivery.id)
                ).scalars()
                with self._pending_lock:
                    self._pending.update(dict.fromkeys(ids))
            if self._pending:
                log.info("resuming %d webhook deliveries left unprocessed", len(self._pending))
        except Exception:  # the database may be briefly away; new deliveries still get processed
            log.exception("looking for unprocessed webhook deliveries failed")

    def _process_chunk(self, budget_s: float) -> None:
        size = max(1, min(64, int(budget_s / self._per_delivery_s)))
        with self._pending_lock:
            ids = list(itertools.islice(self._pending, size))
        t0 = time.monotonic()
        try:
            process_many(runtime=self.runtime, delivery_ids=ids, rules=self.rules,
                         deploy_scheduler=self.deploy_scheduler)
        except Exception:
            log.exception("processing %d webhook deliveries together failed; trying one by one", len(ids))
            self._process_one_by_one(ids)
        else:
            # Exponential moving average: chunk sizes follow the cost without jumping on one outlier.
            per = (time.monotonic() - t0) / len(ids)
            self._per_delivery_s = 0.8 * self._per_delivery_s + 0.2 * per
        with self._pending_lock:
            for delivery_id in ids:
                self._pending.pop(delivery_id, None)
        self.pacer.ran(time.monotonic(), time.monotonic() - t0)

    def _process_one_by_one(self, ids: list[int]) -> None:
        for delivery_id in ids:
            try:
                process(runtime=self.runtime, delivery_id=delivery_id, rules=self.rules,
                        deploy_scheduler=self.deploy_scheduler)
            except Exception as exc:
                # Counted in the row; retried here with backoff (and by a redelivery or the next
                # start) until it is dead-lettered after max_attempts.
                log.exception("processing webhook delivery %s failed", delivery_id)
                self._failed(delivery_id, exc)
            else:
                self._failures.pop(delivery_id, None)
