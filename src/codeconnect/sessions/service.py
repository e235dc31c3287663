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
from codeconnect.errors import Conflict, SessionNotFound
from codeconnect.languages import LanguageName, get_language, normalize_language
from codeconnect.limits import check_text_bytes
from codeconnect.models import SessionRow, utcnow
from codeconnect.security import hash_secret, new_id, new_secret
from codeconnect.sessions.cards import forget_card_on_commit
from codeconnect.sessions.owner import check_owner
from codeconnect.sessions.state import session_ended
from codeconnect.workspaces.schemas import Policy
from codeconnect.workspaces.service import check_language, session_policy

if TYPE_CHECKING:  # the registry imports this package's neighbours; only the type is needed here
    from codeconnect.collab.registry import RoomRegistry
    from codeconnect.sessions.cards import SessionCards


INVITE_PREFIX = "inv_"


@dataclass(frozen=True, slots=True)
class CreatedSession:
    session: NewSession
    owner_key: str
    #: The editor invite, where the session id alone grants nothing (`api-key` mode); shown once.
    editor_invite: str | None = None


def new_invite() -> str:
    return INVITE_PREFIX + new_secret()


def check_code_size(code: str, settings: Settings) -> None:
    check_text_bytes("The code", code, settings.max_code_bytes, "code_too_large")


def canonical_language(value: str) -> LanguageName:
    lang = normalize_language(value)
    if lang is None:  # pragma: no cover - the request schema rejects unknown languages first
        raise ValueError(value)
    return lang


async def create_session(
    registry: RoomRegistry,
    settings: Settings,
    workspace_id: str,
    policy: Policy,
    *,
    title: str,
    language: str,
    code: str | None,
) -> CreatedSession:
    """A new session in ``workspace_id`` (whose policy is ``policy``), committed with its document's first update
    before this returns. No unit of work of the request's: the update log's driver stores sessions created at the
    same time together."""
    lang = canonical_language(language)
    text = get_language(lang).starter if code is None else code
    check_code_size(text, settings)
    check_language(policy, lang)
    owner_key = new_secret()
    session_id = new_id()
    invite = new_invite() if settings.auth == "api-key" else None
    # The document's first update is made once, here: every client starts from this same history.
    new = NewSession(
        id=session_id, title=title, language=lang, code=text, owner_key_hash=hash_secret(owner_key),
        viewer_id=new_id(), created_at=utcnow(), first_update=initial_update(text, lang, title),
        workspace_id=workspace_id, editor_invite_hash=None if invite is None else hash_secret(invite),
    )  # fmt: skip
    await registry.create_session(new)
    return CreatedSession(new, owner_key, invite)


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
    db: AsyncSession, registry: RoomRegistry, session_id: str, change: Callable[[SharedDoc], object],
    tag: str | None = None,
) -> SessionRow:
    """Apply ``change`` to the live document as one transaction, wait until it is in the update log, then
    refresh the session row's mirror in the request's unit of work."""
    await end_read_transaction(db)
    async with registry.use(session_id) as room:
        if room.ended:  # the room knows once loaded, on every process (see controls)
            raise session_ended()
        room.change(change, tag)
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


async def rotate_invite(
    db: AsyncSession, settings: Settings, cards: SessionCards, session_id: str, owner_key: str | None, role: str
) -> tuple[str | None, str]:
    """A new invite of ``role`` (the old one stops working): the editor invite (`api-key` mode), or the read-only
    link's id. Returns the editor invite (None for a viewer rotation) and the viewer id."""
    row = await get_session(db, session_id, for_update=True)
    check_owner(row, owner_key)
    invite = None
    if role == "editor":
        if settings.auth != "api-key":
            raise Conflict(
                "This server's sessions have no editor invite: their id is the invitation (CODECONNECT_AUTH=open).",
                code="no_editor_invite",
            )
        invite = new_invite()
        row.editor_invite_hash = hash_secret(invite)
    else:
        row.viewer_id = new_id()
        forget_card_on_commit(db, cards, session_id)  # cards carry the viewer id
    await db.flush()
    return invite, row.viewer_id


async def revoke_editor_invite(db: AsyncSession, session_id: str, owner_key: str | None) -> None:
    row = await get_session(db, session_id, for_update=True)
    check_owner(row, owner_key)
    row.editor_invite_hash = None
    await db.flush()


async def set_language(
    db: AsyncSession, registry: RoomRegistry, session_id: str, language: str
) -> SessionRow:
    lang = canonical_language(language)
    policy = await session_policy(db, session_id)
    if policy is None:
        raise SessionNotFound()
    check_language(policy, lang)
    return await _change_live(db, registry, session_id, lambda shared: shared.set_meta("language", lang))


async def restore(
    db: AsyncSession, registry: RoomRegistry, session_id: str, code: str, language: str | None
) -> SessionRow:
    """Put the code (and language, where the session's policy allows it) back as at an earlier point: one minimal
    edit through the live room, a server change tagged ``restore`` in the history, merged with whoever is typing.
    409 ``session_ended`` on an ended session; 413 ``code_too_large`` when that code is over today's limit (it may
    have been lowered since)."""
    check_code_size(code, registry.settings)
    lang = normalize_language(language) if language is not None else None
    if lang is not None:
        policy = await session_policy(db, session_id)
        if policy is None:
            raise SessionNotFound()
        if policy.languages is not None and lang not in policy.languages:
            lang = None  # no longer allowed here: the code alone goes back

    def change(shared: SharedDoc) -> None:
        shared.replace_text(code)
        if lang is not None:
            shared.set_meta("language", lang)

    return await _change_live(db, registry, session_id, change, tag="restore")
