"""Draining the outbox to publishers (Slack, Jira, ...).

A publisher is anything with ``deliver(event, investigation, publication) -> external_ref``.
It may also have ``open_thread(event, investigation, publication) -> external_ref``: then, for a
batch of deliveries, every new thread is opened first (the Slack parent message), its ids saved,
and only then is each event delivered, so a burst of new investigations gets all its threads
before any thread gets its status message.
``publication`` is what the sink returned for earlier events of the same investigation and
target (merged), so the publisher edits its status message in place instead of posting twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol, Self

from sqlalchemy import select

from pipeline import metrics
from publishers.errors import Permanent, RetryLater
from store import investigations as invs
from store import outbox
from store.models import Delivery, utcnow

log = logging.getLogger(__name__)
#: The longest wait between two tries of a failing delivery.
MAX_BACKOFF_S = 3600.0
#: A delivery failing this long is dead-lettered (runtime.outbox_dead_after_s, PM_OUTBOX_DEAD_AFTER_S).
DEAD_AFTER_S = 6 * 3600.0


class Publisher(Protocol):
    """Delivers one progress event to one sink and returns the sink's ids for it."""

    def deliver(self, event: dict, investigation: dict, publication: dict | None) -> dict: ...


def target_for(sink: str, investigation: dict[str, Any], publisher: Any = None) -> str:
    """Where in ``sink`` an investigation is published: the publisher says, else its origin."""
    if publisher is not None and callable(getattr(publisher, "target", None)):
        return str(publisher.target(investigation))
    origin = investigation.get("origin") or {}
    if sink == "slack" and origin.get("channel"):
        return str(origin["channel"])
    if sink == "jira" and origin.get("jira_key"):
        return str(origin["jira_key"])
    return "default"


def drain(runtime: Any, sink: str, publisher: Any, limit: int = 50, pool: Executor | None = None) -> dict[str, int]:
    """Deliver the due events of ``sink`` once, oldest first.

    The deliveries are claimed (leased, stamped with this drainer's token) in one transaction,
    delivered outside any transaction while a thread renews the claim every third of its lease,
    and marked in one more transaction, only where the token still holds. So a slow sink never
    lets a second drainer take deliveries that are still being sent, and a crash between
    delivery and mark re-delivers at most once, with the publisher's look-up (``attempts`` > 1)
    making that re-delivery an edit, not a second post. A claim holds at most one event per
    investigation (``outbox.claim_pending`` keeps each thread in order and lets one drainer at a
    time work on an investigation), so the batch's investigations and publications are read in
    one go, and its deliveries are independent of each other: with a ``pool`` they go to the sink
    concurrently.

    Args:
        limit: the most deliveries to claim.
        pool: an executor for the sink calls (None: one after another on this thread).

    Returns:
        Counts: ``{"done": n, "retry": n, "failed": n (dead-lettered), "wait_ms": longest wait asked for}``.
    """
    counts = {"done": 0, "retry": 0, "failed": 0}
    token = uuid.uuid4().hex
    claim_s = float(getattr(runtime, "outbox_claim_s", outbox.DEFAULT_LEASE_S))
    with runtime.session() as s:
        claimed = outbox.claim_pending(session=s, sink=sink, limit=limit, lease_s=claim_s, token=token)
    if not claimed:
        counts["wait_ms"] = 0
        return counts
    renewer = _ClaimRenewer(runtime, [c.delivery_id for c in claimed], token, claim_s)
    try:
        with runtime.session() as s:
            ids = {c.investigation_id for c in claimed}
            inv_dicts = {i: invs.to_dict(inv) for i, inv in invs.get_many(session=s, investigation_ids=ids).items()}
            pubs = {k: outbox.publication_to_dict(p)
                    for k, p in outbox.publications_for(session=s, investigation_ids=ids, sink=sink).items()}
            if sink != "slack" and "slack" in (getattr(runtime, "publishers", None) or {}):
                # Other sinks link the Slack thread (Jira's start comment): {} while it is not open yet.
                threads = outbox.publications_for(session=s, investigation_ids=ids, sink="slack")
                for inv_id, inv in inv_dicts.items():
                    refs = [p.external_ref or {} for (i, _t), p in threads.items() if i == inv_id]
                    found = next((r for r in refs if r.get("thread_ts") and r.get("channel")), None)
                    inv["slack_thread"] = ({"channel": found["channel"], "thread_ts": found["thread_ts"]}
                                           if found else {})
        opened = _open_threads(runtime, sink, publisher, claimed, inv_dicts, pubs, pool, renewer)

        def deliver_one(c: Any) -> tuple[Any, dict[str, Any] | None, str, dict[str, Any] | Exception | None]:
            if renewer.lost(c.delivery_id):
                return c, None, "", None  # another drainer has it now: do not send it a second time
            inv = inv_dicts.get(c.investigation_id)
            if inv is None:
                return c, None, "", LookupError(f"investigation {c.investigation_id} is gone")
            target = target_for(sink, inv, publisher)
            error = opened.get(c.investigation_id)
            if error is not None:
                return c, inv, target, error
            try:
                # attempts > 1 tells a publisher an earlier try may have reached the sink already
                # (it then looks before posting); a first try skips that look-up.
                return c, inv, target, publisher.deliver(_with_attempts(c), inv, pubs.get((inv["id"], target))) or {}
            except Exception as exc:  # noqa: BLE001 - sorted out below, per delivery
                return c, inv, target, exc

        results = _map(pool, deliver_one, claimed)
    finally:
        renewer.stop()
    held: dict[str, float] = {}  # investigation → retry delay (the caller drains again after it)
    released: list[tuple[int, float, str | None]] = []
    done: list[tuple[Any, str, str, dict[str, Any]]] = []
    for c, inv, target, result in results:
        if result is None:
            continue
        if isinstance(result, Permanent) and inv is not None:
            # The sink said this can never succeed (Jira: no such ticket): given up now, said in the log.
            log.warning("%s will not take event %s of %s: %s", sink, c.event["id"], c.investigation_id, result)
            kept = dict((pubs.get((inv["id"], target)) or {}).get("external_ref") or {})
            done.append((c, inv["id"], target, {**kept, "skipped": str(result)[:500]}))
            counts["done"] += 1
            continue
        if isinstance(result, Exception):
            if inv is None or not _asks_to_wait(result):
                _failed(runtime, c, result, sink, counts, held, token)
                continue
            wait_s = float(getattr(result, "retry_after_s", 1.0))
            held[c.investigation_id] = wait_s
            released.append((c.delivery_id, wait_s, str(result)))
            counts["retry"] += 1
            continue
        done.append((c, inv["id"], target, dict(result)))
        counts["done"] += 1
    with runtime.session() as s:
        outbox.save_publications(session=s, sink=sink, items=[(inv_id, target, ref) for _c, inv_id, target, ref in done])
        outbox.mark_many_done(session=s, done=[(c.delivery_id, ref) for c, _inv, _target, ref in done], token=token)
        for delivery_id, wait_s, error in released:
            outbox.release(session=s, delivery_id=delivery_id, retry_after_s=wait_s, error=error, token=token)
    # The longest wait a sink asked for: the caller schedules the next drain after it.
    counts["wait_ms"] = int(max(held.values(), default=0.0) * 1000)
    return counts


class _ClaimRenewer:
    """Renews a drainer's claim every third of its lease while the batch is being delivered.

    A delivery whose claim could not be renewed (another drainer took it) is reported by
    :meth:`lost`, and the drainer makes no more sink calls for it. So is every delivery once the
    claim may have run out by this process's monotonic clock (renewals failing, or the process
    was paused past the claim: another drainer may be sending the same message right now).
    """

    def __init__(self, runtime: Any, delivery_ids: list[int], token: str, lease_s: float) -> None:
        self._runtime, self._ids, self._token, self._lease_s = runtime, list(delivery_ids), token, lease_s
        self._lost: set[int] = set()
        # a margin of a sixth of the claim: a sink call started now is not left without a claim
        self._valid_until = time.monotonic() + lease_s * 5 / 6
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pm-outbox-claim", daemon=True)
        self._thread.start()

    def lost(self, delivery_id: int) -> bool:
        return delivery_id in self._lost or time.monotonic() > self._valid_until

    def _loop(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            wanted = [i for i in self._ids if i not in self._lost]
            renewing = time.monotonic()
            try:
                with self._runtime.session() as s:
                    held = outbox.renew_claims(session=s, delivery_ids=wanted, token=self._token,
                                               lease_s=self._lease_s)
            except Exception:  # noqa: BLE001 - a missed renewal only shortens the claim
                log.warning("renewing an outbox claim failed", exc_info=True)
                continue
            self._valid_until = renewing + self._lease_s * 5 / 6
            # rows marked done meanwhile are not pending any more: they are not lost, just finished
            gone = set(wanted) - held
            if gone:
                with self._runtime.session() as s:
                    taken = set(s.scalars(select(Delivery.id).where(
                        Delivery.id.in_(gone), Delivery.claim_token != self._token)))
                if taken:
                    metrics.OUTBOX_CLAIMS_LOST.inc(len(taken))
                    log.warning("%d outbox deliveries were taken over by another drainer; not sending them again",
                                len(taken))
                self._lost |= taken

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _map(pool: Executor | None, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    return list(pool.map(fn, items)) if pool is not None and len(items) > 1 else [fn(i) for i in items]


def _with_attempts(c: Any) -> dict[str, Any]:
    return dict(c.event, attempts=max(2, c.attempts) if c.redelivery else 1)


def _open_threads(runtime: Any, sink: str, publisher: Any, claimed: list[Any], inv_dicts: dict[str, Any],
                  pubs: dict[tuple[str, str], Any], pool: Executor | None = None,
                  renewer: _ClaimRenewer | None = None) -> dict[str, Exception | None]:
    """Open every new thread of the batch first (when the publisher can) and save its ids at once.

    ``pubs`` is updated in place with what was opened. Saving before the events are delivered
    means a crash after this step finds the thread instead of opening a second one.

    Returns:
        investigation id -> None (opened or nothing to open) or the exception opening it raised
        (the caller handles it as that delivery's failure).
    """
    open_thread = getattr(publisher, "open_thread", None)
    if not callable(open_thread):
        return {}

    def open_one(c: Any) -> tuple[str, str, dict[str, Any] | Exception] | None:
        inv = inv_dicts.get(c.investigation_id)
        if inv is None or (renewer is not None and renewer.lost(c.delivery_id)):
            return None
        target = target_for(sink, inv, publisher)
        try:
            return inv["id"], target, dict(open_thread(_with_attempts(c), inv, pubs.get((inv["id"], target))) or {})
        except Exception as exc:  # noqa: BLE001 - reported by the caller, per delivery
            return inv["id"], target, exc

    outcome: dict[str, Exception | None] = {}
    refs: list[tuple[str, str, dict[str, Any]]] = []
    for item in _map(pool, open_one, claimed):
        if item is None:
            continue
        inv_id, target, result = item
        outcome[inv_id] = result if isinstance(result, Exception) else None
        if result and not isinstance(result, Exception):
            refs.append((inv_id, target, result))
    if refs:
        with runtime.session() as s:
            for pub in outbox.save_publications(session=s, sink=sink, items=refs):
                pubs[(pub.investigation_id, pub.target)] = outbox.publication_to_dict(pub)
    return outcome


def _asks_to_wait(exc: Exception) -> bool:
    """A RetryLater, or any exception that carries a ``retry_after_s`` (a sink client's own)."""
    return isinstance(exc, RetryLater) or isinstance(getattr(exc, "retry_after_s", None), (int, float))


def _failed(runtime: Any, c: Any, exc: Exception, sink: str, counts: dict[str, int],
            held: dict[str, float], token: str | None = None) -> None:
    """A publisher bug or a sink that is down: back off exponentially, up to MAX_BACKOFF_S; once
    the delivery has been failing for ``runtime.outbox_dead_after_s``, dead-letter it and raise the
    alarm. Nothing is ever dropped silently: a dead letter is kept and `pm outbox retry` sends it."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    dead_after = float(getattr(runtime, "outbox_dead_after_s", DEAD_AFTER_S))
    now = utcnow()
    failing_for = (now - c.failing_since).total_seconds() if c.failing_since else 0.0
    with runtime.session() as s:
        if failing_for >= dead_after:
            dead = outbox.mark_dead(session=s, delivery_id=c.delivery_id, error=error, token=token)
        else:
            dead = False
            # 2, 4, 8 … s, then every hour: a blip passes quickly, an outage is waited out for hours
            delay = min(2.0 ** c.attempts, MAX_BACKOFF_S) * random.uniform(0.9, 1.1)
            outbox.mark_retry(session=s, delivery_id=c.delivery_id, retry_after_s=delay, error=error, token=token)
            held[c.investigation_id] = delay
            counts["retry"] += 1
    if dead:
        counts["failed"] += 1
        _alarm(runtime, c, sink, error, failing_for)
    else:
        log.warning("delivering event %s to %s failed (attempt %d): %s", c.event["id"], sink, c.attempts, error)


def _alarm(runtime: Any, c: Any, sink: str, error: str, failing_for: float) -> None:
    """A dead letter: an ERROR log line, a counter, and the admin channel when one is configured."""
    metrics.OUTBOX_DEAD.labels(sink=sink).inc()
    text = (f"outbox: gave up delivering event {c.event['seq']} ({c.event['kind']}) of {c.investigation_id} "
            f"to {sink} after {c.attempts} attempts over {failing_for / 3600:.1f} h: {error}; "
            f"send it again with `pm outbox retry --investigation {c.investigation_id}`")
    log.error("%s", text)
    alarm = getattr(runtime, "alarm", None)
    if callable(alarm):
        try:
            alarm(text)
        except Exception:  # noqa: BLE001 - the alarm channel may be the sink that is down
            log.warning("posting the dead-letter alarm failed", exc_info=True)


def drain_all(runtime: Any, sink: str, publisher: Any, limit: int = 50, pool: Executor | None = None
              ) -> dict[str, int]:
    """Drain ``sink`` until nothing due is left (each round at most ``limit``; ``pool`` as :func:`drain`)."""
    total = {"done": 0, "retry": 0, "failed": 0, "wait_ms": 0}
    while True:
        counts = drain(runtime, sink, publisher, limit, pool=pool)
        for k, v in counts.items():
            total[k] = max(total[k], v) if k == "wait_ms" else total[k] + v
        if counts["done"] + counts["failed"] == 0:
            return total


class WakeLoop:
    """A daemon thread that runs :meth:`_loop` until stopped; :meth:`poke` wakes its wait early.

    Subclasses wait on ``self._wake`` (cleared after each wake) and return when ``self._stop`` is set.
    """

    thread_name = "pm-wake-loop"
    join_s = 30.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Run soon (something was just recorded)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(self.join_s)

    def _loop(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError


class OutboxSweeper(WakeLoop):
    """A daemon thread that drains every registered sink when poked and every ``interval_s`` (±20 %).

    Due deliveries must not depend on the message that created them: a drainer killed mid-batch
    leaves its claim to run out, a retry comes due hours later, a publish message is lost with the
    queue. Every process that runs a worker runs one (``Runtime.start_worker``), and progress in
    that process pokes it instead of taking a worker thread: against a slow sink (Slack answering
    in 1.5 s) a drain lasts minutes, and publish jobs on the worker's threads starved the
    investigations themselves. When a sink asked to wait, the sweeper comes back after that wait.
    """

    thread_name = "pm-outbox-sweeper"

    def __init__(self, runtime: Any, interval_s: float) -> None:
        self.runtime, self.interval_s = runtime, interval_s
        super().__init__()

    def _loop(self) -> None:
        wait = self.interval_s * random.uniform(0.8, 1.2)
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = self.interval_s * random.uniform(0.8, 1.2)
            if not self.runtime.publishers:
                continue
            try:
                result = self.runtime.publish_now()
            except Exception:  # noqa: BLE001 - a database blip: the next period tries again
                log.warning("sweeping the outbox failed", exc_info=True)
                continue
            asked = [c.get("wait_ms", 0) for c in result.values() if c.get("retry")]
            if asked:  # come back when the slowest sink said to (Retry-After), never sooner than 0.5 s
                wait = min(wait, max(0.5, max(asked) / 1000 + 0.25))
