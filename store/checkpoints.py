"""Phase checkpoints: the durable memory of which phases of an investigation are done."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import PhaseCheckpoint, utcnow


def get(*, session: Session, investigation_id: str, phase: str, round: int = 0) -> PhaseCheckpoint | None:
    """The checkpoint of ``phase`` in ``round``, or None when it never started."""
    stmt = select(PhaseCheckpoint).where(
        PhaseCheckpoint.investigation_id == investigation_id,
        PhaseCheckpoint.phase == phase,
        PhaseCheckpoint.round == round,
    )
    return session.scalars(stmt).first()


def start(*, session: Session, investigation_id: str, phase: str, round: int = 0) -> PhaseCheckpoint:
    """Mark ``phase`` running and count one more attempt at it.

    Committed by the caller *before* the phase runs, so ``attempts`` counts executions even
    when the worker dies in the middle of one.

    Raises:
        ValueError: the phase is already done (the machine must never redo a finished phase).
    """
    cp = get(session=session, investigation_id=investigation_id, phase=phase, round=round)
    if cp is None:
        cp = PhaseCheckpoint(investigation_id=investigation_id, phase=phase, round=round, attempts=0)
        session.add(cp)
    elif cp.status == "done":
        raise ValueError(f"phase {phase} round {round} of {investigation_id} is already done; not redoing it")
    cp.status = "running"
    cp.attempts = (cp.attempts or 0) + 1
    cp.started_at = utcnow()
    cp.finished_at = None
    cp.error = None
    session.flush()
    return cp


def finish(
    *,
    session: Session,
    investigation_id: str,
    phase: str,
    round: int = 0,
    output: Any = None,
    output_ref: str | None = None,
) -> PhaseCheckpoint:
    """Mark ``phase`` done with its output (inline when small, else an artifact key)."""
    cp = get(session=session, investigation_id=investigation_id, phase=phase, round=round)
    if cp is None:
        cp = PhaseCheckpoint(investigation_id=investigation_id, phase=phase, round=round, attempts=1)
        session.add(cp)
    cp.status = "done"
    cp.output = output
    cp.output_ref = output_ref
    cp.finished_at = utcnow()
    session.flush()
    return cp


def fail(*, session: Session, investigation_id: str, phase: str, round: int = 0, error: str) -> None:
    """Mark ``phase`` failed with its error (a later attempt may still run it again)."""
    cp = get(session=session, investigation_id=investigation_id, phase=phase, round=round)
    if cp is not None:
        cp.status = "failed"
        cp.error = error
        cp.finished_at = utcnow()
        session.flush()


def list_for(*, session: Session, investigation_id: str) -> list[PhaseCheckpoint]:
    """Every checkpoint of an investigation, in the order they were started."""
    stmt = (
        select(PhaseCheckpoint)
        .where(PhaseCheckpoint.investigation_id == investigation_id)
        .order_by(PhaseCheckpoint.id)
    )
    return list(session.scalars(stmt))


def to_dict(cp: PhaseCheckpoint) -> dict[str, Any]:
    """A JSON-serialisable view of a checkpoint (without its output)."""
    return {
        "phase": cp.phase,
        "round": cp.round,
        "status": cp.status,
        "attempts": cp.attempts,
        "output_ref": cp.output_ref,
        "error": cp.error,
        "started_at": cp.started_at.isoformat().replace("+00:00", "Z") if cp.started_at else None,
        "finished_at": cp.finished_at.isoformat().replace("+00:00", "Z") if cp.finished_at else None,
    }
