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
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from publishers.errors import RetryLater
from store import investigations as invs
from store import outbox

log = logging.getLogger(__name__)
#: A delivery that failed this many times with an unexpected error is given up on.
MAX_ATTEMPTS = 5


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

    The deliveries are claimed (leased) in one transaction, delivered outside any transaction,
    and marked in one more, so a crash between delivery and mark re-delivers at most once and
    the publisher's look-up (``attempts`` > 1) makes that re-delivery an edit, not a second post.
    A claim holds at most one event per investigation (``outbox.claim_pending`` keeps each
    thread in order), so the batch's investigations and publications are read in one go, and
    its deliveries are independent of each other: with a ``pool`` they go to the sink
    concurrently.

    Args:
        limit: the most deliveries to claim.
        pool: an executor for the sink calls (None: one after another on this thread).

    Returns:
        Counts: ``{"done": n, "retry": n, "failed": n, "wait_ms": longest wait asked for}``.
    """
    counts = {"done": 0, "retry": 0, "failed": 0}
    with runtime.session() as s:
        claimed = outbox.claim_pending(session=s, sink=sink, limit=limit)
    if not claimed:
        counts["wait_ms"] = 0
        return counts
    with runtime.session() as s:
        ids = {c.investigation_id for c in claimed}
        inv_dicts = {i: invs.to_dict(inv) for i, inv in invs.get_many(session=s, investigation_ids=ids).items()}
        pubs = {k: outbox.publication_to_dict(p)
                for k, p in outbox.publications_for(session=s, investigation_ids=ids, sink=sink).items()}
    opened = _open_threads(runtime, sink, publisher, claimed, inv_dicts, pubs, pool)

    def deliver_one(c: Any) -> tuple[Any, dict[str, Any] | None, str, dict[str, Any] | Exception]:
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

    held: dict[str, float] = {}  # investigation → retry delay (the caller drains again after it)
    released: list[tuple[int, float, str | None]] = []
    done: list[tuple[Any, str, str, dict[str, Any]]] = []
    for c, inv, target, result in _map(pool, deliver_one, claimed):
        if isinstance(result, Exception):
            if inv is None or not _asks_to_wait(result):
                _failed(runtime, c, result, sink, counts, held)
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
        outbox.mark_many_done(session=s, done=[(c.delivery_id, ref) for c, _inv, _target, ref in done])
        for delivery_id, wait_s, error in released:
            outbox.release(session=s, delivery_id=delivery_id, retry_after_s=wait_s, error=error)
    # The longest wait a sink asked for: the caller schedules the next drain after it.
    counts["wait_ms"] = int(max(held.values(), default=0.0) * 1000)
    return counts


def _map(pool: Executor | None, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    return list(pool.map(fn, items)) if pool is not None and len(items) > 1 else [fn(i) for i in items]


def _with_attempts(c: Any) -> dict[str, Any]:
    return dict(c.event, attempts=max(2, c.attempts) if c.redelivery else 1)


def _open_threads(runtime: Any, sink: str, publisher: Any, claimed: list[Any], inv_dicts: dict[str, Any],
                  pubs: dict[tuple[str, str], Any], pool: Executor | None = None) -> dict[str, Exception | None]:
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
        if inv is None:
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
            held: dict[str, float]) -> None:
    """A publisher bug or outage: back off exponentially, give up after MAX_ATTEMPTS."""
    error = f"{type(exc).__name__}: {exc}"
    with runtime.session() as s:
        if c.attempts >= MAX_ATTEMPTS:
            outbox.mark_failed(session=s, delivery_id=c.delivery_id, error=error)
            counts["failed"] += 1
        else:
            # 2, 4, 8, 16 s: long enough for a blip to pass, short enough for a live thread
            delay = 2.0 ** c.attempts
            outbox.mark_retry(session=s, delivery_id=c.delivery_id, retry_after_s=delay, error=error)
            held[c.investigation_id] = delay
            counts["retry"] += 1
    log.warning("delivering event %s to %s failed (attempt %d): %s", c.event["id"], sink, c.attempts, error)


def drain_all(runtime: Any, sink: str, publisher: Any, limit: int = 50) -> dict[str, int]:
    """Drain ``sink`` until nothing due is left (each round at most ``limit``)."""
    total = {"done": 0, "retry": 0, "failed": 0, "wait_ms": 0}
    while True:
        counts = drain(runtime, sink, publisher, limit)
        for k, v in counts.items():
            total[k] = max(total[k], v) if k == "wait_ms" else total[k] + v
        if counts["done"] + counts["failed"] == 0:
            return total
