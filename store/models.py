"""The product's tables (SQLAlchemy 2 typed mappings).

JSON columns use ``sqlalchemy.JSON`` so the same models run on SQLite and PostgreSQL.
Times are stored as UTC and always come back timezone-aware (see :class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base

INVESTIGATION_STATUSES = ("QUEUED", "RUNNING", "COMPLETE", "FAILED", "CANCELLED")
TERMINAL_STATUSES = ("COMPLETE", "FAILED", "CANCELLED")
OPEN_STATUSES = ("QUEUED", "RUNNING")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC; SQLite drops the zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass a timezone-aware time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Investigation(Base):
    """One investigation of one incident, from trigger to report."""

    __tablename__ = "investigations"
    # At most one OPEN investigation per fingerprint, enforced by the database so two front
    # doors racing on the same alert cannot both start one (commands.investigate.start attaches).
    __table_args__ = (
        Index(
            "uq_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text("fingerprint IS NOT NULL AND status IN ('QUEUED', 'RUNNING')"),
            postgresql_where=text("fingerprint IS NOT NULL AND status IN ('QUEUED', 'RUNNING')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    origin: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    sources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mode: Mapped[str] = mapped_column(String(16), default="balanced")
    domain: Mapped[str | None] = mapped_column(String(200), nullable=True)
    priority: Mapped[str] = mapped_column(String(4), default="P2")
    fingerprint: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="QUEUED", index=True)
    phase: Mapped[str] = mapped_column(String(32), default="QUEUED")
    round: Mapped[int] = mapped_column(Integer, default=0)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    confidence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    root_cause: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    fix_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    hypotheses: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # Which worker runs it now, until when: two messages for one investigation never run at once.
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Grows by one at every take-over: a worker's writes commit only while the row still carries
    # the token it took, so a worker that lost its lease (paused, cut off) can no longer write.
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When and how often the reconciler re-enqueued it since a worker last took it (pipeline.recovery):
    # once per stall, then at growing intervals, so a long backlog is not duplicated every period.
    requeued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    requeue_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    budget_usd: Mapped[float | None] = mapped_column(Float, nullable=True)


class AgentRun(Base):
    """One agent (or the deterministic engine) doing one phase of an investigation."""

    __tablename__ = "agent_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    investigation_id: Mapped[str] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE"), index=True
    )
    agent: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    output_ref: Mapped[str | None] = mapped_column(String(400), nullable=True)
    trace_ref: Mapped[str | None] = mapped_column(String(400), nullable=True)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    # Input tokens read from / written to the prompt cache (also counted in tokens_in; priced apart).
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    tool_calls: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class PhaseCheckpoint(Base):
    """The durable record of one phase (in one hypothesis round) of an investigation."""

    __tablename__ = "phase_checkpoints"
    __table_args__ = (UniqueConstraint("investigation_id", "phase", "round", name="uq_checkpoint_phase_round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    investigation_id: Mapped[str] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE"), index=True
    )
    phase: Mapped[str] = mapped_column(String(32))
    round: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="running")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    output_ref: Mapped[str | None] = mapped_column(String(400), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProgressEvent(Base):
    """The outbox: one progress event of an investigation, numbered per investigation."""

    __tablename__ = "progress_events"
    __table_args__ = (UniqueConstraint("investigation_id", "seq", name="uq_event_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    investigation_id: Mapped[str] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """Whether one progress event reached one sink (slack, jira, ...)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "sink", name="uq_delivery_event_sink"),
        Index("ix_deliveries_sink_status_next", "sink", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("progress_events.id", ondelete="CASCADE"))
    sink: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    external_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # When a drainer first took this delivery; never reset (unlike attempts, which a 429 gives
    # back), so a later claim knows an earlier try may already have reached the sink.
    first_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The drainer holding the claim now: it renews and marks only rows that still carry its token.
    claim_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # When this delivery's current run of failures began (reset when it succeeds or is retried by
    # hand): after PM_OUTBOX_DEAD_AFTER_S of failing it is dead-lettered, never silently dropped.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Publication(Base):
    """Where an investigation was published in one sink, so publishers edit in place."""

    __tablename__ = "publications"
    __table_args__ = (
        UniqueConstraint("investigation_id", "sink", "target", name="uq_publication_target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    investigation_id: Mapped[str] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE"), index=True
    )
    sink: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200))
    external_ref: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InboundDelivery(Base):
    """A raw inbound webhook or envelope, persisted before the listener acks (dedups retries).

    ``status``: accepted (to process) -> processed | ignored | scheduled | recorded; ``failed`` (a row
    an older listener stored that no longer validates); ``dead`` (processing failed ``attempts`` times).
    """

    __tablename__ = "inbound_deliveries"
    __table_args__ = (UniqueConstraint("source", "delivery_key", name="uq_inbound_source_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    delivery_key: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    investigation_id: Mapped[str | None] = mapped_column(
        ForeignKey("investigations.id", ondelete="SET NULL"), nullable=True
    )
    #: Processing attempts that failed; at PM_WEBHOOK_MAX_ATTEMPTS the row is ``dead`` (migration i001).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class DomainConfig(Base):
    """Per-domain settings: slack channel, jira project, services, thresholds."""

    __tablename__ = "domain_configs"

    domain: Mapped[str] = mapped_column(String(200), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SourceEvent(Base):
    """An alert or a change this product received on its webhooks, kept as history.

    Alertmanager forgets resolved alerts and CI systems do not keep deploy logs for us: the
    ``events`` source kind (docs/sources.md) answers ``alerts.*`` and ``changes.list`` from here.
    ``ts`` is the event's own time as ISO-8601 UTC with Z (sortable as text); ``record`` is the
    contract's dict (docs/contracts.md).
    """

    __tablename__ = "source_events"
    __table_args__ = (
        UniqueConstraint("kind", "event_id", name="uq_source_event_kind_id"),
        Index("ix_source_events_kind_ts", "kind", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(200))
    ts: Mapped[str] = mapped_column(String(32))
    service: Mapped[str | None] = mapped_column(String(200), nullable=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KnowledgeFeedback(Base):
    """What people said of an investigation's result (👍 / 👎 / a comment), for the knowledge base."""

    __tablename__ = "knowledge_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    investigation_id: Mapped[str] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE"), index=True
    )
    vote: Mapped[int] = mapped_column(Integer, default=0)
    user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(String(32), default="slack")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: A ticket's resolution (source ``jira``): its name ("Fixed", "Won't Do"); None on a vote or a comment,
    #: and on a reopened ticket (``details.reopened``).
    resolution: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: With a resolution: ``{ticket, status, fix_versions, reopened}``.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ModelChoice(Base):
    """One decision of the model router (agents/router.py): the audit trail of which model ran and why."""

    __tablename__ = "model_choices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    investigation_id: Mapped[str] = mapped_column(
        ForeignKey("investigations.id", ondelete="CASCADE"), index=True
    )
    agent: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tier: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text)
    escalated: Mapped[bool] = mapped_column(default=False)
    stepped_down: Mapped[bool] = mapped_column(default=False)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    budget_left: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetSpend(Base):
    """The month's spend of one budget (``global``/``*`` or ``domain``/name), kept as calls are charged,
    so the gates read one row instead of summing the month's agent runs (store/budgets.py)."""

    __tablename__ = "budget_spend"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetApproval(Base):
    """An admin's go-ahead for a monthly budget that reached its stop threshold (pipeline/budgets.py).

    ``extra_usd`` None lifts the stop for the rest of the month; a number raises that month's limit by it.
    """

    __tablename__ = "budget_approvals"
    __table_args__ = (Index("ix_budget_approvals_scope_key_month", "scope", "key", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(200))
    month: Mapped[str] = mapped_column(String(7))
    extra_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetNotice(Base):
    """A budget threshold already announced (80 / 90 / 100 % of one limit in one month): said once."""

    __tablename__ = "budget_notices"
    __table_args__ = (UniqueConstraint("scope", "key", "month", "level", "limit_cents", name="uq_budget_notice"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(200))
    month: Mapped[str] = mapped_column(String(7))
    level: Mapped[int] = mapped_column(Integer)
    limit_cents: Mapped[int] = mapped_column(Integer)
    spent_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DomainMemory(Base):
    """A domain's notes for investigations (known noisy alerts, owners, runbooks, quirks), edited by people."""

    __tablename__ = "domain_memory"

    domain: Mapped[str] = mapped_column(String(200), primary_key=True)
    text: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
