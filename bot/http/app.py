"""The webhook listener's composition root: ``create_app(settings, runtime)``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from bot.http import api_routes, health_routes, observe, openapi, report_routes, webhook_routes
from bot.http.api_routes import ApiContext
from bot.http.context import ListenerContext
from bot.http.problems import problem
from bot.http.processor import DeliveryProcessor
from bot.http.settings import HttpSettings, load_http_settings, webhook_rules
from bot.http.status_cache import StatusCache
from commands import deploy_check
from commands.access import RateLimiter, parse_keyed_roles
from commands.signatures import parse_api_keys
from pipeline import metrics
from store.config import Settings
from store.errors import ConfigError

log = logging.getLogger(__name__)
ToolsFactory = Callable[[dict[str, Any]], Any] | None


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_context(
    settings: Settings, runtime: Any, http: HttpSettings | None = None, *, tools_factory: ToolsFactory = None
) -> ListenerContext:
    """Everything the routes need, from the settings and the pipeline runtime.

    Also declares the delayed post-deploy check on the runtime's broker (before any worker starts).
    """
    http = http or load_http_settings()
    deploy_check.register(runtime=runtime, settings=settings, tools_factory=tools_factory)

    def schedule_deploy_check(deploy: dict[str, Any]) -> None:
        deploy_check.schedule(runtime=runtime, deploy=deploy, delay_ms=settings.post_deploy_check_delay_ms)

    rules = webhook_rules(settings, http)
    server_db = not settings.effective_database_url.startswith("sqlite")
    return ListenerContext(
        runtime=runtime,
        rules=rules,
        api_keys=parse_api_keys(_secret(settings.api_keys)),
        jira_secret=_secret(settings.jira_webhook_secret),
        pagerduty_secret=_secret(settings.pagerduty_webhook_secret),
        max_body_bytes=http.max_body_bytes,
        deploy_scheduler=schedule_deploy_check,
        processor=DeliveryProcessor(runtime, rules, schedule_deploy_check, separate_processing=server_db,
                                    max_attempts=http.delivery_max_attempts, retry_s=http.delivery_retry_s),
    )


def create_app(
    settings: Settings, runtime: Any, http: HttpSettings | None = None, *, tools_factory: ToolsFactory = None
) -> Starlette:
    """The Starlette app: the webhooks, the admin API (docs/api.md), /openapi.json, /healthz, /readyz,
    /metrics.

    On startup its background processor first finishes deliveries an earlier process accepted but
    did not process; on shutdown it processes what is queued.

    Args:
        settings: the product settings.
        runtime: ``pipeline.runtime.build_runtime(settings)`` (its worker may or may not run here).
        http: listener settings; read from the environment when omitted.
        tools_factory: tools for the post-deploy check; default the MCP gateway (MCP_CONFIG / PM_WORLD).

    Raises:
        store.errors.ConfigError: a listener setting is invalid.
    """
    http = http or load_http_settings()
    api = build_api_context(settings, runtime, http, tools_factory=tools_factory)
    ctx = build_context(settings, runtime, http, tools_factory=tools_factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx.processor.start()
        if runtime.engine.dialect.name == "postgresql":
            # status reads on this loop, their connections opened now: the first reads under load must
            # not each wait for a new PostgreSQL backend (a backend is a process)
            from store.async_reads import AsyncReader

            api.reader = AsyncReader(settings.effective_database_url, api_routes.READ_THREADS)
            await api.reader.open()
        try:
            yield
        finally:
            try:
                if api.reader is not None:
                    await api.reader.close()
                    api.reader = None
            finally:
                await run_in_threadpool(ctx.processor.stop)

    metrics.prime(domains=sorted(set(api.domain_map.values())), triggers=("api", "webhook", "jira", "schedule"))
    observe.prime_webhooks()
    app = Starlette(
        # the admin API first: the router tries routes in order, and its status GET is the most frequent
        # request (no two groups' paths overlap, so the order changes nothing else)
        routes=[*api_routes.routes(api), *webhook_routes.routes(ctx), *health_routes.routes(ctx),
                *openapi.routes(), *observe.routes(runtime), *report_routes.routes(api)],
        lifespan=lifespan,
        middleware=[Middleware(observe.CountRequests)],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.context = ctx
    app.state.api = api
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return problem(404, "Not found", f"no route {request.url.path}; the routes are listed at /openapi.json")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return problem(405, "Method not allowed", f"{request.method} is not served at {request.url.path}; "
                   "see /openapi.json")


def build_api_context(settings: Settings, runtime: Any, http: HttpSettings, *,
                      tools_factory: ToolsFactory = None) -> ApiContext:
    """The admin API's context: roles of API_KEYS, JWT_SECRET, the rate limiter, the callback guard.

    Raises:
        ConfigError: API_KEYS names an unknown role.
    """
    try:
        keys = parse_keyed_roles(_secret(settings.api_keys))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ApiContext(
        settings=settings, runtime=runtime, keys=keys, jwt_secret=_secret(settings.jwt_secret),
        limiter=RateLimiter(http.api_rate_per_s, http.api_burst), allow_private=http.callback_allow_private,
        domain_map={str(k): str(v) for k, v in http.mapping("domains").items()},
        max_body_bytes=http.max_body_bytes, tools_factory=tools_factory,
        status_cache=StatusCache(http.api_status_cache_ms / 1000) if http.api_status_cache_ms > 0 else None,
    )
