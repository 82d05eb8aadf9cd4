"""Per-domain configuration (Slack channel, Jira project, services, thresholds)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import NotFound
from store.models import DomainConfig, utcnow


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
