"""knowledge_feedback: 👍 / 👎 and comments on investigations, for the knowledge base (issue #17).

Its own branch off the base revision (``store.db.upgrade`` runs ``upgrade heads``), so it does not
race other rooms' migrations for the next number.

Revision ID: k001
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "k001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("knowledge",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "knowledge_feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("investigation_id", sa.String(80),
                  sa.ForeignKey("investigations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("vote", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_knowledge_feedback_investigation_id", "knowledge_feedback", ["investigation_id"])


def downgrade() -> None:
    op.drop_index("ix_knowledge_feedback_investigation_id", table_name="knowledge_feedback")
    op.drop_table("knowledge_feedback")
