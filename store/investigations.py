"""Investigation records: create, read, list, dedup lookup, cancel."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import outbox
from store.errors import NotFound
from store.models import OPEN_STATUSES, TERMINAL_STATUSES, Investigation, utcnow

MODES = ("fast", "balanced", "deep")
PRIORITIES = ("P1", "P2", "P3")
_SLUG_MAX = 24


def _slug(trigger: dict[str, Any]) -> str:
    """Lowercase alphanumeric slug of the trigger's ticket key, alert id or text (≤ 24 chars)."""
    key = trigger.get("ticket") or trigger.get("alert")
    if key:  # keys read as one word, as in the seed's inv-2026-02-21-143000-sched45895
        return re.sub(r"[^a-z0-9]+", "", str(key).lower())[:_SLUG_MAX] or "incident"
    raw = str(trigger.get("text") or "incident")
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:_SLUG_MAX].strip("-")
    return slug or "incident"


def new_id(trigger: dict[str, Any], now: datetime) -> str:
    """The id ``inv-YYYY-MM-DD-HHMMSS-<slug>`` of an investigation started at ``now``.

    Args:
        trigger: ``{"ticket": KEY} | {"alert": ID} | {"text": ...}``.
        now: when the investigation is created (its UTC clock time is used).

    Returns:
        The id; callers append a random suffix on collision (see :func:`create`).
    """
    return f"inv-{now.strftime('%Y-%m-%d-%H%M%S')}-{_slug(trigger)}"


def _validate(trigger: dict[str, Any], mode: str, priority: str) -> None:
    if not isinstance(trigger, dict) or not any(trigger.get(k) for k in ("ticket", "alert", "text")):
        raise ValueError(
            f"trigger {trigger!r} names no ticket, alert or text; pass e.g. {{'ticket': 'SCHED-45895'}}"
        )
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is unknown; use one of {', '.join(MODES)}")
    if priority not in PRIORITIES:
        raise ValueError(f"priority {priority!r} is unknown; use one of {', '.join(PRIORITIES)}")


def create(
    *,
    session: Session,
    trigger: dict[str, Any],
    origin: dict[str, Any],
    mode: str = "balanced",
    domain: str | None = None,
    sources: dict[str, Any] | None = None,
    priority: str = "P2",
    fingerprint: str | None = None,
    requested_by: str | None = None,
    budget_usd: float | None = None,
    now: datetime | None = None,
) -> Investigation:
    """Record a new QUEUED investigation and append its ``created`` progress event.

    The caller commits (and then enqueues it).

    Raises:
        ValueError: the trigger, mode or priority is not one the product knows.

    Returns:
        The new investigation.
    """
    _validate(trigger, mode, priority)
    now = now or utcnow()
    inv_id = new_id(trigger, now)
    # Two triggers in the same second with the same slug: a short random suffix keeps ids unique.
    while session.get(Investigation, inv_id) is not None:
        inv_id = f"{new_id(trigger, now)}-{secrets.token_hex(2)}"
    fields = _fields(trigger=trigger, origin=origin, mode=mode, domain=domain, sources=sources,
                     priority=priority, fingerprint=fingerprint, requested_by=requested_by,
                     budget_usd=budget_usd, now=now)
    # Two writers may pick the same free id at once (another process, same second, same slug):
    # insert under a savepoint and take a suffixed id when the database says it is taken.
    for _attempt in range(8):
        inv = Investigation(id=inv_id, **fields)
        try:
            with session.begin_nested():
                session.add(inv)
                session.flush()
            break
        except IntegrityError:
            if session.get(Investigation, inv_id) is None:
                raise  # not the id: e.g. an open investigation already holds this fingerprint
            inv_id = f"{new_id(trigger, now)}-{secrets.token_hex(3)}"
    else:  # pragma: no cover - eight collisions in a row would mean a broken clock or RNG
        raise RuntimeError("could not allocate a unique investigation id; try again")
    outbox.append(
        session=session,
        investigation_id=inv.id,
        kind="created",
        payload={"trigger": inv.trigger, "mode": mode, "priority": priority, "domain": domain},
    )
    return inv


def _fields(*, trigger: dict[str, Any], origin: dict[str, Any], mode: str, domain: str | None,
            sources: dict[str, Any] | None, priority: str, fingerprint: str | None, requested_by: str | None,
            budget_usd: float | None, now: datetime) -> dict[str, Any]:
    """The columns of a new QUEUED investigation (everything but its id)."""
    return dict(
        origin=dict(origin or {}),
        trigger=dict(trigger),
        sources=dict(sources or {}),
        mode=mode,
        domain=domain,
        priority=priority,
        fingerprint=fingerprint,
        requested_by=requested_by,
        status="QUEUED",
        phase="QUEUED",
        round=0,
        budget_usd=budget_usd,
        created_at=now,
        updated_at=now,
        tokens_in=0,
        tokens_out=0,
        cost_usd=0.0,
        cancel_requested=False,
    )


def create_many(*, session: Session, specs: list[dict[str, Any]], now: datetime | None = None) -> list[str]:
    """Record many new QUEUED investigations and their ``created`` events in a few statements.

    The same rows and events as :func:`create` called once per spec, for a burst (e.g. 500 slash
    commands): one look-up of taken ids, one multi-row INSERT, and :func:`outbox.append_first`,
    instead of a savepoint, a flush and five statements per investigation. The caller commits.

    Args:
        specs: keyword arguments of :func:`create` (``trigger``, ``origin``, ``mode``, ``domain``,
            ``sources``, ``priority``, ``fingerprint``, ``requested_by``, ``budget_usd``).
        now: the creation time of all of them.

    Raises:
        ValueError: a spec's trigger, mode or priority is not one the product knows (nothing is written).
        IntegrityError: another writer took an id or opened one of these fingerprints meanwhile; the
            caller rolls back and may fall back to :func:`create` one by one.

    Returns:
        The new ids, in the order of ``specs``.
    """
    if not specs:
        return []
    now = now or utcnow()
    for spec in specs:
        _validate(spec["trigger"], spec.get("mode", "balanced"), spec.get("priority", "P2"))
    wanted = [new_id(spec["trigger"], now) for spec in specs]
    taken = set(session.scalars(select(Investigation.id).where(Investigation.id.in_(set(wanted)))))
    ids: list[str] = []
    for inv_id in wanted:
        while inv_id in taken:  # same second, same slug: a short random suffix, as create() does
            inv_id = f"{wanted[len(ids)]}-{secrets.token_hex(3)}"
        taken.add(inv_id)
        ids.append(inv_id)
    rows = [dict(id=inv_id, **_fields(
        trigger=spec["trigger"], origin=spec.get("origin") or {}, mode=spec.get("mode", "balanced"),
        domain=spec.get("domain"), sources=spec.get("sources"), priority=spec.get("priority", "P2"),
        fingerprint=spec.get("fingerprint"), requested_by=spec.get("requested_by"),
        budget_usd=spec.get("budget_usd"), now=now)) for inv_id, spec in zip(ids, specs, strict=True)]
    session.execute(insert(Investigation), rows)
    outbox.append_first(session=session, now=now, events=[
        (row["id"], "created", {"trigger": row["trigger"], "mode": row["mode"], "priority": row["priority"],
                                "domain": row["domain"]}, row["origin"]) for row in rows])
    return ids


def get(*, session: Session, investigation_id: str, for_update: bool = False) -> Investigation:
    """The investigation with ``investigation_id``.

    Raises:
        NotFound: no such investigation.
    """
    stmt = select(Investigation).where(Investigation.id == investigation_id)
    if for_update:
        stmt = stmt.with_for_update()
    inv = session.scalars(stmt).first()
    if inv is None:
        raise NotFound(f"no investigation {investigation_id!r}; list recent ones with `pm status`")
    return inv


def get_many(*, session: Session, investigation_ids: set[str] | list[str]) -> dict[str, Investigation]:
    """id -> investigation for every id that exists (one query; for batches of outbox deliveries)."""
    if not investigation_ids:
        return {}
    rows = session.scalars(select(Investigation).where(Investigation.id.in_(set(investigation_ids))))
    return {inv.id: inv for inv in rows}


def list_recent(*, session: Session, limit: int = 20, status: str | None = None) -> list[Investigation]:
    """The newest investigations first, optionally only those with ``status``."""
    stmt = select(Investigation).order_by(Investigation.created_at.desc(), Investigation.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Investigation.status == status)
    return list(session.scalars(stmt))


def find_open_by_fingerprint(*, session: Session, fingerprint: str) -> Investigation | None:
    """The newest QUEUED or RUNNING investigation with ``fingerprint``, or None."""
    stmt = (
        select(Investigation)
        .where(Investigation.fingerprint == fingerprint, Investigation.status.in_(OPEN_STATUSES))
        .order_by(Investigation.created_at.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


#: ``error`` of an investigation whose cancellation someone asked for: this prefix and who.
CANCELLED_BY = "cancelled by "


def request_cancel(*, session: Session, investigation_id: str, by: str | None = None) -> Investigation:
    """Ask for an investigation to stop.

    A QUEUED one is cancelled at once (with its ``cancelled`` event); a RUNNING one is flagged
    and the worker stops it between phases. A finished one is left as it is.

    Raises:
        NotFound: no such investigation.

    Returns:
        The investigation (status CANCELLED when it was only queued).
    """
    inv = get(session=session, investigation_id=investigation_id, for_update=True)
    if inv.status in TERMINAL_STATUSES:
        return inv
    inv.cancel_requested = True
    if by:
        inv.error = f"{CANCELLED_BY}{by}"  # said when it stops ("Cancelled by …")
    if inv.status == "QUEUED":
        mark_cancelled(session=session, inv=inv)
    session.flush()
    return inv


def mark_cancelled(*, session: Session, inv: Investigation) -> None:
    """Move ``inv`` to CANCELLED and append the ``cancelled`` event."""
    now = utcnow()
    inv.status = "CANCELLED"
    inv.phase = "CANCELLED"
    inv.finished_at = now
    inv.updated_at = now
    by = inv.error[len(CANCELLED_BY):] if inv.error and inv.error.startswith(CANCELLED_BY) else None
    outbox.append(session=session, investigation_id=inv.id, kind="cancelled", payload={"by": by} if by else {})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def to_dict(inv: Investigation) -> dict[str, Any]:
    """A JSON-serialisable view of ``inv`` (times as ISO-8601 UTC with ``Z``)."""
    return {
        "id": inv.id,
        "origin": inv.origin,
        "trigger": inv.trigger,
        "sources": inv.sources,
        "mode": inv.mode,
        "domain": inv.domain,
        "priority": inv.priority,
        "fingerprint": inv.fingerprint,
        "requested_by": inv.requested_by,
        "status": inv.status,
        "phase": inv.phase,
        "round": inv.round,
        "verdict": inv.verdict,
        "confidence": inv.confidence,
        "root_cause": inv.root_cause,
        "fix_plan": inv.fix_plan,
        "hypotheses": inv.hypotheses,
        "report": inv.report,
        "error": inv.error,
        "cancel_requested": inv.cancel_requested,
        "created_at": _iso(inv.created_at),
        "started_at": _iso(inv.started_at),
        "finished_at": _iso(inv.finished_at),
        "updated_at": _iso(inv.updated_at),
        "tokens_in": inv.tokens_in,
        "tokens_out": inv.tokens_out,
        "cost_usd": inv.cost_usd,
        "budget_usd": inv.budget_usd,
    }


def acquire_lease(*, session: Session, investigation_id: str, owner: str, ttl_s: float) -> int | None:
    """Take the right to run an investigation for ``ttl_s`` seconds.

    One atomic UPDATE, so two workers racing for the same investigation cannot both win. Each
    take-over bumps the row's fencing token (``lease_token``): writes made under an older token
    are refused (:func:`fence`), so a worker that was paused past its lease cannot write.

    Returns:
        The new fencing token (>= 1) when ``owner`` now holds the lease; None when another live
        owner holds it.
    """
    now = utcnow()
    result = session.execute(
        update(Investigation)
        .where(
            Investigation.id == investigation_id,
            or_(
                Investigation.lease_until.is_(None),
                Investigation.lease_until < now,
                Investigation.lease_owner == owner,
            ),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=ttl_s), updated_at=now,
                lease_token=Investigation.lease_token + 1, requeue_count=0)
        .returning(Investigation.lease_token)
        .execution_options(synchronize_session=False)
    )
    token = result.scalar_one_or_none()
    return int(token) if token is not None else None


def renew_lease(*, session: Session, investigation_id: str, owner: str, token: int, ttl_s: float) -> bool:
    """Extend the lease taken with ``token`` by ``ttl_s`` seconds from now.

    Succeeds even after the lease ran out, as long as nobody took it over meanwhile (the token
    is unchanged), so a slow heartbeat costs nothing when no other worker stepped in.

    Returns:
        False when the lease was taken over (the caller must stop at once).
    """
    now = utcnow()
    result = session.execute(
        update(Investigation)
        .where(Investigation.id == investigation_id, Investigation.lease_owner == owner,
               Investigation.lease_token == token)
        .values(lease_until=now + timedelta(seconds=ttl_s), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def fence(*, session: Session, investigation_id: str, owner: str, token: int) -> bool:
    """Lock the investigation's row for this transaction if ``owner`` still holds it with ``token``.

    Call it first in every transaction a lease holder commits: it is an UPDATE, so it takes the
    row lock on PostgreSQL (a take-over waits for this transaction) and the write lock on SQLite;
    when it returns True no other worker can take over before the caller commits.

    Returns:
        False when the lease was taken over: the caller must write nothing and roll back.
    """
    result = session.execute(
        update(Investigation)
        .where(Investigation.id == investigation_id, Investigation.lease_owner == owner,
               Investigation.lease_token == token)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release_lease(*, session: Session, investigation_id: str, owner: str, token: int | None = None) -> None:
    """Give the lease back (only when ``owner`` holds it, with ``token`` when given)."""
    stmt = update(Investigation).where(Investigation.id == investigation_id, Investigation.lease_owner == owner)
    if token is not None:
        stmt = stmt.where(Investigation.lease_token == token)
    session.execute(stmt.values(lease_owner=None, lease_until=None).execution_options(synchronize_session=False))
