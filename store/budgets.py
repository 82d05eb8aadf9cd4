"""Spend totals and budget records: what agent runs cost per investigation, domain and month;
admins' approvals; the threshold notices already sent. The rules live in pipeline/budgets.py.

Two views of the month's spend (a month is a calendar month in UTC):

* the **ledger** (``budget_spend``): every cost recorded on an agent run (store/agent_runs.py) is
  added at once to its month's global row and its domain's row, so the gates, which run before
  every new investigation and around every model call, read one row (:func:`ledger`);
* the **agent runs** themselves, summed by when each run started (:func:`month_spend`), for reports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import AgentRun, BudgetApproval, BudgetNotice, BudgetSpend, Investigation, utcnow

SCOPES = ("global", "domain")
#: The key of the global scope; domain scopes are keyed by the domain's name ("none" for no domain).
GLOBAL_KEY = "*"
NO_DOMAIN = "none"


def month_of(now: datetime) -> str:
    """``YYYY-MM`` of ``now`` in UTC."""
    return now.astimezone(UTC).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` month in UTC.

    Raises:
        ValueError: not a ``YYYY-MM`` month.
    """
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM, e.g. 2026-12") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _period(month: str) -> Any:
    start, end = month_bounds(month)
    return (AgentRun.started_at >= start) & (AgentRun.started_at < end)


def month_spend(*, session: Session, month: str, domain: str | None = None) -> float:
    """USD spent by agent runs started in ``month``: every domain, or only ``domain``
    (``"none"``: investigations without a domain)."""
    stmt = select(func.coalesce(func.sum(AgentRun.cost_usd), 0.0)).where(_period(month))
    if domain is not None:
        stmt = stmt.join(Investigation, Investigation.id == AgentRun.investigation_id)
        stmt = stmt.where(Investigation.domain.is_(None) if domain == NO_DOMAIN else Investigation.domain == domain)
    return float(session.scalar(stmt) or 0.0)


def spend_by_domain(*, session: Session, month: str) -> dict[str, float]:
    """Domain (``"none"`` for none) → USD spent by agent runs started in ``month``."""
    rows = session.execute(
        select(Investigation.domain, func.coalesce(func.sum(AgentRun.cost_usd), 0.0))
        .join(Investigation, Investigation.id == AgentRun.investigation_id)
        .where(_period(month)).group_by(Investigation.domain)).all()
    return {str(d or NO_DOMAIN): float(c) for d, c in rows}


def add_spend(*, session: Session, domain: str | None, usd: float, at: datetime | None = None) -> None:
    """Add ``usd`` to the ledger rows of ``at``'s month: the global one and ``domain``'s (``none``
    when it has none). An upsert that adds in SQL, so concurrent charges all count."""
    if usd <= 0:
        return
    now = at or utcnow()
    month = month_of(now)
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    table = BudgetSpend.__table__
    for scope, key in (("global", GLOBAL_KEY), ("domain", domain or NO_DOMAIN)):
        stmt = module.insert(table).values(scope=scope, key=key, month=month, usd=usd, updated_at=now)
        session.execute(stmt.on_conflict_do_update(
            index_elements=[table.c.scope, table.c.key, table.c.month],
            set_={"usd": table.c.usd + stmt.excluded.usd, "updated_at": now}))


def ledger(*, session: Session, scope: str, key: str, month: str) -> float:
    """USD charged to one budget in ``month`` (the ledger's row; 0 when nothing was charged)."""
    value = session.scalar(select(BudgetSpend.usd).where(BudgetSpend.scope == scope, BudgetSpend.key == key,
                                                         BudgetSpend.month == month))
    return float(value or 0.0)


def ledger_by_domain(*, session: Session, month: str) -> dict[str, float]:
    """Domain → USD charged in ``month`` (the ledger's domain rows)."""
    rows = session.execute(select(BudgetSpend.key, BudgetSpend.usd).where(
        BudgetSpend.scope == "domain", BudgetSpend.month == month)).all()
    return {str(k): float(u) for k, u in rows}


def investigation_totals(*, session: Session, investigation_id: str) -> dict[str, Any]:
    """Tokens (input, output, cache reads and writes) and USD of an investigation, in total and per
    agent run, from its agent runs."""
    runs = list(session.scalars(select(AgentRun).where(AgentRun.investigation_id == investigation_id)
                                .order_by(AgentRun.id)))
    per_run: list[dict[str, Any]] = [{"id": r.id, "agent": r.agent, "phase": r.phase, "model": r.model, "status": r.status,
                "tokens_in": r.tokens_in or 0, "tokens_out": r.tokens_out or 0,
                "cache_read_tokens": r.cache_read_tokens or 0, "cache_write_tokens": r.cache_write_tokens or 0,
                "cost_usd": round(float(r.cost_usd or 0.0), 8)} for r in runs]
    total: dict[str, Any] = {k: sum(int(r[k]) for r in per_run) for k in
             ("tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens")}
    total["cost_usd"] = round(sum(float(r["cost_usd"]) for r in per_run), 8)
    return {"investigation_id": investigation_id, "total": total, "runs": per_run}


def approve(*, session: Session, scope: str, key: str, month: str, extra_usd: float | None,
            approved_by: str | None, note: str | None = None) -> BudgetApproval:
    """Record an admin's approval (the caller commits).

    Raises:
        ValueError: unknown scope or a negative amount.
    """
    if scope not in SCOPES:
        raise ValueError(f"budget scope {scope!r} is unknown; use one of {', '.join(SCOPES)}")
    if extra_usd is not None and extra_usd <= 0:
        raise ValueError("the approved amount must be more than $0")
    month_bounds(month)
    row = BudgetApproval(scope=scope, key=key, month=month, extra_usd=extra_usd, approved_by=approved_by,
                         note=note, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def approvals(*, session: Session, scope: str, key: str, month: str) -> tuple[bool, float]:
    """(stop lifted for the month, extra USD approved) for one scope and month."""
    rows = session.execute(select(BudgetApproval.extra_usd).where(
        BudgetApproval.scope == scope, BudgetApproval.key == key, BudgetApproval.month == month)).all()
    lifted = any(r[0] is None for r in rows)
    return lifted, float(sum(r[0] for r in rows if r[0] is not None))


def approvals_list(*, session: Session, month: str) -> list[dict[str, Any]]:
    """Every approval of ``month``, oldest first."""
    rows = session.scalars(select(BudgetApproval).where(BudgetApproval.month == month).order_by(BudgetApproval.id))
    return [{"scope": r.scope, "key": r.key, "month": r.month, "extra_usd": r.extra_usd,
             "approved_by": r.approved_by, "note": r.note, "at": r.created_at.isoformat()} for r in rows]


def claim_notice(*, session: Session, scope: str, key: str, month: str, level: int, limit_usd: float,
                 spent_usd: float) -> bool:
    """Record that ``level`` % of a limit was announced; False when it already was (by anyone).

    The unique constraint settles a race between workers: exactly one of them sends the notice.
    """
    try:
        with session.begin_nested():
            session.add(BudgetNotice(scope=scope, key=key, month=month, level=level,
                                     limit_cents=int(round(limit_usd * 100)), spent_usd=spent_usd,
                                     created_at=utcnow()))
            session.flush()
    except IntegrityError:
        return False
    return True
