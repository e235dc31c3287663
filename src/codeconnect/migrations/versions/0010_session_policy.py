"""A session owner's narrowing of its workspace's policy.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: most sessions narrow nothing and follow their workspace.
    op.add_column("sessions", sa.Column("policy", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "policy")
