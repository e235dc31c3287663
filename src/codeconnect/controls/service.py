"""The owner's controls: end a session, reopen it, remove a participant, narrow its policy. No HTTP here.

Each decision is committed in the request's unit of work and then applied to the live layer (here and, through
the cluster, on every other process) from the commit hook, before the response is sent: once the owner has the
answer, this process's rooms refuse every client's update (ended) or have closed the removed participant's
connections. Other processes follow when the news reaches them (the cluster's events, as for card changes).

Ending is server state (``sessions.ended_at``), not something in the shared document, which any client can write.
A removed participant's row is deleted: its token then matches nothing, for REST and live alike, and its place
in the session is free again. Nothing stops its person from joining again as a new participant: the server knows
people only by the tokens it hands out (the owner can end the session instead).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from codeconnect.collab.registry import RoomRegistry
from codeconnect.config import Settings
from codeconnect.errors import NotFound
from codeconnect.models import ParticipantRow, SessionRow, utcnow
from codeconnect.sessions.cards import SessionCards, forget_card_on_commit
from codeconnect.sessions.owner import check_owner
from codeconnect.sessions.service import get_session
from codeconnect.workspaces import service as workspaces
from codeconnect.workspaces.schemas import SessionPolicy, SessionPolicyView


class ParticipantNotFound(NotFound):
    code = "participant_not_found"

    def __init__(self) -> None:
        super().__init__("This session has no participant with this id.")


async def _owned(db: AsyncSession, session_id: str, owner_key: str | None) -> SessionRow:
    # Locked: an end and a reopen at once are decided one after the other, and the live layer hears them in the
    # order they were committed.
    row = await get_session(db, session_id, for_update=True)
    check_owner(row, owner_key)
    return row


def _on_commit(db: AsyncSession, apply: Callable[[], None]) -> None:
    event.listen(db.sync_session, "after_commit", lambda _: apply(), once=True)


async def set_ended(
    db: AsyncSession, live: RoomRegistry, session_id: str, owner_key: str | None, *, ended: bool
) -> SessionRow:
    """End (or reopen) the session. Idempotent: ending an ended session keeps the time it ended."""
    row = await _owned(db, session_id, owner_key)
    if ended and row.ended_at is None:
        row.ended_at = utcnow()
    elif not ended:
        row.ended_at = None
    await db.flush()
    ended_at: datetime | None = row.ended_at
    # Applied again even when nothing changed: a process that missed the news (its Redis link was down) catches up.
    _on_commit(db, lambda: live.set_ended(session_id, ended_at))
    return row


async def remove_participant(
    db: AsyncSession,
    live: RoomRegistry,
    cards: SessionCards,
    session_id: str,
    participant_id: str,
    owner_key: str | None,
) -> None:
    """Delete the participant: its token stops working and its live connections close with 4403."""
    await _owned(db, session_id, owner_key)
    participant = await db.scalar(
        select(ParticipantRow).where(ParticipantRow.id == participant_id, ParticipantRow.session_id == session_id)
    )
    if participant is None:
        raise ParticipantNotFound()
    token_hash = participant.token_hash
    forget_card_on_commit(db, cards, session_id)
    await db.delete(participant)
    await db.flush()
    _on_commit(db, lambda: live.remove(session_id, participant_id, token_hash))


async def session_policy(db: AsyncSession, settings: Settings, session_id: str) -> SessionPolicyView:
    return await workspaces.session_policy_view(db, settings, await get_session(db, session_id))


async def set_session_policy(
    db: AsyncSession, settings: Settings, session_id: str, owner_key: str | None, wanted: SessionPolicy
) -> SessionPolicyView:
    """The owner narrows the session's policy. Read where it applies (joins, language switches, runs, the room's
    check of client run records) from the row, so it holds everywhere as soon as it is committed."""
    row = await _owned(db, session_id, owner_key)
    return await workspaces.set_session_policy(db, settings, row, wanted)
