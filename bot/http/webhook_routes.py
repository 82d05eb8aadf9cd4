"""The webhook endpoints: one route per sender, all through :func:`bot.http.intake.intake`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.http import auth
from bot.http.context import ListenerContext
from bot.http.intake import Authenticate, intake


def _endpoint(ctx: ListenerContext, source: str, authenticate: Authenticate):  # noqa: ANN202 - Starlette endpoint
    async def endpoint(request: Request) -> Response:
        return await intake(request, ctx, source, authenticate)

    endpoint.__name__ = f"webhook_{source}"
    return endpoint


def routes(ctx: ListenerContext) -> list[Route]:
    """POST /webhooks/jira, /webhooks/pagerduty, /webhooks/grafana/alert, /webhooks/alertmanager, /webhooks/deploy,
    /webhooks/change."""
    table = [
        ("/webhooks/jira", "jira", auth.jira(ctx)),
        ("/webhooks/pagerduty", "pagerduty", auth.pagerduty(ctx)),
        ("/webhooks/grafana/alert", "grafana", auth.bearer(ctx)),
        ("/webhooks/alertmanager", "alertmanager", auth.bearer(ctx)),
        ("/webhooks/deploy", "deploy", auth.bearer(ctx)),
        ("/webhooks/change", "change", auth.bearer(ctx)),
    ]
    return [Route(path, _endpoint(ctx, source, check), methods=["POST"]) for path, source, check in table]
