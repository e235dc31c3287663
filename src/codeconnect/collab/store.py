"""The durable Yjs update log with group commit, compaction and the ``sessions`` mirror columns.

Every accepted update is appended to ``doc_updates``. One writer task commits everything that arrived
within ``commit_window_ms`` of the first pending update in ONE transaction, for all rooms at once: SQLite
allows one writer, so per-update (or per-room) transactions would cap throughput at a few hundred
commits per second. Callers get a future that resolves once their update is durable (REST writes wait
for it). A failed commit is logged and retried; it is never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from pycrdt import merge_updates
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.collab.writer import BatchWriter, StoredDoc
from codeconnect.errors import ServiceUnavailable, SessionNotFound
from codeconnect.models import DocUpdateRow, SessionRow

log = logging.getLogger(__name__)

_RETRIES = 5
_SESSIONS = cast(Table, SessionRow.__table__)
_MIRROR = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("b_id"))
    .values(
        code=bindparam("b_code"),
        language=bindparam("b_language"),
        title=bindparam("b_title"),
        updated_at=bindparam("b_updated_at"),
    )
)


@dataclass(frozen=True, slots=True)
class Mirror:
    code: str
    language: str
    title: str
    updated_at: datetime


class UpdateLog:
    """Append-only per-session log of binary Yjs updates, committed in groups by one writer task."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        commit_window_ms: int,
        lock: asyncio.Semaphore,
        writer: BatchWriter | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._batch_writer = writer
        self._lock = lock
        self._window = commit_window_ms / 1000
        self._pending: list[tuple[str, bytes]] = []
        self._batch: asyncio.Future[None] | None = None
        self._mirrors: dict[str, Mirror] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0

    async def __aenter__(self) -> UpdateLog:
        self._task = asyncio.create_task(self._writer(), name="update-log-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.flush()
        except ServiceUnavailable:
            pass  # already logged; the writer makes its last attempts below
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._batch_writer is not None:
            await self._batch_writer.close()

    # --- writing -----------------------------------------------------------------------------------------

    def append(self, session_id: str, data: bytes) -> asyncio.Future[None]:
        """Queue ``data`` for the next group commit; the future resolves once it is committed."""
        self._pending.append((session_id, data))
        return self._batch_future()

    def mirror(self, session_id: str, mirror: Mirror) -> None:
        """Update the session row's code/language/title columns in the next commit (latest wins)."""
        self._mirrors[session_id] = mirror
        self._batch_future()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._pending or self._mirrors:
            await asyncio.shield(self._batch_future())
        await self._idle.wait()

    def _batch_future(self) -> asyncio.Future[None]:
        # One future per batch, shared by everything in it (a REST write waits on it; peers do not).
        fut = self._batch
        if fut is None:
            fut = self._batch = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_consume)
            self._idle.clear()
            self._wakeup.set()
        return fut

    async def _writer(self) -> None:
        failures = 0
        while True:
            await self._wakeup.wait()
            if self._closing and not self._pending and not self._mirrors:
                return
            if self._window and not self._closing:
                await asyncio.sleep(self._window)
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            mirrors, self._mirrors = self._mirrors, {}
            done, self._batch = self._batch, None
            try:
                await self._commit(batch, mirrors)
            except Exception:
                # Loud, and never dropped while the process lives: the batch goes back to the front of the
                # queue and is retried with backoff. Writers waiting for it are told the store is unavailable.
                failures += 1
                log.exception("committing %d document updates failed (%d in a row)", len(batch), failures)
                if done is not None and not done.done():
                    done.set_exception(ServiceUnavailable("The document store is unavailable; try again."))
                if self._closing and failures >= _RETRIES:
                    log.error("shutting down with %d document updates not stored", len(batch))
                    self._wakeup.set()
                    continue
                self._pending[:0] = batch
                for session_id, m in mirrors.items():
                    self._mirrors.setdefault(session_id, m)
                self._batch_future()
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            failures = 0
            self.commits += 1
            if done is not None and not done.done():
                done.set_result(None)
            if self._batch is None:
                self._idle.set()

    async def _commit(self, batch: Sequence[tuple[str, bytes]], mirrors: dict[str, Mirror]) -> None:
        if not batch and not mirrors:
            return
        if self._batch_writer is not None:
            async with self._lock:
                await self._batch_writer.write(batch, mirrors)
            return
        async with self._lock, self._sessionmaker() as db, db.begin():
            if batch:
                await db.execute(insert(DocUpdateRow), [{"session_id": s, "data": d} for s, d in batch])
            if mirrors:
                # One executemany on the table for all rooms: no ORM bookkeeping on the event loop.
                await db.execute(
                    _MIRROR,
                    [
                        {"b_id": sid, "b_code": m.code, "b_language": m.language, "b_title": m.title,
                         "b_updated_at": m.updated_at}
                        for sid, m in mirrors.items()
                    ],
                )

    # --- reading and compaction --------------------------------------------------------------------------

    @property
    def driver(self) -> BatchWriter | None:
        """Driver-level access to the same database, when there is one for it (see ``writer.py``)."""
        return self._batch_writer

    async def load(self, session_id: str) -> StoredDoc:
        if self._batch_writer is not None:
            stored = await self._batch_writer.load(session_id)
            if stored is None:
                raise SessionNotFound()
            return stored
        async with self._lock, self._sessionmaker() as db, db.begin():
            session = (
                await db.execute(
                    select(SessionRow.title, SessionRow.language, SessionRow.code).where(SessionRow.id == session_id)
                )
            ).one_or_none()
            if session is None:
                raise SessionNotFound()
            rows = (
                await db.execute(
                    select(DocUpdateRow.id, DocUpdateRow.data)
                    .where(DocUpdateRow.session_id == session_id)
                    .order_by(DocUpdateRow.id)
                )
            ).all()
        return StoredDoc(session.title, session.language, session.code, [r.id for r in rows], [r.data for r in rows])

    async def compact(self, session_id: str, snapshot: Callable[[], bytes] | None = None) -> int:
        """Replace the session's log rows by one snapshot; returns its size.

        ``snapshot`` returns the loaded document's full state. It is taken after the rows to replace were
        read, and every row reaches the log only after its update was applied to that document, so the
        snapshot contains them all. Encoding the document is fast; merging thousands of stored updates
        (the fallback when no document is loaded) takes long enough to stall the event loop.
        """
        async with self._lock, self._sessionmaker() as db, db.begin():
            count, max_id = (
                await db.execute(
                    select(func.count(), func.max(DocUpdateRow.id)).where(DocUpdateRow.session_id == session_id)
                )
            ).one()
            if count <= 1:
                return 0
            if snapshot is not None:
                merged = snapshot()
            else:
                rows = (
                    await db.scalars(
                        select(DocUpdateRow.data).where(
                            DocUpdateRow.session_id == session_id, DocUpdateRow.id <= max_id
                        )
                    )
                ).all()
                merged = merge_updates(*rows)
            # Rows up to the highest one read: the one writer of this process commits in id order.
            await db.execute(
                delete(DocUpdateRow).where(DocUpdateRow.session_id == session_id, DocUpdateRow.id <= max_id)
            )
            await db.execute(insert(DocUpdateRow).values(session_id=session_id, data=merged))
        return len(merged)


def _consume(fut: asyncio.Future[None]) -> None:
    # Peers never await their batch; reading the outcome keeps a failed one from being reported as lost.
    if not fut.cancelled():
        fut.exception()


async def add_initial_update(db: AsyncSession, session_id: str, data: bytes) -> None:
    """Store a new session's first update in the caller's unit of work (with the session row itself)."""
    db.add(DocUpdateRow(session_id=session_id, data=data))
