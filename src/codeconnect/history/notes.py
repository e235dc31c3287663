"""The owner's private notes on a session. No HTTP here.

Notes live in their own table (``session_notes``), never in the shared document: nothing a participant, a viewer or
an invite can reach reads that table, and the only routes that do need the owner key (``router.py``).

**Live across the owner's tabs.** A save carries the version it was made on; a save on an older version is refused
(409 ``notes_version_conflict``), so two tabs never silently overwrite each other. Tabs follow each other by
long-polling: ``GET .../notes?since=<version>`` answers at once when the stored version differs, else waits up to
``CODECONNECT_NOTES_WAIT_SECONDS`` for a save (heard in this process, or from another through the cluster) and
answers the version then stored. The key travels in the ``X-Owner-Key`` header of each request, never in a URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from codeconnect.collab.cluster import Cluster
from codeconnect.errors import Conflict, SessionNotFound, TooManyRequests
from codeconnect.models import SessionNoteRow, SessionRow, utcnow
from codeconnect.sessions.owner import check_owner

TOPIC = "notes-saved"  # the cluster's event: the session id whose notes were saved


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Notes:
    text: str
    version: int  # 0: never saved
    updated_at: datetime | None


async def check_notes_owner(db: AsyncSession, session_id: str, owner_key: str | None) -> None:
    owner_key_hash = await db.scalar(select(SessionRow.owner_key_hash).where(SessionRow.id == session_id))
    if owner_key_hash is None:
        raise SessionNotFound()
    check_owner(SessionRow(owner_key_hash=owner_key_hash), owner_key)


async def read_notes(db: AsyncSession, session_id: str) -> Notes:
    row = (
        await db.execute(
            select(SessionNoteRow.text, SessionNoteRow.version, SessionNoteRow.updated_at).where(
                SessionNoteRow.session_id == session_id
            )
        )
    ).first()
    return Notes("", 0, None) if row is None else Notes(row.text, row.version, row.updated_at)


async def save_notes(db: AsyncSession, session_id: str, text: str, version: int) -> Notes:
    """Store ``text`` as the version after ``version``; 409 if the stored version is not ``version``."""
    now = utcnow()
    result = await db.execute(
        update(SessionNoteRow)
        .where(SessionNoteRow.session_id == session_id, SessionNoteRow.version == version)
        .values(text=text, version=version + 1, updated_at=now)
    )
    if isinstance(result, CursorResult) and result.rowcount == 1:
        return Notes(text, version + 1, now)
    if version == 0:
        try:
            async with db.begin_nested():
                db.add(SessionNoteRow(session_id=session_id, text=text, version=1, updated_at=now))
            return Notes(text, 1, now)
        except IntegrityError:
            pass  # another tab saved the first version meanwhile
    current = await read_notes(db, session_id)
    raise Conflict(
        f"The notes were saved meanwhile (version {current.version}); read them again and save on that version.",
        code="notes_version_conflict",
    )


class NotesWatch:
    """Wakes the long-polls of a session's notes when they are saved here or on another process.

    Waiters are bounded per session and in all (429 ``notes_waiters_exceeded`` past either); one whose client
    goes away gives its place back at once (the router passes ``gone``). When the server starts to stop
    (:meth:`stop`, called by the HTTP protocol as uvicorn's graceful shutdown begins) every waiter answers at once,
    and so does every later one: uvicorn waits for requests in flight, and a long-poll would otherwise hold a
    SIGTERM for its whole wait. The owner's page then asks again, of whichever process answers."""

    def __init__(self, cluster: Cluster, per_session: int, total: int) -> None:
        self._cluster = cluster
        self._per_session = per_session
        self._total = total
        self._waiting = 0
        self._events: dict[str, tuple[asyncio.Event, int]] = {}  # per session: its event, how many wait
        self._stopping = False
        cluster.listen(TOPIC, lambda event: self._wake(event.decode()))

    def waiting(self) -> int:
        """How many long-polls wait in this process."""
        return self._waiting

    def saved(self, session_id: str) -> None:
        self._wake(session_id)
        if self._cluster.shared:
            self._cluster.share(TOPIC, session_id.encode())

    def forget(self, session_id: str) -> None:
        """The session was deleted: its waiting long-polls answer now (and find it gone)."""
        self._wake(session_id)

    def stop(self) -> None:
        """The server is stopping: every waiter answers now, and no new one waits."""
        self._stopping = True
        for event, _count in self._events.values():
            event.set()
        self._events.clear()

    def _wake(self, session_id: str) -> None:
        waiting = self._events.pop(session_id, None)
        if waiting is not None:
            waiting[0].set()

    async def wait(
        self, session_id: str, timeout: float, gone: Callable[[], Awaitable[object]] | None = None
    ) -> bool:
        """Until the next save of the session's notes, ``timeout`` seconds, or until ``gone()`` returns (the
        waiter's client went away: its place is free at once); False in that last case. 429 past the bounds."""
        if self._stopping:
            return True
        event, count = self._events.get(session_id) or (asyncio.Event(), 0)
        if count >= self._per_session or self._waiting >= self._total:
            raise TooManyRequests(
                "Too many requests wait for these notes already; close other tabs or try again later.",
                code="notes_waiters_exceeded",
            )
        self._events[session_id] = (event, count + 1)
        self._waiting += 1
        saved = asyncio.ensure_future(event.wait())
        left = asyncio.ensure_future(gone()) if gone is not None else None
        try:
            await asyncio.wait([saved] if left is None else [saved, left], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            return left is None or not left.done() or saved.done()
        finally:
            saved.cancel()
            if left is not None:
                failed = left.exception() if left.done() and not left.cancelled() else None
                if failed is not None:
                    # A receive that failed instead of saying "disconnect": the client is gone either way.
                    log.debug("a notes waiter's client went away: %r", failed)
                left.cancel()
            self._waiting -= 1
            waiting = self._events.get(session_id)
            if waiting is not None and waiting[0] is event:
                if waiting[1] <= 1:
                    del self._events[session_id]
                else:
                    self._events[session_id] = (event, waiting[1] - 1)
