"""History: the time and author of every change, the changes compaction folds away, the bases history starts
from, and the owner's private notes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Nullable: the rows already stored have no time; they become the base of their session's history below.
    op.add_column("doc_updates", sa.Column("at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("doc_updates", sa.Column("author", sa.String(64), nullable=True))
    op.add_column("doc_updates", sa.Column("tag", sa.String(16), nullable=True))
    op.create_table(
        "doc_history",
        sa.Column("id", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_doc_history_session_id_sessions", ondelete="CASCADE"
        ),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(64), nullable=True),
        sa.Column("tag", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_doc_history"),
    )
    op.create_index("ix_doc_history_session_id", "doc_history", ["session_id"])
    op.create_table(
        "doc_bases",
        sa.Column("id", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_doc_bases_session_id_sessions", ondelete="CASCADE"
        ),
        sa.Column("upto", _SEQ, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_doc_bases"),
    )
    op.create_index("ix_doc_bases_session_id", "doc_bases", ["session_id"])
    # What sessions hold today is where their history starts: their next changes apply on top of it.
    op.execute("INSERT INTO doc_bases (session_id, upto, data) SELECT session_id, 0, data FROM doc_updates")
    op.create_table(
        "session_notes",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_session_notes_session_id_sessions", ondelete="CASCADE"
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_session_notes"),
    )


def downgrade() -> None:
    op.drop_table("session_notes")
    op.drop_index("ix_doc_bases_session_id", table_name="doc_bases")
    op.drop_table("doc_bases")
    op.drop_index("ix_doc_history_session_id", table_name="doc_history")
    op.drop_table("doc_history")
    op.drop_column("doc_updates", "tag")
    op.drop_column("doc_updates", "author")
    op.drop_column("doc_updates", "at")
