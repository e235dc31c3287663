"""A viewer id for every session: the read-only link's own id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_sessions = sa.table("sessions", sa.column("id", sa.String()), sa.column("viewer_id", sa.String()))


def upgrade() -> None:
    op.add_column("sessions", sa.Column("viewer_id", sa.String(64), nullable=True))
    bind = op.get_bind()
    ids = bind.execute(sa.select(_sessions.c.id)).scalars().all()
    if ids:
        # Each its own 128 random bits (as security.new_id makes them), unrelated to the session id.
        bind.execute(
            _sessions.update().where(_sessions.c.id == sa.bindparam("old_id")).values(viewer_id=sa.bindparam("new")),
            [{"old_id": sid, "new": secrets.token_urlsafe(16)} for sid in ids],
        )
    op.create_index("ix_sessions_viewer_id", "sessions", ["viewer_id"], unique=True)
    # SQLite can only make a column NOT NULL by rebuilding the table, and dropping `sessions` with foreign keys on
    # deletes every participant and update log row through their ON DELETE CASCADE. There the column stays
    # nullable in the schema; every row written through the models gets an id (its default).
    if bind.dialect.name != "sqlite":
        op.alter_column("sessions", "viewer_id", existing_type=sa.String(64), nullable=False)


def downgrade() -> None:
    op.drop_index("ix_sessions_viewer_id", table_name="sessions")
    op.drop_column("sessions", "viewer_id")
