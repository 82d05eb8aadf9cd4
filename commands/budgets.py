"""See and approve budgets, wherever the ask came from (the admin API, `pm budgets`)."""

from __future__ import annotations

from typing import Any

from commands.errors import BadRequest
from pipeline import budgets as rules
from store import budgets as spend


def show(*, runtime: Any) -> dict[str, Any]:
    """This month's budgets: global, per domain, thresholds and approvals (pipeline.budgets.status)."""
    with runtime.session() as session:
        return rules.status(session=session, policy=runtime.budgets.policy)


def approve(*, runtime: Any, body: Any, by: str | None) -> dict[str, Any]:
    """Approve spending past a monthly budget: ``{"scope": "global"|"domain", "domain": name,
    "usd": amount|null, "note": text}``. Without ``usd`` the stop is lifted for the rest of the month.

    Raises:
        BadRequest: an unknown scope, no domain for a domain scope, or an amount that is not > 0.

    Returns:
        The scope's state after the approval.
    """
    if not isinstance(body, dict):
        raise BadRequest('send {"scope": "domain", "domain": "payments", "usd": 100} or {"scope": "global"}')
    scope = body.get("scope")
    if scope not in spend.SCOPES:
        raise BadRequest(f"scope must be one of {', '.join(spend.SCOPES)}")
    domain = body.get("domain")
    if scope == "domain" and (not isinstance(domain, str) or not domain.strip() or len(domain) > 200):
        raise BadRequest('a domain approval names the domain: {"scope": "domain", "domain": "payments"}')
    usd = body.get("usd")
    if usd is not None and (isinstance(usd, bool) or not isinstance(usd, int | float) or not 0 < usd <= 1e7):
        raise BadRequest("usd must be an amount above 0 (USD), or left out to lift the stop for the month")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise BadRequest("note must be text of at most 2000 characters")
    with runtime.session() as session:
        state = rules.approve(session=session, policy=runtime.budgets.policy, scope=scope,
                              key=domain.strip() if isinstance(domain, str) else None, by=by,
                              usd=float(usd) if usd is not None else None, note=note)
        session.commit()
    return {"approved": True, "by": by, "budget": state.to_dict()}


def usage(*, runtime: Any, investigation_id: str) -> dict[str, Any]:
    """Tokens and USD of one investigation, in total and per agent run, with the router's choices."""
    from store import model_choices

    with runtime.session() as session:
        out = spend.investigation_totals(session=session, investigation_id=investigation_id)
        out["model_choices"] = model_choices.list_for(session=session, investigation_id=investigation_id)
    return out
