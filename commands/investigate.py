"""Start, inspect, cancel and re-run investigations, wherever the ask came from.

Each function takes the pipeline runtime keyword-only, records what it does
in the store, and hands work to the queue; none of them runs the investigation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from commands.errors import BadRequest, BudgetStopped, NotAllowed, UnknownTrigger
from commands.requests import InvestigationRequest, Origin
from commands.similar import find_similar_open
from pipeline.errors import BudgetRefused
from store import investigations, outbox
from store.errors import NotFound
from store.models import Investigation

OPEN_STATUSES = ("QUEUED", "RUNNING")


@dataclass(frozen=True)
class StartResult:
    """What :func:`start` did: a new investigation, or an attachment to an open one."""

    investigation_id: str
    created: bool


def start(*, runtime: Any, request: InvestigationRequest) -> StartResult:
    """Record an investigation and enqueue it, or attach a repeat to the open one.

    A request whose fingerprint matches an investigation that is still open is
    not investigated twice: an ``attached`` progress event goes to the open one.

    Raises:
        UnknownTrigger: the ticket / alert it names does not exist (:func:`check_trigger`); nothing
            was recorded.

    Returns:
        StartResult with the id of the new (or the open) investigation.
    """
    check_trigger(runtime=runtime, request=request)
    with runtime.session() as session:
        result, attach = open_or_attach(session=session, request=request)
        if attach is not None:
            outbox.append(session=session, investigation_id=result.investigation_id, kind="attached", payload=attach)
        session.commit()
    if result.created:
        runtime.enqueue(result.investigation_id, priority=request.priority)
    return result


def check_trigger(*, runtime: Any, request: InvestigationRequest) -> None:
    """Look up the ticket or alert id a person named before anything is recorded for it.

    Only a key or id typed by someone is looked up (a Jira webhook's own ticket and an alert a
    webhook carries in full are not: :func:`pipeline.tools.needs_lookup`); free text never is.
    A source that cannot answer now lets the request through: the investigation degrades (or
    says what failed) as before.

    Raises:
        UnknownTrigger: its source answered "not found"; the message says to check the key or to
            put the words in quotes to investigate them as free text.
    """
    ask = getattr(runtime, "missing_trigger", None)
    if ask is None:
        return
    message = ask(trigger=request.trigger, origin=request.origin.to_dict(), sources=request.sources)
    if message:
        raise UnknownTrigger(message)


def start_many(*, runtime: Any, requests: list[InvestigationRequest],
               before_commit: Callable[[Any, list[StartResult]], None] | None = None) -> list[StartResult]:
    """:func:`start` for a burst of requests: one transaction for all of them, then the enqueues.

    The same outcome as calling :func:`start` for each request in order (a fingerprint already
    open, or opened earlier in the batch, is attached to), at a fraction of the statements: new
    investigations are inserted with :func:`store.investigations.create_many`. When another writer
    races the batch (an id or an open fingerprint taken meanwhile), the batch is rolled back and
    each request goes through :func:`start` on its own.

    Args:
        before_commit: ``fn(session, results)``, run in the batch's transaction just before it
            commits (the Slack front door links its inbound deliveries there: one commit for both).
            Not run when the batch falls back to one :func:`start` per request.

    Returns:
        One StartResult per request, in order.
    """
    if not requests:
        return []
    try:
        with runtime.session() as session:
            open_by_fp = open_by_fingerprint(session, {r.fingerprint for r in requests if r.fingerprint})
            slots: list[int | str] = []  # index into new_specs, or the open investigation attached to
            new_specs: list[dict[str, Any]] = []
            batch_fp: dict[str, int] = {}
            for request in requests:
                fp = request.fingerprint
                if fp and fp in open_by_fp:
                    slots.append(open_by_fp[fp])
                elif fp and fp in batch_fp:
                    slots.append(batch_fp[fp])
                else:
                    if fp:
                        batch_fp[fp] = len(new_specs)
                    slots.append(len(new_specs))
                    new_specs.append(_spec(request))
            caps: dict[tuple[str | None, str], float | None] = {}  # one gate per domain and priority
            for spec in new_specs:
                gate = (spec["domain"], spec["priority"])
                if gate not in caps:
                    caps[gate] = check_budget(session, domain=gate[0], priority=gate[1])
                spec["budget_usd"] = caps[gate]
            ids = investigations.create_many(session=session, specs=new_specs)
            results: list[StartResult] = []
            first_use: set[int] = set()
            attached: list[tuple[str, str, dict[str, Any] | None]] = []
            for request, slot in zip(requests, slots, strict=True):
                if isinstance(slot, int) and slot not in first_use:
                    first_use.add(slot)
                    results.append(StartResult(ids[slot], created=True))
                    continue
                inv_id = ids[slot] if isinstance(slot, int) else slot
                results.append(StartResult(inv_id, created=False))
                attached.append((inv_id, "attached", {"origin": request.origin.to_dict(), "trigger": request.trigger}))
            outbox.append_many(session=session, events=attached)
            if before_commit is not None:
                before_commit(session, results)
            session.commit()
    except IntegrityError:
        return [start(runtime=runtime, request=request) for request in requests]
    for request, result in zip(requests, results, strict=True):
        if result.created:
            runtime.enqueue(result.investigation_id, priority=request.priority)
    return results


def _spec(request: InvestigationRequest) -> dict[str, Any]:
    return dict(trigger=request.trigger, origin=request.origin.to_dict(), mode=request.mode,
                domain=request.domain, sources=request.sources, priority=request.priority,
                fingerprint=request.fingerprint, requested_by=request.requested_by)


def check_budget(session: Any, *, domain: str | None, priority: str) -> float | None:
    """The budgets' start gate (pipeline/budgets.py), when the session's runtime has budgets.

    The runtime's sessions carry its budgets in ``session.info`` so every front door that opens an
    investigation (CLI, Slack, Jira and alert webhooks, the API) passes the same gate.

    Raises:
        BudgetStopped: a monthly budget is spent (or only P1 may start); the message says what to do.

    Returns:
        The cap to give the new investigation (PM_BUDGET_INVESTIGATION_USD; None: no cap or no budgets).
    """
    budgets = getattr(session, "info", {}).get("budgets")
    if budgets is None:
        return None
    try:
        budgets.gate(session=session, domain=domain, priority=priority)
    except BudgetRefused as exc:
        raise BudgetStopped(str(exc)) from None
    return float(budgets.policy.investigation_usd) or None


def open_by_fingerprint(session: Any, fingerprints: set[str]) -> dict[str, str]:
    """fingerprint -> id of its open investigation (the newest), for many fingerprints in one query."""
    if not fingerprints:
        return {}
    found = session.execute(
        select(Investigation.fingerprint, Investigation.id)
        .where(Investigation.fingerprint.in_(fingerprints), Investigation.status.in_(OPEN_STATUSES))
        .order_by(Investigation.created_at)
    )
    return {str(fp): inv_id for fp, inv_id in found}  # the newest wins, as in find_open_by_fingerprint


def open_or_attach(
    *, session: Any, request: InvestigationRequest, open_by_fp: dict[str, str] | None = None
) -> tuple[StartResult, dict[str, Any] | None]:
    """The rule behind :func:`start`, inside the caller's transaction (no commit, no enqueue).

    A fingerprint with an open investigation is attached to it; so is an alert that reads like the
    alert of an open investigation on the same service (:mod:`commands.similar`); otherwise a new
    investigation is created. The database's partial unique index on open fingerprints settles a race with
    another writer (create's savepoint rolls back only this insert, and the winner is attached to).

    Args:
        session: the caller's session; the caller commits and enqueues what was created.
        request: the normalised request.
        open_by_fp: fingerprint -> open investigation id, when the caller looked them up for a
            whole batch (then no per-request query is made); it is updated with what opens here.

    Raises:
        BudgetStopped: a new investigation would be needed and a budget refuses it (attaching to an
            open one is always allowed).

    Returns:
        The result, and the ``attached`` event payload to append when it was attached (else None).
    """
    fp = request.fingerprint
    if fp and open_by_fp is not None:
        existing = open_by_fp.get(fp)
    elif fp:
        found = investigations.find_open_by_fingerprint(session=session, fingerprint=fp)
        existing = found.id if found is not None else None
    else:
        existing = None
    similar = (find_similar_open(session=session, trigger=request.trigger, origin=request.origin.to_dict())
               if existing is None else None)
    if similar is not None:
        if fp and open_by_fp is not None:
            open_by_fp[fp] = similar[0]
        return StartResult(similar[0], created=False), {
            "origin": request.origin.to_dict(), "trigger": request.trigger,
            "similar": {"investigation_id": similar[0], "title_similarity": similar[1]}}
    if existing is None:
        cap = check_budget(session, domain=request.domain, priority=request.priority)
        try:
            # create() inserts under its own savepoint and re-raises a conflict that is not its id
            # (here: another open investigation with this fingerprint). No savepoint of ours around
            # it: on SQLite a read inside an open transaction would pin a snapshot that a later
            # write could not upgrade from while another connection writes.
            inv = investigations.create(
                session=session,
                trigger=request.trigger,
                origin=request.origin.to_dict(),
                mode=request.mode,
                domain=request.domain,
                sources=request.sources,
                priority=request.priority,
                fingerprint=fp,
                requested_by=request.requested_by,
                budget_usd=cap,
            )
        except IntegrityError:
            winner = investigations.find_open_by_fingerprint(session=session, fingerprint=fp or "")
            if winner is None:
                raise
            existing = winner.id
        else:
            if fp and open_by_fp is not None:
                open_by_fp[fp] = inv.id
            return StartResult(inv.id, created=True), None
    if fp and open_by_fp is not None:
        open_by_fp[fp] = existing
    return StartResult(existing, created=False), {"origin": request.origin.to_dict(), "trigger": request.trigger}


def status(*, runtime: Any, investigation_id: str) -> dict[str, Any]:
    """The investigation as a dict (status, phase, verdict, ...).

    Raises:
        BadRequest: when no investigation has that id.
    """
    with runtime.session() as session:
        try:
            inv = investigations.get(session=session, investigation_id=investigation_id)
        except NotFound:
            raise BadRequest(
                f"no investigation {investigation_id!r}; check the id (it is in the investigation's status "
                "message, e.g. inv-2026-02-21-143000-x)"
            ) from None
        return investigations.to_dict(inv)


#: ``fn(investigation dict) -> None`` when the caller may act on it, else the refusal to show them.
Authorise = Callable[[dict[str, Any]], str | None]


def _authorise(inv_dict: dict[str, Any], user: str | None, admins: frozenset[str], what: str,
               authorise: Authorise | None = None) -> None:
    if user is None:
        return
    if authorise is not None:  # the front door's own policy (Slack: docs/slack.md, who may act)
        refusal = authorise(inv_dict)
        if refusal:
            raise NotAllowed(refusal)
        return
    if user == inv_dict.get("requested_by") or user in admins:
        return
    raise NotAllowed(f"only the requester or an admin may {what} {inv_dict['id']}")


def cancel(*, runtime: Any, investigation_id: str, user: str | None, admins: frozenset[str] = frozenset(),
           authorise: Authorise | None = None, by: str | None = None) -> None:
    """Ask a running investigation to stop at its next phase boundary.

    ``user=None`` means a trusted local caller (the CLI).

    Args:
        authorise: the front door's policy (replaces "the requester or an admin").
        by: who cancels, as the thread and the ticket should say it (default: ``user``).

    Raises:
        BadRequest: unknown id or already finished. NotAllowed: the policy refuses.
    """
    current = status(runtime=runtime, investigation_id=investigation_id)
    _authorise(current, user, admins, "cancel", authorise)
    if current["status"] not in OPEN_STATUSES:
        raise BadRequest(f"{investigation_id} is already {current['status']}; nothing to cancel")
    with runtime.session() as session:
        investigations.request_cancel(session=session, investigation_id=investigation_id, by=by or user)
        session.commit()


def rerun(
    *,
    runtime: Any,
    investigation_id: str,
    mode: str = "deep",
    user: str | None,
    admins: frozenset[str] = frozenset(),
    origin: Origin | None = None,
    authorise: Authorise | None = None,
) -> StartResult:
    """Start a fresh investigation with the same trigger and sources in another mode.

    Raises:
        BadRequest: unknown id. NotAllowed: not the requester or an admin.
    """
    current = status(runtime=runtime, investigation_id=investigation_id)
    _authorise(current, user, admins, "re-run", authorise)
    request = InvestigationRequest(
        trigger=current["trigger"],
        origin=origin or Origin(**current["origin"]),
        mode=mode,
        domain=current.get("domain"),
        priority=current.get("priority") or "P2",
        requested_by=user or current.get("requested_by"),
        sources=current.get("sources") or {},
    )
    return start(runtime=runtime, request=request)
