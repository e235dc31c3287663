"""Whether a session's editors may clear its shared run output (the owner's switch; on by default).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default fills existing rows (SQLite cannot add a NOT NULL column without one).
    op.add_column(
        "sessions", sa.Column("allow_clear_output", sa.Boolean(), nullable=False, server_default=sa.true())
    )


def downgrade() -> None:
    op.drop_column("sessions", "allow_clear_output")
