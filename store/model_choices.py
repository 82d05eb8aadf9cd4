"""The model router's audit trail: every choice of model, with its reason (agents/router.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import ModelChoice, utcnow


def record(*, session: Session, investigation_id: str, choice: dict[str, Any], phase: str | None = None) -> ModelChoice:
    """Store one routing decision (``agents.router.Choice.to_dict()``); the caller commits."""
    row = ModelChoice(
        investigation_id=investigation_id, agent=str(choice.get("agent") or "?")[:64], phase=phase,
        tier=str(choice.get("tier") or "?")[:16], model=str(choice.get("model") or "?")[:120],
        reason=str(choice.get("reason") or ""), escalated=bool(choice.get("escalated")),
        stepped_down=bool(choice.get("stepped_down")), confidence=choice.get("confidence"),
        budget_left=choice.get("budget_left"), created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def list_for(*, session: Session, investigation_id: str) -> list[dict[str, Any]]:
    """Every choice made for an investigation, oldest first, as dicts."""
    rows = session.scalars(select(ModelChoice).where(ModelChoice.investigation_id == investigation_id)
                           .order_by(ModelChoice.id))
    return [{"agent": r.agent, "phase": r.phase, "tier": r.tier, "model": r.model, "reason": r.reason,
             "escalated": r.escalated, "stepped_down": r.stepped_down, "confidence": r.confidence,
             "budget_left": r.budget_left, "at": r.created_at.isoformat()} for r in rows]
