"""At most one open investigation per fingerprint (a partial unique index).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "fingerprint IS NOT NULL AND status IN ('QUEUED', 'RUNNING')"


def upgrade() -> None:
    op.create_index(
        "uq_open_fingerprint",
        "investigations",
        ["fingerprint"],
        unique=True,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )


def downgrade() -> None:
    op.drop_index("uq_open_fingerprint", table_name="investigations")
