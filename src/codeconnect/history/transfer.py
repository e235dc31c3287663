"""A session as one JSON document (export), and a new session rebuilt from one (import). No HTTP here.

The export holds the base the history starts from and every change with its time, author and update bytes: the
document is exactly the base and the changes applied in order, so an import stores them as they were (with new
ids and keys, the authors mapped to the new participants) and the rebuilt session plays back the same history.
Participants' tokens and every key or hash stay out of it; the owner's notes are in it (an export needs the owner
key).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from pycrdt import Doc
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.collab.document import SharedDoc, initial_update
from codeconnect.collab.updates import inspect_update
from codeconnect.config import Settings
from codeconnect.errors import AppError, PayloadTooLarge, SessionNotFound
from codeconnect.history.notes import read_notes
from codeconnect.history.schemas import (
    ExportedChange,
    ExportedNotes,
    ExportedParticipant,
    ExportedSession,
    SessionExport,
    SessionImport,
)
from codeconnect.history.service import stored_history
from codeconnect.languages import normalize_language
from codeconnect.limits import check_text_bytes
from codeconnect.models import (
    DocBaseRow,
    DocUpdateRow,
    ParticipantRow,
    SessionNoteRow,
    SessionRow,
    utcnow,
)
from codeconnect.participants.names import InvalidName, normalize_name
from codeconnect.security import hash_secret, new_id, new_secret
from codeconnect.sessions.owner import check_owner
from codeconnect.sessions.service import check_code_size, new_invite
from codeconnect.titles import is_valid_title
from codeconnect.workspaces.schemas import Policy
from codeconnect.workspaces.service import check_language, effective_max_participants

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")  # what joins give (``participant_color``)


class InvalidExport(AppError):
    status_code = 422
    code = "invalid_export"


@dataclass(frozen=True, slots=True)
class _State:
    code: str
    language: str | None
    title: str | None
    runs: list[Any]
    size: int = 0  # bytes of the document's encoded state
    complete: bool = True  # every update was integrated (none waits for a dependency the updates lack)


def _replay(updates: list[bytes]) -> _State:
    shared = SharedDoc(Doc())
    for update in updates:
        shared.doc.apply_update(update)
    language = shared.meta.get("language")
    title = shared.meta.get("title")
    return _State(
        shared.text(), language if isinstance(language, str) else None, title if isinstance(title, str) else None,
        list(shared.runs.to_py() or []),
    )  # fmt: skip


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def export_session(
    maker: async_sessionmaker[AsyncSession], lock: asyncio.Semaphore, session_id: str, owner_key: str | None,
    max_changes: int,
) -> SessionExport:
    """The session's export, for its owner (404 unknown session, 401/403 without its owner key, 413
    ``history_too_long`` past ``max_changes``)."""
    async with lock, maker() as db:
        row = await db.get(SessionRow, session_id)
        if row is None:
            raise SessionNotFound()
        check_owner(row, owner_key)
        people = (
            await db.scalars(
                select(ParticipantRow).where(ParticipantRow.session_id == session_id).order_by(ParticipantRow.seq)
            )
        ).all()
        base, changes = await stored_history(db, session_id, max_changes)
        notes = await read_notes(db, session_id)
        await db.commit()  # read only; keeps what was loaded (a rollback would expire it)
    state = await asyncio.to_thread(_replay, [*base, *(c.data for c in changes)])
    language = normalize_language(state.language or "") or row.language
    return SessionExport(
        exported_at=utcnow(),
        session=ExportedSession(
            title=state.title or row.title, language=language, code=state.code, created_at=row.created_at,
            updated_at=row.updated_at, ended_at=row.ended_at,
        ),
        participants=[
            ExportedParticipant(id=p.id, name=p.name, color=p.color, role=p.role, joined_at=p.joined_at)
            for p in people
        ],
        base=[_b64(b) for b in base],
        history=[ExportedChange(at=c.at, author=c.author, tag=c.tag, update=_b64(c.data)) for c in changes],
        runs=state.runs,
        notes=ExportedNotes(text=notes.text, version=notes.version, updated_at=notes.updated_at),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Imported:
    session_id: str
    owner_key: str
    editor_invite: str | None


def _decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidExport(f"{what} is not base64.") from None


def _clocks(updates: list[bytes]) -> dict[int, int]:
    """The end clock of each client's structs over ``updates``."""
    ends: dict[int, int] = {}
    for update in updates:
        for client, _first, end in inspect_update(update).blocks:
            ends[client] = max(end, ends.get(client, 0))
    return ends


def _checked_replay(updates: list[bytes]) -> _State:
    try:
        expected = _clocks(updates)  # what the live layer lets Yrs see, and nothing else
        shared = SharedDoc(Doc())
        for update in updates:
            shared.doc.apply_update(update)
        state = shared.doc.get_update()
        # An update whose dependencies the export lacks stays parked in Yrs: the document misses its structs.
        complete = _clocks([state]) == {client: end for client, end in expected.items() if end}
        language = shared.meta.get("language")
        title = shared.meta.get("title")
        return _State(
            shared.text(), language if isinstance(language, str) else None, title if isinstance(title, str) else None,
            list(shared.runs.to_py() or []), len(state), complete,
        )  # fmt: skip
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # pycrdt reports a malformed update as a Rust panic (not an Exception)
        raise InvalidExport("The export holds an update that is not a valid Yjs update.") from None


def _check_import(body: SessionImport, settings: Settings, policy: Policy) -> None:
    """Refuse, before any replay, what a session made here could not hold (as its joins, notes and limits allow)."""
    changes = len(body.base) + len(body.history)
    if changes > settings.import_max_changes:
        raise PayloadTooLarge(
            f"The export holds {changes} changes; the limit is {settings.import_max_changes}.",
            code="import_too_large",
        )
    check_text_bytes("The notes", body.notes.text, settings.notes_max_bytes, "notes_too_large")
    limit = effective_max_participants(settings, policy)
    if len(body.participants) > limit:
        raise InvalidExport(f"The export has {len(body.participants)} participants; a session holds at most {limit}.")
    if len({p.id for p in body.participants}) != len(body.participants):
        raise InvalidExport("Two participants of the export have the same id.")
    for p in body.participants:
        try:
            name = normalize_name(p.name)
        except InvalidName as exc:
            raise InvalidExport(f"A participant's name is refused: {exc}") from None
        if name != p.name or len(name) > settings.max_name_length:
            raise InvalidExport(
                f"A participant's name is not one a join gives (at most {settings.max_name_length} characters)."
            )
        if not _COLOR.fullmatch(p.color):
            raise InvalidExport("A participant's colour is not a colour (#rrggbb).")
    for before, after in zip(body.history, body.history[1:], strict=False):
        if after.at < before.at:
            raise InvalidExport("The export's history is not in the order of its times.")


async def import_session(
    maker: async_sessionmaker[AsyncSession], lock: asyncio.Semaphore, settings: Settings, workspace_id: str,
    policy: Policy, body: SessionImport,
) -> Imported:
    """A new session rebuilt from ``body``: new ids and keys, the same document, history, runs and notes."""
    _check_import(body, settings, policy)
    base = [_decode(b, "A base update") for b in body.base]
    changes = [(c, _decode(c.update, "A change's update")) for c in body.history]
    first: bytes | None = None
    if not base and not changes:
        # Nothing recorded: the session as its fields say, created then.
        first = initial_update(body.session.code, body.session.language, body.session.title)
    updates = [*base, *(data for _, data in changes), *([first] if first else [])]
    state = await asyncio.to_thread(_checked_replay, updates)
    if not state.complete:
        raise InvalidExport("The export holds changes that depend on changes it does not hold.")
    if state.size > settings.max_document_bytes:
        raise PayloadTooLarge(
            f"The exported document is {state.size} bytes; the limit is {settings.max_document_bytes} bytes.",
            code="document_too_large",
        )
    check_code_size(state.code, settings)
    language = normalize_language(state.language or "") or body.session.language
    check_language(policy, language)
    title = next(
        (t for t in (state.title, body.session.title) if is_valid_title(t, settings.max_title_length)), None
    )
    if title is None:
        raise InvalidExport(f"The export's title is not a title (1 to {settings.max_title_length} characters, no NUL).")
    session_id, owner_key = new_id(), new_secret()
    invite = new_invite() if settings.auth == "api-key" else None
    ids: dict[str, str] = {p.id: new_id() for p in body.participants}
    now = utcnow()
    async with lock, maker() as db, db.begin():
        db.add(
            SessionRow(
                id=session_id, title=title, language=language, code=state.code, owner_key_hash=hash_secret(owner_key),
                viewer_id=new_id(), execution_enabled=True, created_at=body.session.created_at, updated_at=now,
                workspace_id=workspace_id, editor_invite_hash=None if invite is None else hash_secret(invite),
            )
        )  # fmt: skip
        await db.flush()
        for seq, p in enumerate(body.participants, 1):
            db.add(
                ParticipantRow(
                    id=ids[p.id], session_id=session_id, seq=seq, name=p.name, color=p.color, role=p.role,
                    token_hash=hash_secret(new_secret()), joined_at=p.joined_at,
                )
            )  # fmt: skip
        for data in base:
            db.add(DocBaseRow(session_id=session_id, upto=0, data=data))
        await db.flush()
        rows: list[dict[str, Any]] = [{"session_id": session_id, "data": d, "at": None} for d in base]
        if first is not None:
            rows.append({"session_id": session_id, "data": first, "at": body.session.created_at})
        rows += [
            {"session_id": session_id, "data": data, "at": c.at.astimezone(UTC),
             "author": None if c.author is None else ids.setdefault(c.author, new_id()), "tag": c.tag}
            for c, data in changes
        ]  # fmt: skip
        for row in rows:
            row.setdefault("author", None)
            row.setdefault("tag", None)
        # In order: their ids are the history's order.
        await db.execute(insert(DocUpdateRow), rows)
        if body.notes.version or body.notes.text:
            db.add(
                SessionNoteRow(
                    session_id=session_id, text=body.notes.text, version=max(1, body.notes.version),
                    updated_at=body.notes.updated_at or now,
                )
            )  # fmt: skip
    return Imported(session_id, owner_key, invite)

