"""What every webhook route needs: the runtime, the rules, the secrets and the deploy scheduler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.http.processor import DeliveryProcessor
from commands.webhooks import WebhookRules


@dataclass(frozen=True)
class ListenerContext:
    """Built once by ``create_app`` and shared by the routes.

    Attributes:
        runtime: the pipeline runtime (``session()``, ``enqueue``).
        rules: filters and routing for :mod:`commands.webhooks`.
        api_keys: bearer tokens accepted (API_KEYS).
        jira_secret / pagerduty_secret: HMAC secrets; when unset those routes take a bearer token.
        max_body_bytes: larger bodies get 413.
        deploy_scheduler: ``callable(deploy_dict)`` that queues the post-deploy check.
        processor: the database thread that stores deliveries (group commit) and processes them.
    """

    runtime: Any
    rules: WebhookRules
    api_keys: tuple[str, ...]
    jira_secret: str | None
    pagerduty_secret: str | None
    max_body_bytes: int
    deploy_scheduler: Callable[[dict[str, Any]], None]
    processor: DeliveryProcessor
