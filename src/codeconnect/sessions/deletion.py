"""Deleting sessions with everything they hold, on every process. No HTTP here.

A session's rows are its ``sessions`` row, its participants, its update log (``doc_updates``), its history
(``doc_history`` and the base it starts from, ``doc_bases``) and the owner's notes (``session_notes``); run output
lives in the document, so in the log and the history. What the processes keep of it in memory goes too: its loaded
room (dropped without a flush, its connections closed with 4404), the first update kept for a new session's first
connection, the tokens checked lately (``RoomRegistry.retire``), its card (``sessions/cards.py``), its replayed
history (``history/service.py``) and the long-polls waiting for its notes (answered: 404); with Redis, its stream
and keys.

The order is what keeps a room being written from bringing the session back: first the session is retired here
(its updates are dropped from then on, the room is dropped), then the update log's batch in flight is waited for,
then the rows are deleted in one transaction, and only once that is committed are the other processes told and the
connections closed. A process that has not heard yet and commits an update meets the missing session row; its
update log then finds the session gone and drops those updates (see ``collab/store.py``). If the deletion fails
(the database is away), nothing was deleted: the session is restored and its connections are closed as for a
restart, so that clients reconnect and resend what the dropped room had not stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.collab.protocol import SESSION_DELETED, CloseCode
from codeconnect.collab.registry import RoomRegistry
from codeconnect.collab.room import Room
from codeconnect.errors import SessionNotFound
from codeconnect.models import DocBaseRow, DocHistoryRow, DocUpdateRow, ParticipantRow, SessionNoteRow, SessionRow
from codeconnect.sessions.cards import SessionCards
from codeconnect.sessions.owner import check_owner

log = logging.getLogger(__name__)

TOPIC = "session-deleted"  # the cluster's event: the deleted session ids, comma-separated (ids hold no comma)

#: Picks, inside the deleting transaction, which of the sessions asked for may go (locking their rows); the
#: others are kept. The purge uses it to check again that each is still idle.
Chooser = Callable[[AsyncSession, list[str]], Awaitable[list[str]]]


async def delete_rows(db: AsyncSession, session_ids: Sequence[str]) -> list[str]:
    """Delete the sessions' rows and everything that refers to them (the foreign keys cascade too; explicit here so
    that nothing depends on it); returns the ids whose session row was deleted."""
    if not session_ids:
        return []
    ids = list(session_ids)
    await db.execute(delete(DocUpdateRow).where(DocUpdateRow.session_id.in_(ids)))
    await db.execute(delete(DocHistoryRow).where(DocHistoryRow.session_id.in_(ids)))
    await db.execute(delete(DocBaseRow).where(DocBaseRow.session_id.in_(ids)))
    await db.execute(delete(SessionNoteRow).where(SessionNoteRow.session_id.in_(ids)))
    await db.execute(delete(ParticipantRow).where(ParticipantRow.session_id.in_(ids)))
    result = await db.execute(delete(SessionRow).where(SessionRow.id.in_(ids)).returning(SessionRow.id))
    return list(cast(CursorResult[Any], result).scalars().all())


class SessionDeletion:
    """Deletes sessions, here and, through the cluster, in every process. One per app (``app.state.deletion``)."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], registry: RoomRegistry, cards: SessionCards,
        forget: Sequence[Callable[[str], None]] = (),
    ) -> None:  # fmt: skip
        self._sessionmaker = sessionmaker
        self.registry = registry
        self.cards = cards
        self._also_forget = list(forget)  # what else this process keeps per session (its replayed history)
        registry.cluster.listen(TOPIC, self.apply_shared)

    async def delete(self, session_ids: Sequence[str], choose: Chooser | None = None) -> list[str]:
        """Delete these sessions with everything they hold; returns those deleted (``choose`` may keep some).
        Raises what the database raised; then nothing was deleted."""
        ids = list(dict.fromkeys(session_ids))
        if not ids:
            return []
        registry = self.registry
        rooms = registry.retire(ids)
        try:
            # A batch being committed may still hold their rows: past it, nothing of them is written any more.
            await registry.log.flush()
            async with registry.db_lock, self._sessionmaker() as db, db.begin():
                chosen = ids if choose is None else await choose(db, ids)
                deleted = await delete_rows(db, chosen)
        except BaseException:
            registry.restore(ids)
            registry.evict(rooms, CloseCode.SERVICE_RESTART, "try again")
            raise
        gone = set(deleted)
        kept = [session_id for session_id in ids if session_id not in gone]
        registry.restore(kept)
        registry.evict([room for room in rooms if room.session_id not in gone], CloseCode.SERVICE_RESTART, "try again")
        if deleted:
            # Again: a connection or read racing the deletion may have loaded a room or checked a token meanwhile.
            rooms = [room for room in rooms if room.session_id in gone] + self._forget(deleted)
            registry.evict(rooms, CloseCode.NOT_FOUND, SESSION_DELETED)
            if registry.cluster.shared:
                registry.cluster.share(TOPIC, ",".join(deleted).encode())
                await registry.cluster.forget(deleted)
        return deleted

    def _forget(self, session_ids: Sequence[str]) -> list[Room]:
        """Drop what this process holds of deleted sessions; returns their rooms that were still loaded (a read or
        connection that raced the deletion may have brought one back)."""
        rooms = self.registry.retire(session_ids)
        for session_id in session_ids:
            self.cards.forget(session_id)
            for forget in self._also_forget:
                forget(session_id)
        return rooms

    def apply_shared(self, event: bytes) -> None:
        """Another process deleted these sessions: close their connections here and forget them."""
        ids = [session_id for session_id in event.decode().split(",") if session_id]
        self.registry.evict(self._forget(ids), CloseCode.NOT_FOUND, SESSION_DELETED)


async def delete_owned(db: AsyncSession, deletion: SessionDeletion, session_id: str, owner_key: str | None) -> None:
    """The owner's deletion of a session: 404 unknown, 401 without the owner key, 403 with another key."""
    owner_key_hash = await db.scalar(select(SessionRow.owner_key_hash).where(SessionRow.id == session_id))
    if owner_key_hash is None:
        raise SessionNotFound()
    check_owner(SessionRow(owner_key_hash=owner_key_hash), owner_key)
    # SQLite takes its one write lock at BEGIN: the request's read transaction ends before the deletion's starts.
    await db.commit()
    if not await deletion.delete([session_id]):
        raise SessionNotFound()  # deleted by someone else meanwhile
    log.info("a session was deleted by its owner")
