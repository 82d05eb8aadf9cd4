"""Agent runs: who worked on which phase, with which model, at what cost, calling which tools."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store import budgets
from store.errors import NotFound
from store.models import AgentRun, Investigation, utcnow


def start(
    *, session: Session, investigation_id: str, agent: str, phase: str, model: str | None = None
) -> AgentRun:
    """Record that ``agent`` started working on ``phase``."""
    run = AgentRun(
        investigation_id=investigation_id, agent=agent, phase=phase, model=model, status="running",
        tokens_in=0, tokens_out=0, cost_usd=0.0, tool_calls=[], started_at=utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def abandon_running(*, session: Session, investigation_id: str, phase: str) -> int:
    """Close the runs of ``phase`` still marked running as ``abandoned`` (their worker died or lost
    its lease); the caller holds the investigation's lease and is about to run the phase again.

    Returns:
        How many were closed.
    """
    now = utcnow()
    result = session.execute(
        update(AgentRun)
        .where(AgentRun.investigation_id == investigation_id, AgentRun.phase == phase, AgentRun.status == "running")
        .values(status="abandoned", finished_at=now,
                error="its worker died or lost the investigation's lease; the phase was run again")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def finish(
    *,
    session: Session,
    run_id: int,
    status: str = "done",
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: float = 0.0,
    tool_calls: list[dict[str, Any]] | None = None,
    output_ref: str | None = None,
    trace_ref: str | None = None,
    error: str | None = None,
) -> AgentRun:
    """Close a run and add its tokens and cost to its investigation's totals.

    Raises:
        NotFound: no such run.
    """
    run = session.get(AgentRun, run_id)
    if run is None:
        raise NotFound(f"no agent run {run_id}")
    now = utcnow()
    run.status = status
    run.tokens_in = tokens_in
    run.tokens_out = tokens_out
    run.cost_usd = cost_usd
    run.tool_calls = list(tool_calls or [])
    run.output_ref = output_ref
    run.trace_ref = trace_ref
    run.error = error
    run.finished_at = now
    run.duration_ms = int((now - run.started_at).total_seconds() * 1000)
    inv = session.get(Investigation, run.investigation_id)
    if inv is not None:
        inv.tokens_in = (inv.tokens_in or 0) + tokens_in
        inv.tokens_out = (inv.tokens_out or 0) + tokens_out
        inv.cost_usd = (inv.cost_usd or 0.0) + cost_usd
        budgets.add_spend(session=session, domain=inv.domain, usd=cost_usd, at=now)
    session.flush()
    return run


def list_for(*, session: Session, investigation_id: str) -> list[AgentRun]:
    """Every run of an investigation, oldest first."""
    stmt = select(AgentRun).where(AgentRun.investigation_id == investigation_id).order_by(AgentRun.id)
    return list(session.scalars(stmt))


def add_usage(
    *,
    session: Session,
    run_id: int,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    cost_usd: float = 0.0,
) -> tuple[float, float | None]:
    """Add one model call's usage to a run and to its investigation's totals, as it happens.

    Increments in SQL (``col = col + n``), so calls charged at once from parallel tool calls or
    threads all count. ``tokens_in`` is every input token (fresh, cache reads and writes); the
    cache counts say how many of them came from / went to the prompt cache.

    Raises:
        NotFound: no such run.

    Returns:
        The investigation's cost so far and its budget (None when it has none).
    """
    run = session.get(AgentRun, run_id)
    if run is None:
        raise NotFound(f"no agent run {run_id}")
    session.execute(
        update(AgentRun).where(AgentRun.id == run_id).values(
            tokens_in=AgentRun.tokens_in + tokens_in, tokens_out=AgentRun.tokens_out + tokens_out,
            cache_read_tokens=AgentRun.cache_read_tokens + cache_read_tokens,
            cache_write_tokens=AgentRun.cache_write_tokens + cache_write_tokens,
            cost_usd=AgentRun.cost_usd + cost_usd)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Investigation).where(Investigation.id == run.investigation_id).values(
            tokens_in=Investigation.tokens_in + tokens_in, tokens_out=Investigation.tokens_out + tokens_out,
            cost_usd=Investigation.cost_usd + cost_usd, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    row = session.execute(select(Investigation.cost_usd, Investigation.budget_usd, Investigation.domain)
                          .where(Investigation.id == run.investigation_id)).one()
    budgets.add_spend(session=session, domain=row[2], usd=cost_usd)
    session.expire(run)
    return float(row[0] or 0.0), (None if row[1] is None else float(row[1]))


def close(*, session: Session, run_id: int, status: str = "done", error: str | None = None) -> None:
    """Mark a run charged with :func:`add_usage` finished, leaving its totals as they are."""
    run = session.get(AgentRun, run_id)
    if run is None or run.status != "running":
        return
    now = utcnow()
    run.status, run.error, run.finished_at = status, error, now
    run.duration_ms = int((now - run.started_at).total_seconds() * 1000)
    session.flush()
