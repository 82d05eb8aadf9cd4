"""``GET /metrics`` and the ASGI middleware that counts HTTP requests and webhook deliveries and sets
each request's correlation id (``X-Request-Id``, taken when well-formed, else new; echoed back).

The route label is the matched route's template (``/api/v1/investigations/{id}``), never the raw
path, so ids do not become label values; unmatched paths count as ``unmatched``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import metrics
from pipeline.middleware import current_correlation
from pipeline.runtime import QUEUES
from store.models import OPEN_STATUSES, Investigation

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")
#: webhook path -> the ``source`` label (docs/metrics.md)
WEBHOOK_SOURCES = {"/webhooks/jira": "jira", "/webhooks/pagerduty": "pagerduty", "/webhooks/grafana/alert": "grafana",
                   "/webhooks/alertmanager": "alertmanager", "/webhooks/deploy": "deploy", "/webhooks/change": "change"}


def delivery_status(code: int) -> str | None:
    """The ``status`` label of a webhook answer: 202 accepted, 200 duplicate, 401/403 unauthorized, 4xx invalid."""
    if code == 202:
        return "accepted"
    if code == 200:
        return "duplicate"
    if code in (401, 403):
        return "unauthorized"
    if 400 <= code < 500:
        return "invalid"
    return None  # 5xx: the sender retries; counted in pm_http_requests_total


class CountRequests:
    """ASGI middleware: ``pm_http_requests_total`` and ``pm_webhook_deliveries_total``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        code = {"status": 500}
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()  # 32 hex digits, as uuid4().hex
        token = current_correlation.set(request_id)

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                code["status"] = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            current_correlation.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            metrics.HTTP.labels(method if method in ("GET", "POST", "DELETE") else "other", template,
                                str(code["status"])).inc()
            source = WEBHOOK_SOURCES.get(template)
            status = delivery_status(code["status"]) if source else None
            if source and status:
                metrics.WEBHOOKS.labels(source, status).inc()


def prime_webhooks() -> None:
    """Create every webhook source/status child at 0 (so the first delivery shows in rate())."""
    for source in WEBHOOK_SOURCES.values():
        for status in ("accepted", "duplicate", "unauthorized", "invalid"):
            metrics.WEBHOOKS.labels(source, status)


def routes(runtime: Any) -> list[Route]:
    """``GET /metrics``: this process's (or, in multiprocess mode, every process's) metrics plus
    open investigations by status and queue depth per priority, read at scrape time."""

    def open_counts() -> dict[str, int]:
        with runtime.session() as s:
            rows = s.execute(select(Investigation.status, func.count()).where(Investigation.status.in_(OPEN_STATUSES))
                             .group_by(Investigation.status)).all()
        return {str(status): int(n) for status, n in rows}

    queues = {p: runtime.queue_prefix + name for p, (name, _prio) in QUEUES.items()}
    collector = metrics.ScrapeCollector(open_counts, lambda: metrics.queue_depths(runtime.broker, queues))

    async def scrape(request: Request) -> Response:
        body, content_type = await run_in_threadpool(metrics.exposition, [collector])
        return Response(body, media_type=content_type)

    return [Route("/metrics", scrape, methods=["GET"])]
