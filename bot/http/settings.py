"""Settings of the webhook listener and the schedules that store.config.Settings does not hold.

Read in the listener's composition root only (``create_app`` / ``pm serve`` / ``pm schedule``).
Lists are comma-separated; mappings are JSON objects.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from commands.webhooks import WebhookRules
from store.config import Settings
from store.errors import ConfigError


def _csv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value or ())


class HttpSettings(BaseSettings):
    """Webhook filters, routing and schedule knobs (environment variables named by the aliases)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    jira_labels: str = Field(default="auto-investigate,production-bug", alias="PM_JIRA_LABELS")
    alert_name_patterns: str = Field(default="*", alias="PM_ALERT_NAME_PATTERNS")
    pagerduty_priorities: str = Field(default="P1,P2", alias="PM_PAGERDUTY_PRIORITIES")
    deploy_environments: str = Field(default="production", alias="PM_DEPLOY_ENVIRONMENTS")
    domains: str = Field(default="{}", alias="PM_DOMAINS", description='JSON {"service or project": "domain"}')
    domain_channels: str = Field(
        default="{}", validation_alias=AliasChoices("PM_DOMAIN_CHANNELS", "PM_SLACK_DOMAIN_CHANNELS"),
        description='JSON {"domain": "C123"} or domain=channel pairs (the Slack bot reads the same variable)')
    default_channel: str | None = Field(default=None, alias="PM_DEFAULT_CHANNEL")
    domain_services: str = Field(
        default="{}", alias="PM_DOMAIN_SERVICES", description='JSON {"domain": ["service", ...]} for health checks'
    )
    webhook_mode: str = Field(default="balanced", alias="PM_WEBHOOK_MODE")
    max_body_bytes: int = Field(default=1 << 20, ge=1024, alias="PM_WEBHOOK_MAX_BODY_BYTES")
    max_alerts: int = Field(
        default=200, ge=1, le=100_000, alias="PM_WEBHOOK_MAX_ALERTS",
        description="most alerts one Grafana/Alertmanager delivery may carry; more: 400, nothing stored")
    replay_window_s: float = Field(
        default=3600.0, gt=0, alias="PM_WEBHOOK_REPLAY_WINDOW_S",
        description="PagerDuty occurred_at / Jira timestamp further from now than this: 202 ignored (a replay)")
    delivery_max_attempts: int = Field(
        default=5, ge=1, le=1000, alias="PM_WEBHOOK_MAX_ATTEMPTS",
        description="a stored delivery whose processing failed this often is dead-lettered (pm deliveries)")
    delivery_retry_s: float = Field(
        default=5.0, gt=0, le=3600, alias="PM_WEBHOOK_RETRY_S",
        description="first retry of a delivery whose processing failed; each next one 4x later (max 1 h)")
    slack_workspace_url: str | None = Field(default=None, alias="PM_SLACK_WORKSPACE_URL")
    stale_p1_hours: float = Field(default=24.0, gt=0, alias="PM_STALE_P1_HOURS")
    health_check_window_s: int = Field(default=3600, ge=60, alias="PM_HEALTH_CHECK_WINDOW_S")
    api_rate_per_s: float = Field(
        default=20.0, ge=0, alias="PM_API_RATE_PER_S",
        description="admin API requests per second per key or JWT subject, per app process (0: no limit)")
    api_burst: int = Field(default=40, ge=1, alias="PM_API_BURST", description="admin API token-bucket size")
    api_status_cache_ms: int = Field(
        default=0, ge=0, le=60_000, alias="PM_API_STATUS_CACHE_MS",
        description="reuse a status GET's answer for this long, per app process (0: off; bot/http/status_cache.py)")
    callback_allow_private: bool = Field(
        default=False, alias="PM_CALLBACK_ALLOW_PRIVATE",
        description="accept callback_url targets on loopback/private/link-local addresses")
    callback_secret: SecretStr | None = Field(
        default=None, alias="PM_CALLBACK_SECRET",
        description="signs callback POSTs: X-PM-Signature = sha256=HMAC-SHA256(secret, '<X-PM-Timestamp>.<body>')")
    callback_timeout_s: float = Field(default=10.0, gt=0, le=120, alias="PM_CALLBACK_TIMEOUT_S",
                                      description="connect/read timeout of one callback POST")
    public_url: str | None = Field(
        default=None, alias="PM_PUBLIC_URL", description="where users reach pm serve; reports link to its pages")

    @field_validator("domain_channels", mode="before")
    @classmethod
    def _pairs(cls, v: object) -> object:
        # One setting, two spellings: JSON, or the Slack bot's domain=channel pairs.
        if isinstance(v, str) and v.strip() and not v.strip().startswith("{"):
            pairs = {}
            for item in (x.strip() for x in v.split(",") if x.strip()):
                domain, sep, channel = item.partition("=")
                if not sep or not domain.strip() or not channel.strip():
                    raise ValueError(f"{item!r} is not domain=channel; write e.g. payments=C0PAY,bookings=C0BOOK")
                pairs[domain.strip()] = channel.strip()
            return json.dumps(pairs)
        return v

    @field_validator("domains", "domain_channels", "domain_services")
    @classmethod
    def _json_object(cls, v: str) -> str:
        try:
            parsed = json.loads(v or "{}")
        except ValueError as exc:
            raise ValueError(f"must be a JSON object ({exc})") from None
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object")
        return v or "{}"

    @field_validator("webhook_mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in ("fast", "balanced", "deep"):
            raise ValueError("must be fast, balanced or deep")
        return v

    def mapping(self, name: str) -> dict[str, Any]:
        """The JSON mapping setting ``name`` as a dict."""
        return json.loads(getattr(self, name) or "{}")


def load_http_settings(**overrides: Any) -> HttpSettings:
    """Read the environment into :class:`HttpSettings`.

    Raises:
        ConfigError: naming the variable and what it expects.
    """
    try:
        return HttpSettings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "?"
        info = HttpSettings.model_fields.get(field)
        alias = info.alias if info is not None else field
        raise ConfigError(f"{alias}: {err['msg']} (got {err.get('input')!r}); fix or unset it") from None


def webhook_rules(settings: Settings, http: HttpSettings) -> WebhookRules:
    """The filters and routing of :mod:`commands.webhooks` from both settings objects."""
    sources: dict[str, Any] = {}
    if settings.sandbox_world and not settings.mcp_config:
        sources["world"] = str(settings.sandbox_world)
    return WebhookRules(
        jira_labels=_csv(http.jira_labels),
        jira_projects=tuple(p.upper() for p in _csv(settings.jira_project_filter)),
        pagerduty_priorities=_csv(http.pagerduty_priorities),
        alert_name_patterns=_csv(http.alert_name_patterns) or ("*",),
        deploy_environments=_csv(http.deploy_environments),
        domains=http.mapping("domains"),
        domain_channels=http.mapping("domain_channels"),
        default_channel=http.default_channel,
        mode=http.webhook_mode,
        sources=sources,
        max_alerts=http.max_alerts,
        replay_window_s=http.replay_window_s,
    )
