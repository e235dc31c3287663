"""The update-log row a session's mirror columns were last found exact at (reads without loading a room).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: existing rows are simply not known to be exact until their room next unloads.
    column = sa.Column("log_head", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
    op.add_column("sessions", column)


def downgrade() -> None:
    op.drop_column("sessions", "log_head")
