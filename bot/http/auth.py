"""How each source proves a delivery is genuine: HMAC signatures or a bearer token."""

from __future__ import annotations

from starlette.datastructures import Headers

from bot.http.context import ListenerContext
from bot.http.intake import Authenticate
from commands.signatures import verify_bearer, verify_jira, verify_pagerduty


def jira(ctx: ListenerContext) -> Authenticate:
    """JIRA_WEBHOOK_SECRET signature when a secret is set, else a bearer API key."""
    def check(body: bytes, headers: Headers) -> None:
        if ctx.jira_secret:
            verify_jira(body, headers.get("x-hub-signature"), ctx.jira_secret)
        else:
            verify_bearer(headers.get("authorization"), ctx.api_keys)
    return check


def pagerduty(ctx: ListenerContext) -> Authenticate:
    """PAGERDUTY_WEBHOOK_SECRET signature when a secret is set, else a bearer API key."""
    def check(body: bytes, headers: Headers) -> None:
        if ctx.pagerduty_secret:
            verify_pagerduty(body, headers.get("x-pagerduty-signature"), ctx.pagerduty_secret)
        else:
            verify_bearer(headers.get("authorization"), ctx.api_keys)
    return check


def bearer(ctx: ListenerContext) -> Authenticate:
    """A bearer token from API_KEYS (Grafana, Alertmanager, deploy hooks)."""
    def check(body: bytes, headers: Headers) -> None:
        verify_bearer(headers.get("authorization"), ctx.api_keys)
    return check
