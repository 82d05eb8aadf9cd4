"""The progress outbox: numbered events per investigation, and their delivery to each sink.

An event is appended in the same transaction as the state change it reports, so a sink never
hears of a change that was rolled back, and never misses one that was committed. Each event
gets one :class:`~store.models.Delivery` row per sink; publishers claim pending rows, deliver
them, and mark them done, retry-later or failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from store.errors import NotFound
from store.models import Delivery, Investigation, ProgressEvent, Publication, utcnow

EVENT_KINDS = (
    "created", "phase_started", "phase_finished", "milestone", "report", "failed", "cancelled", "attached",
    "usage",
)
# A claimed delivery is leased for this long (the drainer renews it while it delivers): a drainer
# that dies mid-delivery gives its rows back to another drainer after the lease instead of losing them.
DEFAULT_LEASE_S = 30.0
#: Delivery states: waiting to be (re)tried, delivered, given up on after failing for hours
#: (kept, alarmed, retryable with `pm outbox retry`). "failed" is the same as "dead" (older rows).
DELIVERY_STATES = ("pending", "done", "dead", "failed")


#: The events a callback_url hears of: the end of the investigation, once.
CALLBACK_KINDS = ("report", "failed", "cancelled")


def sinks_for_origin(origin: dict[str, Any], kind: str | None = None) -> list[str]:
    """The sinks an investigation's origin implies for an event of ``kind``: slack when it has a channel,
    jira when a key, callback (only for :data:`CALLBACK_KINDS`; any kind when ``kind`` is None) when a URL."""
    sinks = []
    if origin.get("channel"):
        sinks.append("slack")
    if origin.get("jira_key"):
        sinks.append("jira")
    if origin.get("callback_url") and (kind is None or kind in CALLBACK_KINDS):
        sinks.append("callback")
    return sinks


def append(
    *,
    session: Session,
    investigation_id: str,
    kind: str,
    payload: dict[str, Any] | None = None,
    sinks: list[str] | None = None,
) -> ProgressEvent:
    """Append one progress event and its pending deliveries.

    The next ``seq`` is allocated under a write lock on the investigation row (an UPDATE: a row
    lock on PostgreSQL, the database write lock on SQLite), so concurrent appenders to the same
    investigation serialise instead of colliding on ``(investigation_id, seq)``.

    Args:
        investigation_id: the investigation the event belongs to.
        kind: one of :data:`EVENT_KINDS`.
        payload: JSON-serialisable details.
        sinks: extra sinks beyond those the investigation's origin implies (e.g. ``["cli"]``).

    Raises:
        ValueError: unknown kind.
        NotFound: no such investigation.

    Returns:
        The event (flushed, not committed).
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"event kind {kind!r} is unknown; use one of {', '.join(EVENT_KINDS)}")
    now = utcnow()
    locked = session.execute(
        update(Investigation).where(Investigation.id == investigation_id).values(updated_at=now)
    )
    if locked.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"no investigation {investigation_id!r} to append a {kind} event to")
    last = session.scalar(
        select(func.max(ProgressEvent.seq)).where(ProgressEvent.investigation_id == investigation_id)
    )
    event = ProgressEvent(
        investigation_id=investigation_id, seq=(last or 0) + 1, kind=kind, payload=payload or {}, created_at=now
    )
    session.add(event)
    session.flush()
    origin = session.scalar(select(Investigation.origin).where(Investigation.id == investigation_id)) or {}
    wanted = list(dict.fromkeys([*sinks_for_origin(origin, kind), *(sinks or [])]))
    for sink in wanted:
        session.add(Delivery(event_id=event.id, sink=sink, status="pending", attempts=0, next_attempt_at=now))
    session.flush()
    return event


def append_many(*, session: Session, events: list[tuple[str, str, dict[str, Any] | None]]) -> list[int]:
    """Append many events, in order, as :func:`append` would one by one, in a few statements.

    For a burst of events (a webhook storm attaching repeats, 500 slash commands' ``created``
    events): one UPDATE locks every investigation concerned, one query reads their last ``seq``
    and one their origins, and the events and their deliveries are inserted with two Core
    multi-row INSERTs (ORM objects cost ~0.3 ms each here, most of a burst's start time).

    Args:
        events: ``(investigation_id, kind, payload)``; several may name the same investigation.

    Raises:
        ValueError: unknown kind.
        NotFound: an investigation does not exist.

    Returns:
        The new events' ids, in the order given.
    """
    if not events:
        return []
    for _inv, kind, _payload in events:
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind {kind!r} is unknown; use one of {', '.join(EVENT_KINDS)}")
    now = utcnow()
    ids = sorted({inv_id for inv_id, _kind, _payload in events})
    locked = session.execute(update(Investigation).where(Investigation.id.in_(ids)).values(updated_at=now)
                             .execution_options(synchronize_session=False))
    if locked.rowcount != len(ids):  # type: ignore[attr-defined]
        raise NotFound(f"an investigation of {', '.join(ids)} does not exist; cannot append events to it")
    last: dict[str, int] = dict(
        session.execute(
            select(ProgressEvent.investigation_id, func.max(ProgressEvent.seq))
            .where(ProgressEvent.investigation_id.in_(ids))
            .group_by(ProgressEvent.investigation_id)
        ).all()
    )
    origins: dict[str, Any] = dict(session.execute(select(Investigation.id, Investigation.origin).where(Investigation.id.in_(ids))).all())
    rows: list[dict[str, Any]] = []
    for inv_id, kind, payload in events:
        last[inv_id] = last.get(inv_id, 0) + 1
        rows.append({"investigation_id": inv_id, "seq": last[inv_id], "kind": kind, "payload": payload or {},
                     "created_at": now})
    event_ids = list(session.scalars(
        insert(ProgressEvent).returning(ProgressEvent.id, sort_by_parameter_order=True), rows))
    deliveries = [{"event_id": event_id, "sink": sink, "status": "pending", "attempts": 0, "next_attempt_at": now}
                  for event_id, row in zip(event_ids, rows, strict=True)
                  for sink in sinks_for_origin(origins[row["investigation_id"]] or {}, row["kind"])]
    if deliveries:
        session.execute(insert(Delivery), deliveries)
    return event_ids


def append_first(*, session: Session, events: list[tuple[str, str, dict[str, Any] | None, dict[str, Any]]],
                 now: datetime | None = None) -> None:
    """The first event (``seq`` 1) of each of many investigations inserted in this same transaction.

    :func:`append_many` locks the investigations and reads their last ``seq`` and origins, three
    statements with an ``IN`` list as long as the batch; for investigations this transaction has
    just inserted, none of that can find anything else (no other transaction sees them yet), so
    here the events and their deliveries are two inserts. The caller commits.

    Args:
        events: ``(investigation_id, kind, payload, origin)``, one per investigation.

    Raises:
        ValueError: unknown kind.
    """
    if not events:
        return
    for _inv, kind, _payload, _origin in events:
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind {kind!r} is unknown; use one of {', '.join(EVENT_KINDS)}")
    now = now or utcnow()
    rows = [{"investigation_id": inv_id, "seq": 1, "kind": kind, "payload": payload or {}, "created_at": now}
            for inv_id, kind, payload, _origin in events]
    event_ids = list(session.scalars(
        insert(ProgressEvent).returning(ProgressEvent.id, sort_by_parameter_order=True), rows))
    deliveries = [{"event_id": event_id, "sink": sink, "status": "pending", "attempts": 0, "next_attempt_at": now}
                  for event_id, (_inv, kind, _payload, origin) in zip(event_ids, events, strict=True)
                  for sink in sinks_for_origin(origin or {}, kind)]
    if deliveries:
        session.execute(insert(Delivery), deliveries)


def event_to_dict(event: ProgressEvent) -> dict[str, Any]:
    """A JSON-serialisable view of one event."""
    return {
        "id": event.id,
        "investigation_id": event.investigation_id,
        "seq": event.seq,
        "kind": event.kind,
        "payload": event.payload,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
    }


def events(*, session: Session, investigation_id: str, after_seq: int = 0) -> list[ProgressEvent]:
    """The investigation's events with ``seq > after_seq``, oldest first."""
    stmt = (
        select(ProgressEvent)
        .where(ProgressEvent.investigation_id == investigation_id, ProgressEvent.seq > after_seq)
        .order_by(ProgressEvent.seq)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to one drainer: the row's id, its event, its investigation."""

    delivery_id: int
    sink: str
    attempts: int
    event: dict[str, Any]
    investigation_id: str
    redelivery: bool = False  # an earlier claim may already have reached the sink
    failing_since: datetime | None = None  # when its current run of failures began


def claim_pending(
    *, session: Session, sink: str, limit: int = 50, lease_s: float = DEFAULT_LEASE_S,
    now: datetime | None = None, token: str | None = None,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of ``sink``, oldest event first.

    A delivery is due when it is pending, its ``next_attempt_at`` has passed, and no earlier
    event of the same investigation is still undelivered to this sink (so a thread's messages
    keep their order while one of them waits out a rate limit). Rows locked by another drainer
    are skipped (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer anyway).
    Claiming bumps ``attempts``, pushes ``next_attempt_at`` out by the lease and stamps the rows
    with ``token`` (the drainer's); the caller commits, delivers while renewing the claim
    (:func:`renew_claims`), then calls :func:`mark_many_done`, :func:`mark_retry`, :func:`release`
    or :func:`mark_dead` with the same token.

    Returns:
        The claimed deliveries.
    """
    now = now or utcnow()
    # Each investigation's earliest undelivered event for this sink: only that one may be claimed.
    # (One grouped pass over the pending rows; a NOT EXISTS per candidate row was quadratic in the
    # backlog and took ~0.1 s per claim with 1,000 deliveries pending after a burst.)
    first = (
        select(ProgressEvent.investigation_id.label("inv"), func.min(ProgressEvent.seq).label("seq"))
        .join(Delivery, Delivery.event_id == ProgressEvent.id)
        .where(Delivery.sink == sink, Delivery.status == "pending")
        .group_by(ProgressEvent.investigation_id)
        .subquery()
    )
    stmt = (
        select(Delivery, ProgressEvent)
        .join(ProgressEvent, ProgressEvent.id == Delivery.event_id)
        .join(first, and_(first.c.inv == ProgressEvent.investigation_id, first.c.seq == ProgressEvent.seq))
        .where(and_(Delivery.sink == sink, Delivery.status == "pending", Delivery.next_attempt_at <= now))
        .order_by(ProgressEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    rows = session.execute(stmt).all()
    if not rows:
        return []
    lease_until = now + timedelta(seconds=lease_s)
    # compare-and-set, all rows in one statement: SQLite has no SKIP LOCKED, so a concurrent drainer
    # that read the same rows loses here instead of delivering them a second time.
    won = set(session.scalars(
        update(Delivery)
        .where(Delivery.id.in_([d.id for d, _e in rows]), Delivery.status == "pending",
               Delivery.next_attempt_at <= now)
        .values(attempts=Delivery.attempts + 1, next_attempt_at=lease_until, claim_token=token,
                first_claimed_at=func.coalesce(Delivery.first_claimed_at, now))
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ))
    claimed = [
        Claimed(
            delivery_id=delivery.id, sink=sink, attempts=delivery.attempts + 1,
            event=event_to_dict(event), investigation_id=event.investigation_id,
            redelivery=delivery.first_claimed_at is not None, failing_since=delivery.failing_since,
        )
        for delivery, event in rows
        if delivery.id in won
    ]
    session.flush()
    return claimed


def release_claims(*, session: Session) -> int:
    """Make every claimed delivery due now: for a process that knows all claims are its dead
    predecessor's (the Slack bot on its own embedded SQLite, at start-up). ``attempts`` stays
    counted, so the publisher looks for what the dead drainer may have posted before posting.

    Returns:
        How many claims were released.
    """
    now = utcnow()
    result = session.execute(
        update(Delivery)
        .where(Delivery.status == "pending", Delivery.claim_token.is_not(None), Delivery.next_attempt_at > now)
        .values(next_attempt_at=now, claim_token=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _delivery(session: Session, delivery_id: int, token: str | None = None) -> Delivery | None:
    """The delivery row; None when ``token`` is given and another drainer's claim replaced ours."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id}")
    if token is not None and delivery.claim_token != token:
        return None
    return delivery


def renew_claims(*, session: Session, delivery_ids: list[int], token: str, lease_s: float = DEFAULT_LEASE_S
                 ) -> set[int]:
    """Extend this drainer's claim on ``delivery_ids`` by ``lease_s`` from now.

    Returns:
        The ids still claimed with ``token`` (the others were taken over or are no longer pending).
    """
    if not delivery_ids:
        return set()
    return set(session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.claim_token == token, Delivery.status == "pending")
        .values(next_attempt_at=utcnow() + timedelta(seconds=lease_s))
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ))


def mark_done(*, session: Session, delivery_id: int, external_ref: dict[str, Any] | None = None,
              token: str | None = None) -> bool:
    """Record that a delivery reached its sink (with the sink's ids for it).

    Returns:
        False when ``token`` no longer holds the claim (nothing is written).
    """
    delivery = _delivery(session, delivery_id, token)
    if delivery is None:
        return False
    delivery.status = "done"
    delivery.external_ref = external_ref
    delivery.last_error = None
    delivery.failing_since = None
    return True


def mark_retry(*, session: Session, delivery_id: int, retry_after_s: float, error: str | None = None,
               token: str | None = None) -> bool:
    """Put a delivery back to pending, due again after ``retry_after_s`` seconds; a failure counts.

    Returns:
        False when ``token`` no longer holds the claim (nothing is written).
    """
    delivery = _delivery(session, delivery_id, token)
    if delivery is None:
        return False
    now = utcnow()
    delivery.status = "pending"
    delivery.next_attempt_at = now + timedelta(seconds=max(0.0, retry_after_s))
    delivery.last_error = error
    delivery.failing_since = delivery.failing_since or now
    return True


def release(*, session: Session, delivery_id: int, retry_after_s: float = 0.0, error: str | None = None,
            token: str | None = None) -> bool:
    """Hand a claimed delivery back without counting the attempt (it was never tried, or the
    sink asked to wait: a rate limit is not a failure).

    Returns:
        False when ``token`` no longer holds the claim (nothing is written).
    """
    delivery = _delivery(session, delivery_id, token)
    if delivery is None:
        return False
    delivery.status = "pending"
    delivery.attempts = max(0, delivery.attempts - 1)
    delivery.next_attempt_at = utcnow() + timedelta(seconds=max(0.0, retry_after_s))
    if error is not None:
        delivery.last_error = error
    return True


def mark_dead(*, session: Session, delivery_id: int, error: str, token: str | None = None) -> bool:
    """Dead-letter a delivery that kept failing: kept with its error until :func:`retry_dead`.

    Returns:
        False when ``token`` no longer holds the claim (nothing is written).
    """
    delivery = _delivery(session, delivery_id, token)
    if delivery is None:
        return False
    delivery.status = "dead"
    delivery.last_error = error
    return True


def mark_failed(*, session: Session, delivery_id: int, error: str) -> None:
    """Give up on a delivery (the dead-letter state; kept for callers of the older name)."""
    mark_dead(session=session, delivery_id=delivery_id, error=error)


def dead_letters(*, session: Session, sink: str | None = None, investigation_id: str | None = None,
                 limit: int = 1000) -> list[dict[str, Any]]:
    """Dead-lettered deliveries, oldest event first, as dicts (id, sink, investigation, event, error)."""
    stmt = (select(Delivery, ProgressEvent).join(ProgressEvent, ProgressEvent.id == Delivery.event_id)
            .where(Delivery.status.in_(("dead", "failed"))).order_by(ProgressEvent.id).limit(limit))
    if sink is not None:
        stmt = stmt.where(Delivery.sink == sink)
    if investigation_id is not None:
        stmt = stmt.where(ProgressEvent.investigation_id == investigation_id)
    return [{"delivery_id": d.id, "sink": d.sink, "investigation_id": e.investigation_id, "seq": e.seq,
             "kind": e.kind, "attempts": d.attempts, "error": d.last_error,
             "failing_since": d.failing_since.isoformat().replace("+00:00", "Z") if d.failing_since else None}
            for d, e in session.execute(stmt).all()]


def retry_dead(*, session: Session, sink: str | None = None, investigation_id: str | None = None,
               delivery_ids: list[int] | None = None) -> int:
    """Put dead-lettered deliveries back to pending, due now, with a fresh failure budget.

    Returns:
        How many were put back.
    """
    stmt = update(Delivery).where(Delivery.status.in_(("dead", "failed")))
    if sink is not None:
        stmt = stmt.where(Delivery.sink == sink)
    if delivery_ids is not None:
        stmt = stmt.where(Delivery.id.in_(delivery_ids))
    if investigation_id is not None:
        stmt = stmt.where(Delivery.event_id.in_(
            select(ProgressEvent.id).where(ProgressEvent.investigation_id == investigation_id)))
    result = session.execute(stmt.values(status="pending", attempts=0, next_attempt_at=utcnow(), claim_token=None,
                                         failing_since=None).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def pending_count(*, session: Session, sink: str | None = None) -> int:
    """How many deliveries are still pending (for one sink, or all)."""
    stmt = select(func.count(Delivery.id)).where(Delivery.status == "pending")
    if sink is not None:
        stmt = stmt.where(Delivery.sink == sink)
    return int(session.scalar(stmt) or 0)


def get_publication(*, session: Session, investigation_id: str, sink: str, target: str) -> Publication | None:
    """Where an investigation was already published in ``sink`` at ``target``, or None."""
    stmt = select(Publication).where(
        Publication.investigation_id == investigation_id, Publication.sink == sink, Publication.target == target
    )
    return session.scalars(stmt).first()


def publications_for(*, session: Session, investigation_ids: set[str], sink: str) -> dict[tuple[str, str], Publication]:
    """(investigation id, target) -> publication in ``sink``, for many investigations in one query."""
    if not investigation_ids:
        return {}
    rows = session.scalars(select(Publication).where(Publication.investigation_id.in_(investigation_ids),
                                                     Publication.sink == sink))
    return {(pub.investigation_id, pub.target): pub for pub in rows}


def investigation_for_message(*, session: Session, sink: str, channel: str, ts: str,
                              key: str = "report_ts") -> str | None:
    """The investigation whose ``key`` message (e.g. the Slack report) is ``ts`` in ``channel``, or None."""
    rows = session.scalars(select(Publication).where(
        Publication.sink == sink, Publication.external_ref[key].as_string() == ts))
    for pub in rows:
        if (pub.external_ref or {}).get("channel") in (None, channel):
            return pub.investigation_id
    return None


def save_publication(
    *, session: Session, investigation_id: str, sink: str, target: str, external_ref: dict[str, Any]
) -> Publication:
    """Remember (merge) the sink's ids for an investigation so the next update edits in place."""
    pub = get_publication(session=session, investigation_id=investigation_id, sink=sink, target=target)
    if pub is None:
        pub = Publication(investigation_id=investigation_id, sink=sink, target=target, external_ref={})
        session.add(pub)
    pub.external_ref = {**(pub.external_ref or {}), **(external_ref or {})}
    pub.updated_at = utcnow()
    session.flush()
    return pub


def save_publications(*, session: Session, sink: str, items: list[tuple[str, str, dict[str, Any]]]) -> list[Publication]:
    """:func:`save_publication` for many ``(investigation id, target, external_ref)`` in one look-up and one flush."""
    if not items:
        return []
    known = publications_for(session=session, investigation_ids={i for i, _t, _r in items}, sink=sink)
    now = utcnow()
    out = []
    for inv_id, target, ref in items:
        pub = known.get((inv_id, target))
        if pub is None:
            pub = known[(inv_id, target)] = Publication(investigation_id=inv_id, sink=sink, target=target,
                                                        external_ref={})
            session.add(pub)
        pub.external_ref = {**(pub.external_ref or {}), **(ref or {})}
        pub.updated_at = now
        out.append(pub)
    session.flush()
    return out


def mark_many_done(*, session: Session, done: list[tuple[int, dict[str, Any] | None]],
                   token: str | None = None) -> None:
    """:func:`mark_done` for many ``(delivery id, external_ref)`` in one executemany.

    With ``token``, only rows this drainer still holds are marked (a row another drainer took over
    is left to it; it finds the message already posted by its look-up).
    """
    if not done:
        return
    table = cast(Table, Delivery.__table__)
    stmt = update(table).where(table.c.id == bindparam("did"))
    if token is not None:
        stmt = stmt.where(table.c.claim_token == token)
    session.execute(
        stmt.values(status="done", external_ref=bindparam("ref"), last_error=None, failing_since=None),
        [{"did": delivery_id, "ref": ref} for delivery_id, ref in done],
    )


def publication_to_dict(pub: Publication | None) -> dict[str, Any] | None:
    """A JSON-serialisable view of a publication, or None."""
    if pub is None:
        return None
    return {
        "investigation_id": pub.investigation_id,
        "sink": pub.sink,
        "target": pub.target,
        "external_ref": dict(pub.external_ref or {}),
    }
