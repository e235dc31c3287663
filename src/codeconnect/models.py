"""The tables, in one place so Alembic and every domain see the same metadata."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from codeconnect.collab.records import DEFAULT_WORKSPACE
from codeconnect.security import new_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class WorkspaceRow(Base):
    """A tenant: its sessions, its API keys and the policy applied to its sessions. ``policy`` is the JSON of
    ``workspaces.schemas.Policy`` (fields left out inherit what the operator's settings allow)."""

    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    policy: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKeyRow(Base):
    """A workspace's API key. Only the SHA-256 of the key is kept: the key itself is shown once, when made."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SessionRow(Base):
    """A code pad. ``code``/``language`` mirror the live document (the source of truth once it exists)."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(400))
    language: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(Text)
    owner_key_hash: Mapped[str] = mapped_column(String(64))
    # The read-only link's id: random on its own, never derived from ``id``, so a viewer link cannot lead to the
    # editor link. Made here for every new row, whoever creates it.
    viewer_id: Mapped[str] = mapped_column(String(64), index=True, unique=True, default=new_id)
    execution_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether editors may clear the shared run output (the owner's switch).
    allow_clear_output: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The id of the session's newest ``doc_updates`` row when code/language/title were last found equal to a
    # document holding every row up to it (set when a room unloads, cleared by every other mirror write). While
    # it still equals that newest id, the columns are the document's exact text and a read needs no room: ids
    # only grow (a compaction inserts its snapshot before deleting), so any later row moves the newest id on.
    log_head: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=True)
    # SHA-256 of the editor invite, where the session id alone grants nothing (`api-key` mode; NULL: none).
    editor_invite_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The tenant whose policy applies; sessions made without an API key belong to the default workspace.
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id"), index=True, default=DEFAULT_WORKSPACE, server_default=DEFAULT_WORKSPACE
    )

    # The owner's narrowing of its workspace's policy (JSON of ``SessionPolicy``; NULL: none).
    policy: Mapped[str | None] = mapped_column(Text, nullable=True)

    # Set while the owner has ended the session (None: open). Server state, not in the document: a client could
    # write anything into the document, and the room refuses every client's update while this is set.
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    participants: Mapped[list[ParticipantRow]] = relationship(
        back_populates="session", order_by="ParticipantRow.seq", cascade="all, delete-orphan"
    )


class ParticipantRow(Base):
    """Someone who joined a session. ``token_hash`` is the SHA-256 of the secret live-connection token."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("session_id", "seq", name="uq_participants_session_seq"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    color: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16), default="editor")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    session: Mapped[SessionRow] = relationship(back_populates="participants")




_SEQ = BigInteger().with_variant(Integer, "sqlite")


class DocUpdateRow(Base):
    """One entry of a session's Yjs update log: a binary update, or a snapshot (merged updates) after
    compaction. Loading a document applies every row of its session; order does not matter to the CRDT.

    A change keeps when the server received it (``at``) and who sent it (``author``, a participant id; NULL for
    the server's own edits). A row whose ``at`` is NULL is not a change: a compaction's snapshot, or a row from
    before history was kept. See ``history/``: compaction moves the changes to ``doc_history``."""

    __tablename__ = "doc_updates"

    id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # No foreign key: a removed participant's changes stay theirs in the history.
    author: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # What a server change was, where the change alone does not say it (``restore``); NULL otherwise.
    tag: Mapped[str | None] = mapped_column(String(16), nullable=True)


class DocHistoryRow(Base):
    """A change compaction folded out of the live log, kept for playback: the ``doc_updates`` row as it was, with
    its id (the history's order is the log's id order, one sequence for both tables). Append-only; dropped
    after ``CODECONNECT_HISTORY_DAYS`` (its state then goes into the session's base, ``DocBaseRow``)."""

    __tablename__ = "doc_history"

    id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    author: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tag: Mapped[str | None] = mapped_column(String(16), nullable=True)


class DocBaseRow(Base):
    """What a session's history starts from: the document before its first kept change (merged state). Empty for
    sessions made since history is kept, until the retention drops their oldest changes; ``upto`` is the id of
    the last change it holds (0: the log rows of a session from before history was kept)."""

    __tablename__ = "doc_bases"

    id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    upto: Mapped[int] = mapped_column(_SEQ)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class SessionNoteRow(Base):
    """The owner's private notes on a session: never in the document, never shown to anyone but the owner.
    ``version`` grows by one with every save (optimistic concurrency between the owner's tabs)."""

    __tablename__ = "session_notes"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProcessRow(Base):
    """A `codeconnect serve` process using this database, renewed every ``process_heartbeat_seconds``: how a
    process learns that others share the database (refused on SQLite, a loud warning without Redis)."""

    __tablename__ = "processes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    clustered: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
