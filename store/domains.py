"""Per-domain configuration (Slack channel, Jira project, services, thresholds) and notes (domain memory)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import NotFound
from store.models import DomainConfig, DomainMemory, utcnow


def get(*, session: Session, domain: str) -> dict[str, Any]:
    """The configuration of ``domain``.

    Raises:
        NotFound: no configuration was stored for it.
    """
    row = session.get(DomainConfig, domain)
    if row is None:
        raise NotFound(f"no configuration for domain {domain!r}; store one with store.domains.upsert")
    return dict(row.config or {})


def upsert(*, session: Session, domain: str, config: dict[str, Any], merge: bool = True) -> dict[str, Any]:
    """Create or update ``domain``'s configuration; with ``merge`` keys not given are kept.

    Returns:
        The stored configuration.
    """
    if not domain or not domain.strip():
        raise ValueError("a domain needs a name, e.g. 'Bookings/Server/scheduler'")
    row = session.get(DomainConfig, domain)
    if row is None:
        row = DomainConfig(domain=domain, config={})
        session.add(row)
    row.config = {**(row.config or {}), **config} if merge else dict(config)
    row.updated_at = utcnow()
    session.flush()
    return dict(row.config)


def list_all(*, session: Session) -> dict[str, dict[str, Any]]:
    """Every stored domain and its configuration, by name."""
    return {r.domain: dict(r.config or {}) for r in session.scalars(select(DomainConfig).order_by(DomainConfig.domain))}


#: Domain notes above this many characters are refused (they go into every investigation's context).
MEMORY_MAX_CHARS = 32_000


def get_memory(*, session: Session, domain: str) -> dict[str, Any]:
    """A domain's notes: ``{domain, text, updated_by, updated_at}`` (``text`` empty when none were written)."""
    row = session.get(DomainMemory, domain)
    if row is None:
        return {"domain": domain, "text": "", "updated_by": None, "updated_at": None}
    return {"domain": domain, "text": row.text or "", "updated_by": row.updated_by,
            "updated_at": row.updated_at.isoformat() if row.updated_at else None}


def set_memory(*, session: Session, domain: str, text: str, user: str | None = None) -> dict[str, Any]:
    """Replace a domain's notes (empty text clears them); returns :func:`get_memory`'s answer.

    Raises:
        ValueError: no domain name, or the text is longer than :data:`MEMORY_MAX_CHARS` (the message says so).
    """
    if not domain or not domain.strip():
        raise ValueError("a domain needs a name, e.g. 'payments'")
    if len(text) > MEMORY_MAX_CHARS:
        raise ValueError(f"domain notes are {len(text)} characters; keep them under {MEMORY_MAX_CHARS} "
                         "(they go into every investigation of the domain)")
    row = session.get(DomainMemory, domain)
    if row is None:
        row = DomainMemory(domain=domain, text="")
        session.add(row)
    row.text = text.replace("\r\n", "\n").strip()
    row.updated_by = user
    row.updated_at = utcnow()
    session.flush()
    return get_memory(session=session, domain=domain)


def memory_text(*, session: Session, domain: str | None) -> str | None:
    """The notes to give an investigation of ``domain`` (agents' context, the report), or None when there are none."""
    if not domain:
        return None
    row = session.get(DomainMemory, domain)
    return (row.text or None) if row is not None else None
