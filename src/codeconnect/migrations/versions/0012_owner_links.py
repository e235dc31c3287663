"""A session's one outstanding owner link: its code's hash, its expiry and the owner key sealed with its code.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: most sessions have no owner link outstanding, and a claimed one is cleared.
    op.add_column("sessions", sa.Column("owner_link_hash", sa.String(64), nullable=True))
    op.add_column("sessions", sa.Column("owner_link_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sessions", sa.Column("owner_link_sealed", sa.String(256), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "owner_link_sealed")
    op.drop_column("sessions", "owner_link_expires_at")
    op.drop_column("sessions", "owner_link_hash")
