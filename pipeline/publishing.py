"""Draining the outbox to publishers (Slack, Jira, ...).

A publisher is anything with ``deliver(event, investigation, publication) -> external_ref``.
``publication`` is what the sink returned for earlier events of the same investigation and
target (merged), so the publisher edits its status message in place instead of posting twice.
"""

from __future__ import annotations

import logging
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


def drain(runtime: Any, sink: str, publisher: Any, limit: int = 50) -> dict[str, int]:
    """Deliver the due events of ``sink`` once, oldest first.

    Each delivery is claimed (leased) in one transaction, delivered outside any transaction,
    and marked in another, so a crash between delivery and mark re-delivers at most once and
    the publisher's Publication lookup makes that re-delivery an edit, not a second post.

    Returns:
        Counts: ``{"done": n, "retry": n, "failed": n}``.
    """
    counts = {"done": 0, "retry": 0, "failed": 0}
    with runtime.session() as s:
        claimed = outbox.claim_pending(session=s, sink=sink, limit=limit)
    held: dict[str, float] = {}  # investigation → retry delay: keep its later events behind it
    for c in claimed:
        if c.investigation_id in held:
            with runtime.session() as s:
                outbox.release(session=s, delivery_id=c.delivery_id, retry_after_s=held[c.investigation_id])
            continue
        with runtime.session() as s:
            inv = invs.to_dict(invs.get(session=s, investigation_id=c.investigation_id))
            target = target_for(sink, inv, publisher)
            pub = outbox.publication_to_dict(
                outbox.get_publication(session=s, investigation_id=inv["id"], sink=sink, target=target)
            )
        try:
            # attempts > 1 tells a publisher an earlier try may have reached the sink already
            # (it then looks before posting); a first try skips that look-up.
            event = dict(c.event, attempts=max(2, c.attempts) if c.redelivery else 1)
            ref = publisher.deliver(event, inv, pub) or {}
        except Exception as exc:
            if not _asks_to_wait(exc):
                _failed(runtime, c, exc, sink, counts, held)
                continue
            wait_s = float(getattr(exc, "retry_after_s", 1.0))
            held[c.investigation_id] = wait_s
            with runtime.session() as s:
                outbox.release(session=s, delivery_id=c.delivery_id, retry_after_s=wait_s,
                               error=str(exc))
            counts["retry"] += 1
            continue
        with runtime.session() as s:
            outbox.save_publication(session=s, investigation_id=inv["id"], sink=sink, target=target,
                                    external_ref=dict(ref))
            outbox.mark_done(session=s, delivery_id=c.delivery_id, external_ref=dict(ref))
        counts["done"] += 1
    # The longest wait a sink asked for: the caller schedules the next drain after it.
    counts["wait_ms"] = int(max(held.values(), default=0.0) * 1000)
    return counts


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
