"""inbound_deliveries.attempts and last_error: a stored webhook delivery whose processing keeps
failing is dead-lettered after PM_WEBHOOK_MAX_ATTEMPTS tries (``pm deliveries list|retry``).

Its own branch off the base revision (``store.db.upgrade`` runs ``upgrade heads``), like the
knowledge and budget branches, so it does not race other branches for the next number.

Revision ID: i001
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("intake",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_deliveries") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_deliveries") as batch:
        batch.drop_column("last_error")
        batch.drop_column("attempts")
