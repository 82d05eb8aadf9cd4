"""Fencing and a durable outbox: investigations.lease_token, requeued_at and requeue_count;
deliveries.claim_token and failing_since.

``lease_token`` grows by one at every take-over of an investigation's lease: a worker's writes
commit only while the row still carries the token it took (pipeline.machine). ``requeued_at`` and
``requeue_count`` say when and how often the reconciler re-enqueued it since a worker last took it
(pipeline.recovery): once per stall, then at growing intervals.
``claim_token`` names the drainer holding a delivery (renewed while it delivers); ``failing_since``
is when a delivery's current run of failures began (dead-lettered after hours, pipeline.publishing).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("investigations") as batch:
        batch.add_column(sa.Column("lease_token", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("requeued_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("requeue_count", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(40), nullable=True))
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("failing_since")
        batch.drop_column("claim_token")
    with op.batch_alter_table("investigations") as batch:
        batch.drop_column("requeue_count")
        batch.drop_column("requeued_at")
        batch.drop_column("lease_token")
