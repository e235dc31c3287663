"""The plain records the live layer, its stores and the REST layer hand each other: no behaviour, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

# The workspace of sessions made without an API key (made by the migrations; `models` takes it from here).
DEFAULT_WORKSPACE = "default"


class ParticipantRecord(NamedTuple):
    id: str
    session_id: str
    name: str
    color: str
    role: str
    token_hash: str


@dataclass(frozen=True, slots=True)
class Mirror:
    """What the session row's mirror columns get from the live document."""

    code: str
    language: str
    title: str
    updated_at: datetime


class ParticipantCardRecord(NamedTuple):
    id: str
    name: str
    color: str
    role: str
    joined_at: datetime


class SessionCardRecord(NamedTuple):
    """What a session read answers besides the document: its row's times and link, and its participants."""

    created_at: datetime
    updated_at: datetime
    viewer_id: str
    participants: list[ParticipantCardRecord]
    # When the owner ended the session; only read for sessions whose room is not loaded (the room knows otherwise).
    ended_at: datetime | None = None


class NewSession(NamedTuple):
    """A session row as created, with its document's first update (stored with it, in one transaction)."""

    id: str
    title: str
    language: str
    code: str
    owner_key_hash: str
    viewer_id: str
    created_at: datetime
    first_update: bytes
    workspace_id: str = DEFAULT_WORKSPACE
    editor_invite_hash: str | None = None


class LogRow(NamedTuple):
    """One change for the update log: its session, the update, when the server received it and who sent it (a
    participant id; None for the server's own edits), and ``tag`` naming a server change the update alone does
    not explain (``restore``)."""

    session_id: str
    data: bytes
    at: datetime | None = None
    author: str | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """What a room is loaded from: the session's mirror columns and its log rows."""

    title: str
    language: str
    code: str
    updates: list[bytes]


class StoredSession(NamedTuple):
    """A session as its row holds it: the card, and the mirror columns, which are the document's exact text when
    ``exact`` (nothing reached the log since they were found equal to it; see ``SessionRow.log_head``)."""

    card: SessionCardRecord
    code: str
    language: str
    title: str
    exact: bool
