"""The spine: investigations, agent runs, checkpoints, outbox, deliveries, publications,
inbound deliveries, domain configs.

Revision ID: 0001
Revises:
Create Date: 2026-02-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "investigations",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("origin", sa.JSON, nullable=False),
        sa.Column("trigger", sa.JSON, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("domain", sa.String(200)),
        sa.Column("priority", sa.String(4), nullable=False),
        sa.Column("fingerprint", sa.String(128)),
        sa.Column("requested_by", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("verdict", sa.String(16)),
        sa.Column("confidence", sa.Integer),
        sa.Column("root_cause", sa.JSON),
        sa.Column("fix_plan", sa.JSON),
        sa.Column("hypotheses", sa.JSON),
        sa.Column("report", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lease_owner", sa.String(80)),
        sa.Column("lease_until", _TS),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("finished_at", _TS),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("budget_usd", sa.Float),
    )
    op.create_index("ix_investigations_fingerprint", "investigations", ["fingerprint"])
    op.create_index("ix_investigations_status", "investigations", ["status"])

    op.create_table(
        "agent_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "investigation_id", sa.String(80),
            sa.ForeignKey("investigations.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("output_ref", sa.String(400)),
        sa.Column("trace_ref", sa.String(400)),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("tool_calls", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("duration_ms", sa.Integer),
    )
    op.create_index("ix_agent_runs_investigation_id", "agent_runs", ["investigation_id"])

    op.create_table(
        "phase_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "investigation_id", sa.String(80),
            sa.ForeignKey("investigations.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("output", sa.JSON),
        sa.Column("output_ref", sa.String(400)),
        sa.Column("error", sa.Text),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.UniqueConstraint("investigation_id", "phase", "round", name="uq_checkpoint_phase_round"),
    )
    op.create_index("ix_phase_checkpoints_investigation_id", "phase_checkpoints", ["investigation_id"])

    op.create_table(
        "progress_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "investigation_id", sa.String(80),
            sa.ForeignKey("investigations.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("investigation_id", "seq", name="uq_event_seq"),
    )
    op.create_index("ix_progress_events_investigation_id", "progress_events", ["investigation_id"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "event_id", sa.Integer, sa.ForeignKey("progress_events.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("sink", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("external_ref", sa.JSON),
        sa.UniqueConstraint("event_id", "sink", name="uq_delivery_event_sink"),
    )
    op.create_index("ix_deliveries_sink_status_next", "deliveries", ["sink", "status", "next_attempt_at"])

    op.create_table(
        "publications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "investigation_id", sa.String(80),
            sa.ForeignKey("investigations.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("sink", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("external_ref", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("investigation_id", "sink", "target", name="uq_publication_target"),
    )
    op.create_index("ix_publications_investigation_id", "publications", ["investigation_id"])

    op.create_table(
        "inbound_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("delivery_key", sa.String(200), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "investigation_id", sa.String(80), sa.ForeignKey("investigations.id", ondelete="SET NULL")
        ),
        sa.UniqueConstraint("source", "delivery_key", name="uq_inbound_source_key"),
    )

    op.create_table(
        "domain_configs",
        sa.Column("domain", sa.String(200), primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "domain_configs", "inbound_deliveries", "publications", "deliveries",
        "progress_events", "phase_checkpoints", "agent_runs", "investigations",
    ):
        op.drop_table(table)
