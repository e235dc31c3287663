"""Sessions: creation, reading, updating code, title and language. No HTTP here.

Once a session exists its live Yjs document is the truth: writes become CRDT transactions on the room
(broadcast to every connected client, committed to the update log before they return) and the row's
``code``/``language``/``title`` columns are a mirror of the document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from codeconnect.collab.document import SharedDoc, initial_update
from codeconnect.collab.records import NewSession
from codeconnect.collab.store import storable_text
from codeconnect.config import Settings
from codeconnect.errors import SessionNotFound
from codeconnect.languages import LanguageName, get_language, normalize_language
from codeconnect.limits import check_text_bytes
from codeconnect.models import SessionRow, utcnow
from codeconnect.security import hash_secret, new_id, new_secret
from codeconnect.sessions.state import session_ended
from codeconnect.workspaces.service import check_language, session_policy, workspace_policy

if TYPE_CHECKING:  # the registry imports this package's neighbours; only the type is needed here
    from codeconnect.collab.registry import RoomRegistry


@dataclass(frozen=True, slots=True)
class CreatedSession:
    session: NewSession
    owner_key: str


def check_code_size(code: str, settings: Settings) -> None:
    check_text_bytes("The code", code, settings.max_code_bytes, "code_too_large")


def canonical_language(value: str) -> LanguageName:
    lang = normalize_language(value)
    if lang is None:  # pragma: no cover - the request schema rejects unknown languages first
        raise ValueError(value)
    return lang


async def create_session(
    db: AsyncSession,
    registry: RoomRegistry,
    settings: Settings,
    workspace_id: str,
    *,
    title: str,
    language: str,
    code: str | None,
) -> CreatedSession:
    """A new session in ``workspace_id``, committed with its document's first update before this returns.
    ``db`` only reads the workspace's policy (and ends its transaction): the update log's driver stores sessions
    created at the same time together."""
    lang = canonical_language(language)
    text = get_language(lang).starter if code is None else code
    check_code_size(text, settings)
    check_language(await workspace_policy(db, workspace_id), lang)
    await end_read_transaction(db)
    owner_key = new_secret()
    session_id = new_id()
    # The document's first update is made once, here: every client starts from this same history.
    new = NewSession(
        id=session_id, title=title, language=lang, code=text, owner_key_hash=hash_secret(owner_key),
        viewer_id=new_id(), created_at=utcnow(), first_update=initial_update(text, lang, title),
        workspace_id=workspace_id,
    )  # fmt: skip
    await registry.create_session(new)
    return CreatedSession(new, owner_key)


async def get_session(db: AsyncSession, session_id: str, *, for_update: bool = False) -> SessionRow:
    stmt = select(SessionRow).where(SessionRow.id == session_id).options(selectinload(SessionRow.participants))
    if for_update:
        stmt = stmt.with_for_update()
    row = (await db.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise SessionNotFound()
    return row


async def end_read_transaction(db: AsyncSession) -> None:
    # SQLite takes its one write lock at BEGIN; a transaction left open by an earlier read would block the
    # update log's writer, which this request is about to wait for. Nothing was written yet.
    await db.commit()


def _mirror(row: SessionRow, registry: RoomRegistry) -> None:
    room = registry.peek(row.id)
    if room is None:
        return
    # Clients may write into the document what no column can hold (NUL) or what REST would refuse (a long title);
    # the document keeps it, the row gets its storable copy (the same rule as the update log's mirror).
    row.code = storable_text(room.shared.text())
    row.language = room.language()
    row.title = storable_text(room.title())[: registry.settings.max_title_length]


async def _change_live(
    db: AsyncSession, registry: RoomRegistry, session_id: str, change: Callable[[SharedDoc], object]
) -> SessionRow:
    """Apply ``change`` to the live document as one transaction, wait until it is in the update log, then
    refresh the session row's mirror in the request's unit of work."""
    await end_read_transaction(db)
    async with registry.use(session_id) as room:
        if room.ended:  # the room knows once loaded, on every process (see controls)
            raise session_ended()
        room.change(change)
        await room.committed()
        row = await get_session(db, session_id, for_update=True)
        _mirror(row, registry)
        # The time of the change itself, which later reads of the loaded room report too.
        row.updated_at = room.updated_at or utcnow()
        await db.flush()
    return row


async def update_session(
    db: AsyncSession,
    settings: Settings,
    registry: RoomRegistry,
    session_id: str,
    *,
    code: str,
    title: str | None,
) -> SessionRow:
    check_code_size(code, settings)

    def change(shared: SharedDoc) -> None:
        shared.replace_text(code)
        if title is not None:
            shared.set_meta("title", title)

    return await _change_live(db, registry, session_id, change)


async def set_language(
    db: AsyncSession, registry: RoomRegistry, session_id: str, language: str
) -> SessionRow:
    lang = canonical_language(language)
    policy = await session_policy(db, session_id)
    if policy is None:
        raise SessionNotFound()
    check_language(policy, lang)
    return await _change_live(db, registry, session_id, lambda shared: shared.set_meta("language", lang))
