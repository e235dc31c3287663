"""The editor invite of a session, for servers where the session id alone grants nothing (`api-key` mode).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: sessions of `open` mode have none (their id is the invitation), and a revoked invite is NULL.
    op.add_column("sessions", sa.Column("editor_invite_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "editor_invite_hash")
