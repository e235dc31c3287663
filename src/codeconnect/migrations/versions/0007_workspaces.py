"""Workspaces (tenants with a policy), their API keys, and the workspace of each session.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    workspaces = op.create_table(
        "workspaces",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("name", name=op.f("uq_workspaces_name")),
    )
    # Every existing session, and every session made without an API key, belongs here.
    op.bulk_insert(workspaces, [{"id": "default", "name": "default", "policy": "{}", "created_at": datetime.now(UTC)}])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_api_keys_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_workspace_id"), "api_keys", ["workspace_id"])
    op.add_column("sessions", sa.Column("workspace_id", sa.String(64), nullable=False, server_default="default"))
    op.create_index(op.f("ix_sessions_workspace_id"), "sessions", ["workspace_id"])
    # SQLite can only add a column with a foreign key by rebuilding the table, and dropping the old one (with
    # foreign keys on) would cascade to every participant and update-log row: there the application, which
    # takes a session's workspace from an existing key, is what keeps the reference valid.
    if op.get_bind().dialect.name != "sqlite":
        op.create_foreign_key(
            op.f("fk_sessions_workspace_id_workspaces"), "sessions", "workspaces", ["workspace_id"], ["id"]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("fk_sessions_workspace_id_workspaces"), "sessions", type_="foreignkey")
    op.drop_index(op.f("ix_sessions_workspace_id"), table_name="sessions")
    op.drop_column("sessions", "workspace_id")
    op.drop_index(op.f("ix_api_keys_workspace_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("workspaces")
