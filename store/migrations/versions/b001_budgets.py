"""Cost and budgets (issue #14): cache tokens per agent run, the model router's audit trail, the
monthly spend ledger, budget approvals and the budget notices already sent.

Its own branch off the base revision (``store.db.upgrade`` runs ``upgrade heads``), like the
knowledge branch, so it does not race other rooms' migrations for the next number.

Revision ID: b001
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("budgets",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agent_runs") as batch:
        batch.add_column(sa.Column("cache_read_tokens", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cache_write_tokens", sa.Integer(), nullable=False, server_default="0"))
    # the month's spend is summed over agent runs by when they started
    op.create_index("ix_agent_runs_started_at", "agent_runs", ["started_at"])
    op.create_table(
        "model_choices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("investigation_id", sa.String(80),
                  sa.ForeignKey("investigations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(32), nullable=True),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("model", sa.String(120), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("stepped_down", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("budget_left", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_model_choices_investigation_id", "model_choices", ["investigation_id"])
    op.create_table(
        "budget_spend",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("usd", sa.Float(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "budget_approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("extra_usd", sa.Float(), nullable=True),
        sa.Column("approved_by", sa.String(200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_budget_approvals_scope_key_month", "budget_approvals", ["scope", "key", "month"])
    op.create_table(
        "budget_notices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("limit_cents", sa.Integer(), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("scope", "key", "month", "level", "limit_cents", name="uq_budget_notice"),
    )


def downgrade() -> None:
    op.drop_table("budget_notices")
    op.drop_table("budget_spend")
    op.drop_index("ix_budget_approvals_scope_key_month", table_name="budget_approvals")
    op.drop_table("budget_approvals")
    op.drop_index("ix_model_choices_investigation_id", table_name="model_choices")
    op.drop_table("model_choices")
    op.drop_index("ix_agent_runs_started_at", table_name="agent_runs")
    with op.batch_alter_table("agent_runs") as batch:
        batch.drop_column("cache_write_tokens")
        batch.drop_column("cache_read_tokens")
