"""Settings: every environment variable the product reads, in one place.

Instantiate :class:`Settings` only in a composition root (the CLI entry point,
the HTTP app factory, the worker). Nothing reads the environment at import time.
Unset variables mean the embedded default: SQLite under ``./.pm/``, an
in-process broker and worker, artifacts under ``./.pm/artifacts``, secrets from
the environment, no LLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.errors import ConfigError

_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"}


class Settings(BaseSettings):
    """Operator-guide environment variables (see ../shared/seeds operator guide)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    home: Path = Field(default=Path(".pm"), alias="PM_HOME", description="Where embedded state lives")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    rabbitmq_url: str | None = Field(default=None, alias="RABBITMQ_URL")
    s3_bucket: str | None = Field(default=None, alias="S3_BUCKET")
    s3_endpoint_url: str | None = Field(default=None, alias="S3_ENDPOINT_URL")
    anthropic_api_key: SecretStr | None = Field(default=None, alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, alias="ANTHROPIC_BASE_URL")
    # The agents (docs/llm.md): model tiers, the OpenAI-compatible provider and the tool loop's bounds
    openai_api_key: SecretStr | None = Field(
        default=None, alias="OPENAI_API_KEY",
        description="OpenAI-compatible provider (OpenAI, vLLM, Ollama): alone, or the fallback when Claude is overloaded")
    openai_base_url: str | None = Field(
        default=None, alias="OPENAI_BASE_URL", description="its /v1 endpoint, e.g. http://127.0.0.1:11434/v1 (Ollama)")
    model_fast: str | None = Field(default=None, alias="PM_MODEL_FAST", description="fast tier (default Haiku 4.5)")
    model_balanced: str | None = Field(
        default=None, alias="PM_MODEL_BALANCED", description="balanced tier (default Sonnet 4.6)")
    model_deep: str | None = Field(default=None, alias="PM_MODEL_DEEP", description="deep tier (default Opus 4.5)")
    openai_model_fast: str | None = Field(default=None, alias="PM_OPENAI_MODEL_FAST")
    openai_model_balanced: str | None = Field(default=None, alias="PM_OPENAI_MODEL_BALANCED")
    openai_model_deep: str | None = Field(default=None, alias="PM_OPENAI_MODEL_DEEP")
    agent_max_steps: int = Field(
        default=0, ge=0, le=50, alias="PM_AGENT_MAX_STEPS",
        description="model calls per agent at most (0: each prompt file's own max_steps)")
    agent_context_tokens: int = Field(default=200_000, ge=8_000, alias="PM_AGENT_CONTEXT_TOKENS")
    agent_result_share: float = Field(
        default=0.02, gt=0, le=0.5, alias="PM_AGENT_RESULT_SHARE",
        description="share of the context window one tool result may take; more is kept as a pageable artifact")
    agent_compact_share: float = Field(
        default=0.5, gt=0, le=0.95, alias="PM_AGENT_COMPACT_SHARE",
        description="compact an agent's conversation (fast tier) past this share of the window")
    agent_timeout_s: float = Field(default=120.0, gt=0, alias="PM_AGENT_TIMEOUT_S")
    vault_addr: str | None = Field(default=None, alias="VAULT_ADDR")
    vault_token: SecretStr | None = Field(default=None, alias="VAULT_TOKEN")
    vault_role_id: str | None = Field(
        default=None, alias="VAULT_ROLE_ID", description="AppRole login (with VAULT_SECRET_ID) instead of VAULT_TOKEN")
    vault_secret_id: SecretStr | None = Field(default=None, alias="VAULT_SECRET_ID")
    vault_approle_mount: str = Field(default="approle", alias="PM_VAULT_APPROLE_MOUNT")
    vault_mount: str = Field(default="secret", alias="PM_VAULT_MOUNT", description="the KV v2 secrets engine's mount")
    vault_path: str = Field(
        default="production-master", alias="PM_VAULT_PATH", description="the KV v2 secret holding one key per secret")
    vault_cache_ttl_s: float = Field(
        default=60.0, ge=0, alias="PM_VAULT_CACHE_TTL_S", description="how long a read of the secret is reused")
    vault_cacert: Path | None = Field(default=None, alias="VAULT_CACERT", description="CA bundle for an https Vault")
    jwt_secret: SecretStr | None = Field(default=None, alias="JWT_SECRET")
    api_keys: SecretStr | None = Field(default=None, alias="API_KEYS")
    mcp_access_key: SecretStr | None = Field(default=None, alias="MCP_ACCESS_KEY")
    mcp_config: Path | None = Field(default=None, alias="MCP_CONFIG")
    auto_migrate: bool = Field(
        default=True, alias="PM_AUTO_MIGRATE",
        description="apply database migrations when a server or worker starts (0 when a Job migrates)",
    )
    sources_file: Path | None = Field(
        default=None, alias="PM_SOURCES", description="sources.yaml: real Prometheus, logs, alerts, deploys (docs/sources.md)"
    )
    sandbox_world: Path | None = Field(
        default=None, alias="PM_WORLD", description="World served by the sandbox MCP servers when MCP_CONFIG is unset"
    )
    sandbox_transport: Literal["inprocess", "stdio"] = Field(
        default="inprocess", alias="PM_SANDBOX_TRANSPORT",
        description="How the bundled sandbox MCP servers are reached when MCP_CONFIG is unset: in this process "
                    "over in-memory MCP streams (one world load), or one stdio subprocess per source",
    )
    chroma_host: str | None = Field(
        default=None, alias="CHROMA_HOST",
        description="Chroma server (host[:port] or URL) for the knowledge base; unset: embedded under PM_HOME/chroma",
    )
    otel_exporter_otlp_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    jira_project_filter: str | None = Field(default=None, alias="JIRA_PROJECT_FILTER")
    jira_url: str | None = Field(default=None, alias="JIRA_URL")
    jira_user: str | None = Field(default=None, alias="JIRA_USER")
    jira_api_token: SecretStr | None = Field(default=None, alias="JIRA_API_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    pagerduty_webhook_secret: SecretStr | None = Field(default=None, alias="PAGERDUTY_WEBHOOK_SECRET")
    jira_webhook_secret: SecretStr | None = Field(default=None, alias="JIRA_WEBHOOK_SECRET")
    health_check_threshold_multiplier: float = Field(
        default=2.0, gt=0, alias="HEALTH_CHECK_THRESHOLD_MULTIPLIER"
    )
    post_deploy_check_delay_ms: int = Field(default=300_000, ge=0, alias="POST_DEPLOY_CHECK_DELAY_MS")
    port: int = Field(default=8080, ge=1, le=65535, alias="PORT")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(
        default="text", alias="PM_LOG_FORMAT", description="json: one JSON object per line (pm serve, pm worker)")
    queue_namespace: str = Field(
        default="pm", pattern=r"^[A-Za-z0-9_.-]{1,40}$", alias="PM_QUEUE_NAMESPACE",
        description="Prefix of the broker's queue keys, so several deployments can share one Redis",
    )
    worker_threads: int = Field(default=4, ge=1, le=64, alias="PM_WORKER_THREADS")
    # Durability (docs/reliability.md)
    lease_s: float = Field(
        default=60.0, gt=0, le=3600, alias="PM_LEASE_S",
        description="How long a worker's claim on an investigation lasts between renewals (renewed every third)",
    )
    reconcile_interval_s: float = Field(
        default=30.0, gt=0, le=3600, alias="PM_RECONCILE_INTERVAL_S",
        description="How often every worker process re-enqueues open investigations the queue lost",
    )
    outbox_sweep_s: float = Field(
        default=5.0, gt=0, le=3600, alias="PM_OUTBOX_SWEEP_S",
        description="How often every worker process drains due outbox deliveries",
    )
    outbox_claim_s: float = Field(
        default=30.0, gt=0, le=3600, alias="PM_OUTBOX_CLAIM_S",
        description="How long a drainer's claim on outbox deliveries lasts between renewals",
    )
    admin_channel: str | None = Field(
        default=None, alias="PM_ADMIN_CHANNEL",
        description="Slack channel id that hears operational alarms (a dead-lettered delivery)",
    )
    outbox_dead_after_s: float = Field(
        default=6 * 3600.0, gt=0, alias="PM_OUTBOX_DEAD_AFTER_S",
        description="A delivery failing this long is dead-lettered (alarm; `pm outbox retry` sends it again)",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, alias="PM_METRICS_PORT",
        description="pm worker serves Prometheus metrics on this port (docs/metrics.md)")

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in _LOG_LEVELS:
            raise ValueError(f"must be one of {sorted(_LOG_LEVELS)}")
        return v.upper()

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str | None) -> str | None:
        if v and not v.split(":", 1)[0].startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        if v and v.startswith("postgres://"):
            return "postgresql+psycopg://" + v[len("postgres://"):]
        if v and v.startswith("postgresql://"):
            return "postgresql+psycopg://" + v[len("postgresql://"):]
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str | None) -> str | None:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL, e.g. redis://127.0.0.1:6379/0")
        return v

    @field_validator("rabbitmq_url")
    @classmethod
    def _amqp(cls, v: str | None) -> str | None:
        if v and not v.startswith(("amqp://", "amqps://")):
            raise ValueError("must be an amqp:// URL, e.g. amqp://guest:guest@127.0.0.1:5672/")
        return v

    # -- derived values ---------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'pm.sqlite3').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def llm_enabled(self) -> bool:
        return self.anthropic_api_key is not None or self.openai_api_key is not None


def load_settings(**overrides: object) -> Settings:
    """Read the environment into :class:`Settings`.

    Raises:
        ConfigError: naming the first invalid variable and what it expects.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "?"
        alias = Settings.model_fields[field].alias if field in Settings.model_fields else field
        raise ConfigError(
            f"{alias or field.upper()}: {err['msg']} (got {err.get('input')!r}); fix or unset it"
        ) from None


class CostSettings(BaseSettings):
    """Model tiers, prices and budgets (docs/budgets.md): read in the composition roots only, like
    :class:`Settings`. A month or investigation budget of 0 means no limit at that level."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    model_fast: str | None = Field(default=None, alias="PM_MODEL_FAST",
                                   description="fast tier (parsing, summaries); default claude-haiku-4-5-20251001")
    model_balanced: str | None = Field(default=None, alias="PM_MODEL_BALANCED",
                                       description="balanced tier (reasoning); default claude-sonnet-4-6")
    model_deep: str | None = Field(default=None, alias="PM_MODEL_DEEP",
                                   description="deep tier (deep mode, escalation); default claude-opus-4-5")
    escalate_below: float = Field(default=60.0, ge=0, le=100, alias="PM_ROUTER_ESCALATE_BELOW",
                                  description="verifier confidence (0-100) under which a call escalates one tier")
    tight_below: float = Field(default=0.2, ge=0, le=1, alias="PM_ROUTER_TIGHT_BELOW",
                               description="share of a budget left under which calls step down one tier")
    prices: str | None = Field(default=None, alias="PM_PRICES",
                               description='JSON {"model or prefix": [input, output]} in USD per million tokens')
    investigation_usd: float = Field(default=5.0, ge=0, alias="PM_BUDGET_INVESTIGATION_USD")
    domain_month_usd: float = Field(default=500.0, ge=0, alias="PM_BUDGET_DOMAIN_MONTH_USD")
    global_month_usd: float = Field(default=10_000.0, ge=0, alias="PM_BUDGET_GLOBAL_MONTH_USD")
    domain_budgets: str | None = Field(default=None, alias="PM_BUDGET_DOMAINS",
                                       description='per-domain monthly USD: {"payments": 100} or payments=100,search=50')
    warn_at: float = Field(default=0.8, gt=0, le=1, alias="PM_BUDGET_WARN_AT")
    p1_only_at: float = Field(default=0.9, gt=0, le=1, alias="PM_BUDGET_P1_ONLY_AT")
    stop_at: float = Field(default=1.0, gt=0, le=10, alias="PM_BUDGET_STOP_AT")
    usage_event_s: float = Field(default=5.0, ge=0, alias="PM_BUDGET_STATUS_EVERY_S",
                                 description="at most one live tokens/cost status update per investigation this often")


def load_cost_settings(**overrides: object) -> CostSettings:
    """Read the environment into :class:`CostSettings`.

    Raises:
        ConfigError: naming the first invalid variable and what it expects.
    """
    try:
        return CostSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "?"
        alias = CostSettings.model_fields[field].alias if field in CostSettings.model_fields else field
        raise ConfigError(
            f"{alias or field.upper()}: {err['msg']} (got {err.get('input')!r}); fix or unset it"
        ) from None
