"""The history of alerts and changes received on our webhooks (table ``source_events``).

Written when a webhook is processed (``commands.webhooks``), read by the ``events`` source
(``sources/events.py``). Records are the contract's dicts (docs/contracts.md): an alert
``{id, ts, source, service, severity, title, labels}``, a change ``{id, ts, kind, service,
author, summary, details}``. A record is kept once per (kind, id): a resent one changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.errors import StoreError
from store.models import SourceEvent

KINDS = ("alert", "change")


def record(*, session: Session, kind: str, records: list[dict[str, Any]]) -> int:
    """Keep ``records`` of ``kind`` (each with ``id`` and an ISO ``ts``) unless already kept; the caller commits.

    Returns:
        How many were new.

    Raises:
        StoreError: unknown kind, or a database other than SQLite/PostgreSQL.
    """
    if kind not in KINDS:
        raise StoreError(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}")
    if not records:
        return 0
    dialect = session.get_bind().dialect.name
    module = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect)
    if module is None:
        raise StoreError(f"database dialect {dialect!r} is not supported; use SQLite or PostgreSQL")
    table = SourceEvent.__table__
    rows = []
    seen: set[str] = set()
    for rec in records:
        event_id = str(rec["id"])[:200]
        if event_id in seen:
            continue
        seen.add(event_id)
        rows.append({"kind": kind, "event_id": event_id, "ts": str(rec["ts"])[:32],
                     "service": (str(rec["service"])[:200] if rec.get("service") else None), "record": rec})
    stmt = module.insert(table).on_conflict_do_nothing(index_elements=[table.c.kind, table.c.event_id])
    result = session.execute(stmt.returning(table.c.id), rows)
    return len(result.fetchall())


def query(*, session: Session, kind: str, start: str | None = None, end: str | None = None,
          service: str | None = None, limit: int = 10_000) -> tuple[list[dict[str, Any]], bool]:
    """Records of ``kind`` with ``start <= ts < end`` (ISO Z strings), oldest first.

    Returns:
        (records, truncated): at most ``limit`` records, and whether more matched.
    """
    stmt = select(SourceEvent.record).where(SourceEvent.kind == kind)
    if start:
        stmt = stmt.where(SourceEvent.ts >= start)
    if end:
        stmt = stmt.where(SourceEvent.ts < end)
    if service:
        stmt = stmt.where(SourceEvent.service == service)
    rows = list(session.execute(stmt.order_by(SourceEvent.ts, SourceEvent.id).limit(limit + 1)).scalars())
    return [dict(r) for r in rows[:limit]], len(rows) > limit


def get(*, session: Session, kind: str, event_id: str) -> dict[str, Any] | None:
    """The record of ``kind`` with id ``event_id``, or None."""
    row = session.execute(
        select(SourceEvent.record).where(SourceEvent.kind == kind, SourceEvent.event_id == event_id)
    ).scalar_one_or_none()
    return dict(row) if row is not None else None
