"""The admin REST API (``/api/v1/...``): authenticate, authorise, rate-limit, hand off to commands.api.

Every route names the least role it needs (commands/access.py); every error is problem+json.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.http.problems import BodyTooLarge, problem, read_body
from bot.http.status_cache import StatusCache
from commands import api as api_cmd
from commands import budgets as budgets_cmd
from commands import investigate
from commands.access import (
    AuthError,
    Forbidden,
    Principal,
    RateLimiter,
    authenticate,
    require,
    require_unscoped,
)
from commands.errors import BadRequest, NotAllowed

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - pinned, but only as a transitive dependency
    _orjson = None  # type: ignore[assignment]

Handler = Callable[[Request, Principal], Awaitable[Response]]
#: PostgreSQL connections of the status reads on the event loop (store.async_reads.AsyncReader), and threads
#: that run them when the app serves without its reader (no lifespan): the read engine's pool holds 8.
READ_THREADS = 8


@dataclass
class ApiContext:
    """What the API routes need; built by ``create_app``.

    Attributes:
        settings: product settings (for direct queries' sources).
        runtime: the pipeline runtime.
        keys: API key -> role (API_KEYS).
        jwt_secret: JWT_SECRET, or None (then JWTs are refused).
        limiter: the per-caller token bucket (in this process).
        allow_private: PM_CALLBACK_ALLOW_PRIVATE.
        domain_map: PM_DOMAINS (service -> domain).
        max_body_bytes: larger bodies get 413.
        tools_factory: tools for direct queries (default: the MCP gateway).
        resolve: host resolver of the SSRF guard (tests pass their own).
        reader: the status reads' connections on the serving event loop (PostgreSQL), opened by the
            app's lifespan; None on SQLite or before the app started (then reads take the thread pool).
        status_cache: recent status views (PM_API_STATUS_CACHE_MS), or None (every GET reads).
    """

    settings: Any
    runtime: Any
    keys: dict[str, str]
    jwt_secret: str | None
    limiter: RateLimiter
    allow_private: bool = False
    domain_map: dict[str, str] = field(default_factory=dict)
    max_body_bytes: int = 1 << 20
    tools_factory: Any = None
    resolve: Any = None
    reader: Any = None
    status_cache: StatusCache | None = None


def fast_json(content: Any) -> Response:
    """``JSONResponse(content)`` with its body serialised by orjson (~1 µs instead of ~10 for a status view;
    the same compact UTF-8 JSON, floats in shortest form), json's when orjson is not installed.

    orjson is pinned in requirements.lock (chromadb's dependency); the sandbox reads worlds with it too.
    """
    if _orjson is None:
        return JSONResponse(content)
    return Response(_orjson.dumps(content), media_type="application/json")


def principal_of(api: ApiContext, request: Request) -> Principal:
    """The caller of ``request``.

    Raises:
        AuthError: see :func:`commands.access.authenticate`.
    """
    return authenticate(api_key=request.headers.get("x-api-key"), authorization=request.headers.get("authorization"),
                        keys=api.keys, jwt_secret=api.jwt_secret)


def guarded(api: ApiContext, role: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` behind authentication, the ``role`` check, the rate limit and error mapping."""

    async def endpoint(request: Request) -> Response:
        try:
            principal = principal_of(api, request)
            require(principal, role)
            require_unscoped(principal)
        except AuthError as exc:
            return problem(401, "Unauthorized", str(exc), headers={"WWW-Authenticate": 'Bearer realm="pm"'})
        except Forbidden as exc:
            return problem(403, "Forbidden", str(exc))
        wait = api.limiter.take(principal.bucket)
        if wait > 0:
            return problem(429, "Too many requests", f"rate limit of this key reached; retry in {wait:.1f} s",
                           headers={"Retry-After": str(max(1, round(wait + 0.5)))})
        try:
            check_no_nul(request)
            return await handler(request, principal)
        except BodyTooLarge as exc:
            return problem(413, "Payload too large", str(exc))
        except api_cmd.Missing as exc:
            return problem(404, "Not found", str(exc))
        except api_cmd.ReportNotReady as exc:
            return problem(409, "Not ready", str(exc))
        except api_cmd.Conflict as exc:
            return problem(422, "Idempotency-Key reused", str(exc))
        except NotAllowed as exc:
            return problem(403, "Forbidden", str(exc))
        except BadRequest as exc:
            return problem(400, "Bad request", str(exc))

    endpoint.__name__ = handler.__name__
    return endpoint


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def check_no_nul(request: Request) -> None:
    """Refuse NUL characters in the path and query (PostgreSQL text cannot hold them).

    Raises:
        BadRequest: naming where.
    """
    if _has_nul(dict(request.path_params)) or _has_nul(list(request.query_params.multi_items())):
        raise BadRequest("the path or query holds a NUL character; remove it")


async def _json(api: ApiContext, request: Request) -> Any:
    body = await read_body(request, api.max_body_bytes)
    if not body.strip():
        raise BadRequest("send a JSON body")
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON ({exc.args[0] if exc.args else exc})") from None
    if _has_nul(parsed):  # PostgreSQL text cannot hold \u0000; no field of ours needs it
        raise BadRequest("a string in the body holds a NUL character (\\u0000); remove it")
    return parsed


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None


REPORT_TYPES = {"json": "application/json", "markdown": "text/markdown", "jira": "text/x-jira-wiki"}


def report_format(request: Request) -> str:
    """``?format=json|markdown|jira``, else the first known type in ``Accept``, else json.

    Raises:
        BadRequest: an unknown ``format``.
    """
    wanted = request.query_params.get("format")
    if wanted is not None:
        if wanted not in REPORT_TYPES:
            raise BadRequest(f"format must be one of {', '.join(REPORT_TYPES)}")
        return wanted
    for part in request.headers.get("accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        for name, media_type in REPORT_TYPES.items():
            if media == media_type or (name == "jira" and media == "text/x-jira"):
                return name
    return "json"


def routes(api: ApiContext) -> list[Route]:
    """Every ``/api/v1`` route bound to ``api``."""
    rt = api.runtime
    # The status read (one indexed query, ~0.1 ms on SQLite) runs on the event loop when the database is a
    # local SQLite file: two thread hand-offs cost more than the read and were most of the p99 under 50
    # clients. On PostgreSQL each read waits on network round trips, which the thread pool overlaps
    # (bench/api_load.py: inline there served fewer GETs/s).
    inline_reads = rt.engine.dialect.name == "sqlite"
    limiter: list[Any] = []

    async def _read(fn: Callable[..., Any], **kwargs: Any) -> Any:
        """``fn(**kwargs)`` on a worker thread, at most READ_THREADS at once.

        50 clients' status reads on anyio's default 40 threads spent more CPU switching threads (and
        waiting for pooled connections) than reading; a few threads keep every round trip overlapped.
        """
        if not limiter:
            limiter.append(anyio.CapacityLimiter(READ_THREADS))
        return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs), limiter=limiter[0])

    async def start_investigation(request: Request, who: Principal) -> Response:
        body = await _json(api, request)
        out = await run_in_threadpool(
            api_cmd.submit, runtime=rt, body=body, subject=who.subject,
            idempotency_key=request.headers.get("idempotency-key"), allow_private=api.allow_private,
            resolve=api.resolve)
        headers = {"Location": out["status_url"]}
        if out.pop("replayed"):
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(out, status_code=202, headers=headers)

    async def start_batch(request: Request, who: Principal) -> Response:
        body = await _json(api, request)
        out = await run_in_threadpool(api_cmd.submit_batch, runtime=rt, body=body, subject=who.subject,
                                      allow_private=api.allow_private, resolve=api.resolve)
        for item in out["investigations"]:
            item.pop("replayed", None)
        return JSONResponse(out, status_code=202)

    async def list_investigations(request: Request, who: Principal) -> Response:
        q = request.query_params
        out = await run_in_threadpool(
            api_cmd.list_page, runtime=rt, status=q.get("status"), domain=q.get("domain"), since=q.get("since"),
            until=q.get("until"), limit=_int(request, "limit", 50), cursor=q.get("cursor"))
        return JSONResponse(out)

    cache = api.status_cache

    async def read_status(inv_id: str) -> dict[str, Any]:
        if api.reader is not None:
            return await api_cmd.status_view_async(runtime=rt, reader=api.reader, investigation_id=inv_id)
        if inline_reads:
            return api_cmd.status_view(runtime=rt, investigation_id=inv_id)
        return await _read(api_cmd.status_view, runtime=rt, investigation_id=inv_id)  # type: ignore[no-any-return]

    async def status(inv_id: str, *, fresh: bool = False) -> dict[str, Any]:
        if cache is None:
            return await read_status(inv_id)
        if not fresh:
            hit = cache.get(inv_id)
            if hit is not None:
                return hit
        sent = cache.clock()
        view = await read_status(inv_id)
        cache.put(inv_id, view, sent)
        return view

    async def get_investigation(request: Request, who: Principal) -> Response:
        return fast_json(await status(request.path_params["id"]))

    async def get_report(request: Request, who: Principal) -> Response:
        fmt = report_format(request)
        out = await run_in_threadpool(api_cmd.report_view, runtime=rt,
                                      investigation_id=request.path_params["id"])
        if fmt == "markdown":
            return PlainTextResponse(out["report_markdown"], media_type="text/markdown; charset=utf-8")
        if fmt == "jira":
            return PlainTextResponse(out["report_jira_wiki"], media_type="text/x-jira-wiki; charset=utf-8")
        return JSONResponse(out)

    async def get_traces(request: Request, who: Principal) -> Response:
        return JSONResponse(await run_in_threadpool(api_cmd.traces, runtime=rt,
                                                    investigation_id=request.path_params["id"]))

    async def cancel_investigation(request: Request, who: Principal) -> Response:
        inv_id = request.path_params["id"]
        await status(inv_id, fresh=True)  # 404 when unknown
        # An operator may cancel any investigation: the role is the authorisation here.
        await run_in_threadpool(investigate.cancel, runtime=rt, investigation_id=inv_id, user=None)
        out = await status(inv_id, fresh=True)  # and the next GETs of this process see it too
        return JSONResponse({"investigation_id": inv_id, "status": out["status"], "cancel_requested": True},
                            status_code=202)

    async def list_domains(request: Request, who: Principal) -> Response:
        return JSONResponse(await run_in_threadpool(api_cmd.list_domains, runtime=rt, configured=api.domain_map))

    async def upsert_domain(request: Request, who: Principal) -> Response:
        body = await _json(api, request)
        return JSONResponse(await run_in_threadpool(api_cmd.upsert_domain, runtime=rt, body=body))

    async def get_domain(request: Request, who: Principal) -> Response:
        return JSONResponse(await run_in_threadpool(api_cmd.domain_config, runtime=rt,
                                                    domain=request.path_params["repo"]))

    async def get_domain_memory(request: Request, who: Principal) -> Response:
        return JSONResponse(await run_in_threadpool(api_cmd.domain_memory, runtime=rt,
                                                    domain=request.path_params["repo"]))

    async def put_domain_memory(request: Request, who: Principal) -> Response:
        body = await _json(api, request)
        return JSONResponse(await run_in_threadpool(api_cmd.put_domain_memory, runtime=rt,
                                                    domain=request.path_params["repo"], body=body, user=who.subject))

    async def cost_summary(request: Request, who: Principal) -> Response:
        q = request.query_params
        return JSONResponse(await run_in_threadpool(api_cmd.cost_summary, runtime=rt, since=q.get("since"),
                                                    until=q.get("until")))

    async def cost_investigation(request: Request, who: Principal) -> Response:
        return JSONResponse(await run_in_threadpool(api_cmd.cost_breakdown, runtime=rt,
                                                    investigation_id=request.path_params["id"]))

    async def budgets_show(request: Request, who: Principal) -> Response:
        return JSONResponse(await run_in_threadpool(budgets_cmd.show, runtime=rt))

    async def budgets_approve(request: Request, who: Principal) -> Response:
        body = await _json(api, request)
        return JSONResponse(await run_in_threadpool(budgets_cmd.approve, runtime=rt, body=body, by=who.subject))

    async def direct_query(request: Request, who: Principal) -> Response:
        body = await _json(api, request)
        out = await run_in_threadpool(api_cmd.query, settings=api.settings, capability=request.path_params["capability"],
                                      body=body, tools_factory=api.tools_factory)
        return JSONResponse(out, media_type="application/json")

    handlers = {fn.__name__: fn for fn in (
        start_investigation, start_batch, list_investigations, get_investigation, cancel_investigation, get_report,
        get_traces, list_domains, upsert_domain, get_domain, get_domain_memory, put_domain_memory, cost_summary,
        cost_investigation, direct_query, budgets_show, budgets_approve)}
    return [Route(path, guarded(api, role, handlers[name]), methods=[method], name=name)
            for method, path, role, name in TABLE]


P = "/api/v1"
#: (method, path, least role, handler name) of every admin API route; the OpenAPI document reads it.
TABLE: list[tuple[str, str, str, str]] = [
    ("POST", f"{P}/investigate", "operator", "start_investigation"),
    ("POST", f"{P}/investigate/batch", "operator", "start_batch"),
    ("GET", f"{P}/investigations", "viewer", "list_investigations"),
    ("GET", f"{P}/investigations/{{id}}", "viewer", "get_investigation"),
    ("DELETE", f"{P}/investigations/{{id}}", "operator", "cancel_investigation"),
    ("GET", f"{P}/investigations/{{id}}/report", "viewer", "get_report"),
    ("GET", f"{P}/investigations/{{id}}/traces", "viewer", "get_traces"),
    ("GET", f"{P}/domains", "viewer", "list_domains"),
    ("POST", f"{P}/domains", "admin", "upsert_domain"),
    ("GET", f"{P}/domains/{{repo:path}}/config", "viewer", "get_domain"),
    ("GET", f"{P}/domains/{{repo:path}}/memory", "viewer", "get_domain_memory"),
    ("PUT", f"{P}/domains/{{repo:path}}/memory", "admin", "put_domain_memory"),
    ("GET", f"{P}/costs/summary", "viewer", "cost_summary"),
    ("GET", f"{P}/costs/investigation/{{id}}", "viewer", "cost_investigation"),
    ("POST", f"{P}/query/{{capability}}", "operator", "direct_query"),
    ("GET", f"{P}/budgets", "viewer", "budgets_show"),
    ("POST", f"{P}/budgets/approve", "admin", "budgets_approve"),
]
