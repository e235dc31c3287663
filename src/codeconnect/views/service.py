"""Read-only links: from a viewer id to its session, for the REST API and the live endpoint. No HTTP here.

A viewer id is a capability of its own: whoever holds it may watch the session and join it as a viewer, and
nothing reachable with it gives out the session id. It is a column of the session today; see the README for how
it becomes a revocable invite code.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.collab.auth import Issued
from codeconnect.config import Settings
from codeconnect.errors import ViewNotFound
from codeconnect.models import SessionRow
from codeconnect.participants import service as participants
from codeconnect.participants.service import NewParticipant
from codeconnect.sessions.cards import SessionCards


async def session_of(db: AsyncSession, viewer_id: str) -> str:
    """The id of the session ``viewer_id`` opens, or :class:`ViewNotFound`."""
    found = await db.scalar(select(SessionRow.id).where(SessionRow.viewer_id == viewer_id))
    if found is None:
        raise ViewNotFound()
    return found


async def join_session(
    db: AsyncSession, settings: Settings, cards: SessionCards, session_id: str, *, name: str, issued: Issued
) -> NewParticipant:
    """A new participant of ``session_id`` (found through its viewer id): always a viewer."""
    return await participants.join(db, settings, cards, session_id, name=name, role="viewer", issued=issued)


class ViewerLinks:
    """Viewer ids to session ids for the live endpoint, which has no request unit of work.

    Reads wait on the live layer's database lock (SQLite has one writer, and every transaction there takes it)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], lock: asyncio.Semaphore) -> None:
        self.sessionmaker = sessionmaker
        self.lock = lock

    async def session_of(self, viewer_id: str) -> str | None:
        async with self.lock, self.sessionmaker() as db:
            found: str | None = await db.scalar(select(SessionRow.id).where(SessionRow.viewer_id == viewer_id))
            return found
