"""source_events: alerts and changes received on webhooks, kept as history (the ``events`` source).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("service", sa.String(200), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "event_id", name="uq_source_event_kind_id"),
    )
    op.create_index("ix_source_events_kind_ts", "source_events", ["kind", "ts"])


def downgrade() -> None:
    op.drop_index("ix_source_events_kind_ts", table_name="source_events")
    op.drop_table("source_events")
