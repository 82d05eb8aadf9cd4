"""knowledge_feedback.resolution and .details: a Jira ticket's resolution as feedback (issue #17).

On the knowledge branch, after k002.

Revision ID: k003
Revises: k002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "k003"
down_revision: str | Sequence[str] | None = "k002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("knowledge_feedback") as batch:
        batch.add_column(sa.Column("resolution", sa.String(255), nullable=True))
        batch.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("knowledge_feedback") as batch:
        batch.drop_column("details")
        batch.drop_column("resolution")
