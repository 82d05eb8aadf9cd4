"""What the admin REST API asks of the product, independent of HTTP (bot/http/api_routes.py serves it).

Shapes follow the cloud design (seed 000, "API Design" and "Cost Management"): the 202 answer
``{investigation_id, status, status_url}``, the status view (phase, phase number, hypothesis
iteration, agents done/running, elapsed, token usage), the report in three formats, the traces and
the cost breakdown.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from commands import investigate
from commands.callbacks import Resolver, check_callback_url
from commands.errors import BadRequest
from commands.requests import MODES, PRIORITIES, InvestigationRequest, Origin
from pipeline.phases import ALL_PHASES
from store import agent_runs, checkpoints, domains, investigations, model_choices
from store.db import read_with_retry
from store.errors import NotFound
from store.models import INVESTIGATION_STATUSES, AgentRun, InboundDelivery, Investigation, Publication, utcnow

if TYPE_CHECKING:  # psycopg is imported only where PostgreSQL is read on the event loop
    from store.async_reads import AsyncReader, CompiledRead

IDEMPOTENCY_SOURCE = "api"
BODY_FIELDS = {"ticket_id", "alert_id", "text", "mode", "domain", "priority", "publish", "callback_url"}
MAX_BATCH = 100
MAX_PAGE = 200
#: Phases counted by the status view's ``phase`` number: QUEUED is 0, INITIALIZING 1 ... PUBLISHING 10.
NUMBERED_PHASES = ALL_PHASES[:-1]
_ESTIMATE_MIN = {"fast": 2, "balanced": 5, "deep": 15}


class Conflict(BadRequest):
    """The Idempotency-Key was used before with a different body (answer 422)."""


class Missing(BadRequest):
    """No such investigation / domain (answer 404)."""


def status_url(investigation_id: str) -> str:
    """The status path of an investigation."""
    return f"/api/v1/investigations/{investigation_id}"


def parse_investigate(
    body: Any, *, subject: str, allow_private: bool = False, resolve: Resolver | None = None
) -> tuple[InvestigationRequest, dict[str, Any]]:
    """The design's ``POST /api/v1/investigate`` body as a request.

    Args:
        body: the parsed JSON body.
        subject: the caller (stored as ``requested_by``).
        allow_private: PM_CALLBACK_ALLOW_PRIVATE.
        resolve: host resolver for the SSRF guard (tests pass their own).

    Raises:
        BadRequest: an unknown field, not exactly one of ticket_id / alert_id / text, a bad mode,
            priority, publish or callback_url.

    Returns:
        The request and the delivery options ``{"publish": ..., "callback_url": ...}``.
    """
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object, e.g. {\"ticket_id\": \"SCHED-45895\"}")
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(BODY_FIELDS))}")
    given = [k for k in ("ticket_id", "alert_id", "text") if body.get(k) not in (None, "")]
    if len(given) != 1:
        raise BadRequest("send exactly one of ticket_id, alert_id or text")
    value = body[given[0]]
    if not isinstance(value, str) or len(value) > 4000:
        raise BadRequest(f"{given[0]} must be a string of at most 4000 characters")
    for name, allowed in (("mode", MODES), ("priority", PRIORITIES)):
        if name in body and body[name] not in allowed:
            raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    domain = body.get("domain")
    if domain is not None and (not isinstance(domain, str) or not domain.strip() or len(domain) > 200):
        raise BadRequest("domain must be a non-empty string of at most 200 characters")
    publish = body.get("publish") or {}
    if not isinstance(publish, dict) or set(publish) - {"jira", "slack"}:
        raise BadRequest('publish must be an object like {"jira": true, "slack": "#channel"}')
    if "jira" in publish and not isinstance(publish["jira"], bool):
        raise BadRequest("publish.jira must be true or false")
    if "slack" in publish and not (isinstance(publish["slack"], str) and publish["slack"].strip()):
        raise BadRequest("publish.slack must be a channel name or id")
    callback = body.get("callback_url")
    if callback is not None:
        check_callback_url(callback, allow_private=allow_private, **({"resolve": resolve} if resolve else {}))
    trigger = {{"ticket_id": "ticket", "alert_id": "alert", "text": "text"}[given[0]]: value.strip()}
    origin = Origin(
        kind="api",
        channel=publish.get("slack"),
        jira_key=trigger.get("ticket") if publish.get("jira") else None,
        user=subject,
        source="api",
        callback_url=callback,
    )
    request = InvestigationRequest(
        trigger=trigger, origin=origin, mode=body.get("mode", "balanced"), domain=domain,
        priority=body.get("priority", "P2"), requested_by=subject,
    )
    return request, {"publish": publish, "callback_url": callback}


def _accepted(inv_id: str, status: str, mode: str, *, replayed: bool = False) -> dict[str, Any]:
    return {"investigation_id": inv_id, "status": status, "estimated_duration_minutes": _ESTIMATE_MIN[mode],
            "status_url": status_url(inv_id), "replayed": replayed}


def submit(
    *, runtime: Any, body: Any, subject: str, idempotency_key: str | None = None,
    allow_private: bool = False, resolve: Resolver | None = None,
) -> dict[str, Any]:
    """Start an investigation for an API caller (or answer the earlier one for a repeated key).

    With an ``Idempotency-Key`` the key (per caller) and a hash of the body are stored with the
    new investigation's id in the same transaction; the same key and body later answer the same
    investigation (``replayed: true``), and nothing is enqueued again.

    Raises:
        BadRequest: the body is invalid (see :func:`parse_investigate`).
        UnknownTrigger: the ticket / alert id is unknown to its source (a BadRequest; nothing stored).
        Conflict: the key was used with a different body.

    Returns:
        The design's 202 body.
    """
    request, options = parse_investigate(body, subject=subject, allow_private=allow_private, resolve=resolve)
    if not idempotency_key:
        result = investigate.start(runtime=runtime, request=request)
        return _accepted(result.investigation_id, "QUEUED", request.mode)
    if len(idempotency_key) > 150:
        raise BadRequest("Idempotency-Key must be at most 150 characters")
    investigate.check_trigger(runtime=runtime, request=request)  # an unknown ticket / alert: 400, nothing stored
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    key = f"{subject}|{idempotency_key}"
    for _attempt in range(3):
        with runtime.session() as session:
            earlier = session.scalars(select(InboundDelivery).where(
                InboundDelivery.source == IDEMPOTENCY_SOURCE, InboundDelivery.delivery_key == key)).first()
            if earlier is not None:
                return _replay(session, earlier, digest, request.mode)
            result, attach = investigate.open_or_attach(session=session, request=request)
            if attach is not None:
                from store import outbox

                outbox.append(session=session, investigation_id=result.investigation_id, kind="attached",
                              payload=attach)
            session.add(InboundDelivery(source=IDEMPOTENCY_SOURCE, delivery_key=key, status="processed",
                                        investigation_id=result.investigation_id,
                                        payload={"sha256": digest, **options}))
            try:
                session.commit()
            except IntegrityError:  # the same key raced in from another request: answer its result
                session.rollback()
                continue
        if result.created:
            runtime.enqueue(result.investigation_id, priority=request.priority)
        return _accepted(result.investigation_id, "QUEUED", request.mode)
    raise BadRequest("the Idempotency-Key is in use by a concurrent request; retry")


def _replay(session: Any, earlier: InboundDelivery, digest: str, mode: str) -> dict[str, Any]:
    if (earlier.payload or {}).get("sha256") != digest:
        raise Conflict("this Idempotency-Key was used with a different body; use a new key for a new request")
    inv = session.get(Investigation, earlier.investigation_id) if earlier.investigation_id else None
    if inv is None:
        raise Conflict("the investigation of this Idempotency-Key is gone; use a new key")
    return _accepted(inv.id, inv.status, mode, replayed=True)


def submit_batch(*, runtime: Any, body: Any, subject: str, allow_private: bool = False,
                 resolve: Resolver | None = None) -> dict[str, Any]:
    """``POST /api/v1/investigate/batch``: ``{"investigations": [<investigate body>, ...]}``.

    Every item is validated before any is started (all or nothing for bad input); then they are
    started together with :func:`commands.investigate.start_many`.

    Raises:
        BadRequest: not a list of 1–100 items, or an item is invalid (its index is named).

    Returns:
        ``{"investigations": [<202 body>, ...]}`` in order.
    """
    items = body.get("investigations") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise BadRequest(f'send {{"investigations": [...]}} with 1 to {MAX_BATCH} investigate bodies')
    requests = []
    for i, item in enumerate(items):
        try:
            requests.append(parse_investigate(item, subject=subject, allow_private=allow_private,
                                              resolve=resolve)[0])
        except BadRequest as exc:
            raise BadRequest(f"investigations[{i}]: {exc}") from None
    results = investigate.start_many(runtime=runtime, requests=requests)
    return {"investigations": [_accepted(r.investigation_id, "QUEUED", q.mode)
                               for r, q in zip(results, requests, strict=True)]}


def _parse_time(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 time such as 2026-02-21T14:30:00Z") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{name} needs a time zone, e.g. 2026-02-21T14:30:00Z")
    return parsed


def _cursor(inv: Investigation) -> str:
    raw = f"{inv.created_at.isoformat()}|{inv.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, inv_id = raw.partition("|")
        return datetime.fromisoformat(when), inv_id
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this API returned; start again without it") from None


def list_page(
    *, runtime: Any, status: str | None = None, domain: str | None = None, since: str | None = None,
    until: str | None = None, limit: int = 50, cursor: str | None = None,
) -> dict[str, Any]:
    """Investigations newest first, keyset-paginated (stable while new ones arrive).

    Raises:
        BadRequest: unknown status, bad time, limit outside 1–200, or a foreign cursor.

    Returns:
        ``{"items": [summary, ...], "next_cursor": str | None}``.
    """
    if status is not None and status not in INVESTIGATION_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(INVESTIGATION_STATUSES)}")
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
    start, end = _parse_time("since", since), _parse_time("until", until)
    stmt = select(Investigation).order_by(Investigation.created_at.desc(), Investigation.id.desc())
    if status:
        stmt = stmt.where(Investigation.status == status)
    if domain:
        stmt = stmt.where(Investigation.domain == domain)
    if start:
        stmt = stmt.where(Investigation.created_at >= start)
    if end:
        stmt = stmt.where(Investigation.created_at < end)
    if cursor:
        when, inv_id = _uncursor(cursor)
        stmt = stmt.where((Investigation.created_at < when)
                          | ((Investigation.created_at == when) & (Investigation.id < inv_id)))
    with runtime.session() as session:
        rows = list(session.scalars(stmt.limit(limit + 1)))
        items = [summary(inv) for inv in rows[:limit]]
        nxt = _cursor(rows[limit - 1]) if len(rows) > limit else None
    return {"items": items, "next_cursor": nxt}


def summary(inv: Investigation) -> dict[str, Any]:
    """One line of the list: id, trigger, status, phase, verdict, confidence, times, cost."""
    d = investigations.to_dict(inv)
    return {k: d[k] for k in ("id", "trigger", "mode", "domain", "priority", "status", "phase", "verdict",
                              "confidence", "created_at", "finished_at", "cost_usd")}


def _get(session: Any, investigation_id: str) -> Investigation:
    try:
        return investigations.get(session=session, investigation_id=investigation_id)
    except NotFound:
        raise Missing(f"no investigation {investigation_id!r}; list them at GET /api/v1/investigations") from None


#: The status view's one query, built once: the investigation's status columns (not the report,
#: hypotheses or fix plan, often 100s of KB of JSON) with its agent runs' names, states and tokens
#: (one row per run; one row with NULL run columns when it has none).
_STATUS = (
    select(
        Investigation.id, Investigation.trigger, Investigation.status, Investigation.phase, Investigation.round,
        Investigation.verdict, Investigation.confidence, Investigation.created_at, Investigation.started_at,
        Investigation.finished_at, Investigation.tokens_in, Investigation.tokens_out, Investigation.cost_usd,
        Investigation.error, AgentRun.agent.label("run_agent"), AgentRun.status.label("run_status"),
        AgentRun.model.label("run_model"), AgentRun.tokens_in.label("run_in"), AgentRun.tokens_out.label("run_out"),
    )
    .select_from(Investigation)
    .outerjoin(AgentRun, AgentRun.investigation_id == Investigation.id)
    .where(Investigation.id == bindparam("inv_id"))
)


def status_view(*, runtime: Any, investigation_id: str) -> dict[str, Any]:
    """The design's status shape.

    One narrow prepared query on a Core connection, no ORM session or objects: the admin API's most frequent call
    (bench/api_load.py) costs the same however large the finished report and the tool-call logs are.
    (The admin API reads it on the event loop with :func:`status_view_async` on PostgreSQL.)

    Raises:
        Missing: unknown id.
    """
    # Core, not an ORM session: a read needs no unit of work; on PostgreSQL one round trip (store.db.make_read_engine)
    engine = getattr(runtime, "read_engine", None) or runtime.engine
    rows = read_with_retry(engine, lambda conn: conn.execute(_STATUS, {"inv_id": investigation_id}).all())
    return _status(rows, investigation_id)


async def status_view_async(*, runtime: Any, reader: AsyncReader, investigation_id: str) -> dict[str, Any]:
    """:func:`status_view` read on the event loop through ``reader`` (PostgreSQL): the same answer, one
    round trip, no worker thread and no SQLAlchemy execution around it.

    Raises:
        Missing: unknown id.
        psycopg.Error: the database fails (a dropped connection is retried once by ``reader``).
    """
    rows = await reader.fetch(_compiled_status(runtime.engine.dialect), {"inv_id": investigation_id})
    return _status(rows, investigation_id)


@functools.lru_cache(maxsize=4)
def _compiled_status(dialect: Any) -> CompiledRead:
    from store.async_reads import compile_read

    return compile_read(_STATUS, dialect)


def _status(rows: Sequence[Any], investigation_id: str) -> dict[str, Any]:
    if not rows:
        raise Missing(f"no investigation {investigation_id!r}; list them at GET /api/v1/investigations")
    inv = rows[0]
    runs = [r for r in rows if r.run_agent is not None]
    phase = inv.phase
    end = inv.finished_at or utcnow()
    by_model: dict[str, int] = {}
    for run in runs:
        model = run.run_model or "none"
        by_model[model] = by_model.get(model, 0) + (run.run_in or 0) + (run.run_out or 0)
    return {
        "investigation_id": inv.id,
        "ticket_id": (inv.trigger or {}).get("ticket"),
        "trigger": inv.trigger,
        "status": inv.status,
        "phase_name": phase,
        "phase": NUMBERED_PHASES.index(phase) if phase in NUMBERED_PHASES else None,
        "total_phases": len(NUMBERED_PHASES) - 1,
        "hypothesis_iteration": inv.round,
        "agents_completed": sorted({run.run_agent for run in runs if run.run_status != "running"}),
        "agents_running": sorted({run.run_agent for run in runs if run.run_status == "running"}),
        "verdict": inv.verdict,
        "confidence": inv.confidence,
        "created_at": _iso(inv.created_at),
        "started_at": _iso(inv.started_at),
        "finished_at": _iso(inv.finished_at),
        "elapsed_seconds": round((end - (inv.started_at or inv.created_at)).total_seconds(), 3),
        "token_usage": {"total": (inv.tokens_in or 0) + (inv.tokens_out or 0), "input": inv.tokens_in,
                        "output": inv.tokens_out, "by_model": by_model},
        "cost_usd": inv.cost_usd,
        "error": inv.error,
    }


def report_view(*, runtime: Any, investigation_id: str) -> dict[str, Any]:
    """The design's report JSON with the Markdown and Jira renderings of the report.

    Raises:
        Missing: unknown id. BadRequest: it has no report yet (its status says where it is).
    """
    from publishers.jira import render_report as render_jira
    from publishers.markdown import render_report as render_markdown
    with runtime.session() as session:
        inv = _get(session, investigation_id)
        d = investigations.to_dict(inv)
        pubs = {p.sink: {"target": p.target, **(p.external_ref or {})} for p in session.scalars(
            select(Publication).where(Publication.investigation_id == investigation_id))}
    if not d["report"]:
        raise ReportNotReady(f"{investigation_id} is {d['status']} ({d['phase']}) and has no report yet; "
                             f"poll {status_url(investigation_id)}")
    started = inv.started_at or inv.created_at
    return {
        "investigation_id": d["id"],
        "ticket_id": (d["trigger"] or {}).get("ticket"),
        "status": d["status"],
        "verdict": d["verdict"],
        "confidence": d["confidence"],
        "root_cause": d["root_cause"] or (d["report"] or {}).get("root_cause"),
        "fix_plan": d["fix_plan"],
        "hypotheses": d["hypotheses"],
        "report": d["report"],
        "report_markdown": render_markdown(d["report"], investigation_id=d["id"]),
        "report_jira_wiki": render_jira(d["report"], d["id"]),
        "published_to": pubs,
        "duration_seconds": round((inv.finished_at - started).total_seconds(), 3) if inv.finished_at else None,
        "token_usage": {"total": (d["tokens_in"] or 0) + (d["tokens_out"] or 0)},
    }


class ReportNotReady(BadRequest):
    """The investigation has no report yet (answer 409)."""


def traces(*, runtime: Any, investigation_id: str) -> dict[str, Any]:
    """Phases (checkpoints), agent runs with their tool calls and model tokens.

    Raises:
        Missing: unknown id.
    """
    with runtime.session() as session:
        _get(session, investigation_id)
        phases = [checkpoints.to_dict(cp) for cp in checkpoints.list_for(session=session,
                                                                         investigation_id=investigation_id)]
        runs = [_run(r) for r in agent_runs.list_for(session=session, investigation_id=investigation_id)]
        choices = model_choices.list_for(session=session, investigation_id=investigation_id)
    return {"investigation_id": investigation_id, "phases": phases, "agents": runs,
            "tool_calls": sum(len(r["tool_calls"]) for r in runs), "model_choices": choices}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _run(run: AgentRun) -> dict[str, Any]:
    calls = [{k: c.get(k) for k in ("capability", "server", "tool", "started_at", "duration_ms", "ok", "error")}
             for c in (run.tool_calls or []) if isinstance(c, dict)]
    return {"agent": run.agent, "phase": run.phase, "status": run.status, "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at), "duration_ms": run.duration_ms, "error": run.error,
            "model_calls": {"model": run.model, "tokens_in": run.tokens_in, "tokens_out": run.tokens_out,
                            "cache_read_tokens": run.cache_read_tokens or 0,
                            "cache_write_tokens": run.cache_write_tokens or 0, "cost_usd": run.cost_usd},
            "tool_calls": calls}


def cost_breakdown(*, runtime: Any, investigation_id: str) -> dict[str, Any]:
    """The design's per-investigation ``cost_breakdown`` (LLM tokens, MCP calls, worker seconds).

    Compute is reported in worker seconds (the sum of agent run durations) with ``cost_usd`` 0:
    the product does not know what a worker second costs in a given cluster.

    Raises:
        Missing: unknown id.
    """
    with runtime.session() as session:
        inv = _get(session, investigation_id)
        runs = agent_runs.list_for(session=session, investigation_id=investigation_id)
        tokens_in, tokens_out, cost = inv.tokens_in or 0, inv.tokens_out or 0, float(inv.cost_usd or 0.0)
        budget = inv.budget_usd
    cache_read = sum(r.cache_read_tokens or 0 for r in runs)
    cache_write = sum(r.cache_write_tokens or 0 for r in runs)
    mcp_calls = sum(len(r.tool_calls or []) for r in runs)
    worker_s = sum((r.duration_ms or 0) for r in runs) / 1000
    return {"investigation_id": investigation_id, "cost_breakdown": {
        "llm_tokens": {"input": tokens_in, "output": tokens_out, "cache_read": cache_read,
                       "cache_write": cache_write, "cost_usd": round(cost, 6)},
        "mcp_calls": {"count": mcp_calls, "cost_usd": 0.0},
        "compute": {"worker_seconds": round(worker_s, 3), "cost_usd": 0.0},
        "total_usd": round(cost, 6),
    }, "budget_usd": budget}


def cost_summary(*, runtime: Any, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """Cost over a period (default: the current calendar month, UTC): totals, by domain, by model.

    Raises:
        BadRequest: a time is not ISO-8601 with a zone.
    """
    now = utcnow()
    start = _parse_time("since", since) or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = _parse_time("until", until) or now
    with runtime.session() as session:
        period = (Investigation.created_at >= start) & (Investigation.created_at < end)
        by_domain = session.execute(
            select(Investigation.domain, func.count(), func.coalesce(func.sum(Investigation.cost_usd), 0.0),
                   func.coalesce(func.sum(Investigation.tokens_in + Investigation.tokens_out), 0))
            .where(period).group_by(Investigation.domain)).all()
        by_model = session.execute(
            select(AgentRun.model, func.coalesce(func.sum(AgentRun.cost_usd), 0.0),
                   func.coalesce(func.sum(AgentRun.tokens_in + AgentRun.tokens_out), 0))
            .join(Investigation, Investigation.id == AgentRun.investigation_id)
            .where(period).group_by(AgentRun.model)).all()
    domains_out = {str(d or "none"): {"investigations": int(n), "cost_usd": round(float(c), 6), "tokens": int(t)}
                   for d, n, c, t in by_domain}
    return {
        "period": {"since": _iso(start), "until": _iso(end)},
        "investigations": sum(v["investigations"] for v in domains_out.values()),
        "total_usd": round(sum(v["cost_usd"] for v in domains_out.values()), 6),
        "by_domain": domains_out,
        "by_model": {str(m or "none"): {"cost_usd": round(float(c), 6), "tokens": int(t)} for m, c, t in by_model},
    }


def list_domains(*, runtime: Any, configured: dict[str, str]) -> dict[str, Any]:
    """Stored domain configurations plus the domains PM_DOMAINS routes services to."""
    with runtime.session() as session:
        stored = domains.list_all(session=session)
    names = sorted(set(stored) | set(configured.values()))
    return {"domains": [{"domain": n, "config": stored.get(n, {}),
                         "services": sorted(s for s, d in configured.items() if d == n)} for n in names]}


def upsert_domain(*, runtime: Any, body: Any) -> dict[str, Any]:
    """``POST /api/v1/domains``: ``{"domain": name, "config": {...}, "merge": true}``.

    Raises:
        BadRequest: no name, or config is not an object.
    """
    if not isinstance(body, dict) or not isinstance(body.get("domain"), str) or not body["domain"].strip():
        raise BadRequest('send {"domain": "Bookings/Server/scheduler", "config": {...}}')
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise BadRequest("config must be a JSON object")
    if len(json.dumps(config)) > 64_000:
        raise BadRequest("config is above 64 kB; keep domain configuration small")
    with runtime.session() as session:
        stored = domains.upsert(session=session, domain=body["domain"].strip(), config=config,
                                merge=bool(body.get("merge", True)))
        session.commit()
    return {"domain": body["domain"].strip(), "config": stored}


def domain_config(*, runtime: Any, domain: str) -> dict[str, Any]:
    """One domain's stored configuration.

    Raises:
        Missing: nothing stored for it.
    """
    with runtime.session() as session:
        try:
            return {"domain": domain, "config": domains.get(session=session, domain=domain)}
        except NotFound:
            raise Missing(f"no configuration for domain {domain!r}; POST /api/v1/domains to store one") from None


def query(*, settings: Any, capability: str, body: Any, tools_factory: Any = None) -> dict[str, Any]:
    """Ask one capability directly through the MCP gateway (PM_SOURCES / MCP_CONFIG / PM_WORLD).

    Args:
        capability: e.g. ``logs.search`` (docs/contracts.md).
        body: ``{"args": {...}}`` — the capability's arguments.
        tools_factory: ``spec -> tools`` (default :func:`pipeline.tools.open_tools`).

    Raises:
        BadRequest: malformed body; no sources configured; the tool refused or failed.

    Returns:
        ``{"capability": ..., "result": {...}}``.
    """
    from agents.errors import AgentError
    from pipeline.errors import PipelineError
    from pipeline.tools import open_tools
    from store.errors import ConfigError

    args = (body or {}).get("args", {}) if isinstance(body, dict) else None
    if not isinstance(args, dict):
        raise BadRequest('send {"args": {...}} with the capability\'s arguments (docs/contracts.md)')
    spec = {"id": "api-query", "sources": {}}
    try:
        tools = tools_factory(spec) if tools_factory else open_tools(spec, settings)
    except (PipelineError, ConfigError) as exc:
        raise BadRequest(str(exc)) from None
    try:
        return {"capability": capability, "result": tools.call(capability, **args)}
    except (AgentError, TypeError) as exc:
        raise BadRequest(f"{capability}: {exc}") from None
    finally:
        tools.close()


def report_page(*, runtime: Any, investigation_id: str) -> str:
    """The report page's HTML (publishers/html.py) of one investigation.

    Raises:
        Missing: unknown id.
    """
    from publishers.html import render_report_page

    with runtime.session() as session:
        inv = investigations.to_dict(_get(session, investigation_id))
    return render_report_page(inv, traces(runtime=runtime, investigation_id=investigation_id),
                              cost_breakdown(runtime=runtime, investigation_id=investigation_id))


def list_page_html(*, runtime: Any, status: str | None = None, domain: str | None = None, limit: int = 50,
                   cursor: str | None = None) -> str:
    """The list page's HTML: the newest investigations, with a link to older ones.

    Raises:
        BadRequest: as :func:`list_page`.
    """
    from urllib.parse import urlencode

    from publishers.html import render_list_page

    page = list_page(runtime=runtime, status=status, domain=domain, limit=limit, cursor=cursor)
    nxt = None
    if page["next_cursor"]:
        query = {k: v for k, v in (("status", status), ("domain", domain), ("cursor", page["next_cursor"])) if v}
        nxt = "/investigations?" + urlencode(query)
    return render_list_page(page["items"], nxt)


def domain_memory(*, runtime: Any, domain: str) -> dict[str, Any]:
    """``GET /api/v1/domains/{domain}/memory``: the domain's notes (``text`` empty when none were written)."""
    with runtime.session() as session:
        return domains.get_memory(session=session, domain=domain)


def put_domain_memory(*, runtime: Any, domain: str, body: Any, user: str | None = None) -> dict[str, Any]:
    """``PUT /api/v1/domains/{domain}/memory``: ``{"text": "..."}`` replaces the domain's notes.

    Raises:
        BadRequest: no text, or text too long.
    """
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise BadRequest('send {"text": "notes for this domain (known noisy alerts, owners, runbooks)"}')
    with runtime.session() as session:
        try:
            out = domains.set_memory(session=session, domain=domain.strip(), text=body["text"], user=user)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        session.commit()
    return out
