"""The durable Yjs update log with group commit, compaction and the ``sessions`` mirror columns.

Every accepted update is appended to ``doc_updates``. One writer task commits everything that arrived
within ``commit_window_ms`` of the first pending update in ONE transaction, for all rooms at once: SQLite
allows one writer, so per-update (or per-room) transactions would cap throughput at a few hundred
commits per second. Callers get a future that resolves once their session's updates are durable (REST writes
wait for it). A failed commit is logged and retried; it is never dropped silently.

One session can never hold up another's commit:

* the mirror columns copied from a document are made storable first (:func:`storable_text`): the document may
  hold text no database column can (NUL, for PostgreSQL), and the binary log stays the truth;
* the mirror rows are written under a savepoint after the log rows, so a refused mirror never rolls back an
  update; a group that fails is written row by row, and a row that keeps failing is dropped, loudly;
* when the database refuses the log rows of a batch (not an outage), each session is committed alone and the
  refused session's updates are held back and retried alone, with their own backoff, while everyone else's
  commit as before. An outage (the database unreachable, out of disk, shutting down) stops everything: the batch
  is retried as a whole with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from asyncpg import InterfaceError as PgInterfaceError  # type: ignore[import-untyped]
from pycrdt import merge_updates
from sqlalchemy import String, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from codeconnect import metrics
from codeconnect.collab.batched import BatchedReads
from codeconnect.collab.kept import KeptSessions
from codeconnect.collab.records import (
    LogRow,
    Mirror,
    NewSession,
    ParticipantCardRecord,
    ParticipantRecord,
    SessionCardRecord,
    StoredDoc,
    StoredSession,
)
from codeconnect.collab.writer import BatchWriter, batch_writer
from codeconnect.config import Settings
from codeconnect.errors import ServiceUnavailable, SessionNotFound
from codeconnect.models import DocHistoryRow, DocUpdateRow, SessionRow

log = logging.getLogger(__name__)

_RETRIES = 5
_READ_BATCH = 256  # sessions read in one statement at most
_MAX_BACKOFF_SECONDS = 5.0
_SESSIONS = cast(Table, SessionRow.__table__)
_MIRROR = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("b_id"))
    .values(
        code=bindparam("b_code"),
        language=bindparam("b_language"),
        title=bindparam("b_title"),
        updated_at=bindparam("b_updated_at"),
        log_head=None,  # not known to hold every row (see the driver's mirror statement in writer.py)
    )
)
_TITLE_LENGTH = cast(String, _SESSIONS.c.title.type).length or 400
_LANGUAGE_LENGTH = cast(String, _SESSIONS.c.language.type).length or 16

# NUL (PostgreSQL text cannot hold it) and the surrogate code points: in a Python string every one is a lone
# surrogate, which no UTF-8 encoder (sqlite3, asyncpg) accepts. Every other character is valid text everywhere.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# SQLSTATE classes saying the database could not do the work at all, whatever the values: connection, invalid
# transaction state, authorization, missing database, rollback (serialization, deadlock), resources (disk full),
# object state (locks), operator intervention (shutdown), system and internal errors.
_OUTAGE_CLASSES = frozenset({"08", "25", "28", "3D", "40", "53", "55", "57", "58", "XX"})


def storable_text(value: str) -> str:
    """``value`` as every supported database can store it in a text column: NUL and lone surrogates become
    U+FFFD (the replacement character); everything else, other control characters included, is kept."""
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub("\ufffd", value)


def storable_mirror(mirror: Mirror) -> Mirror:
    """The mirror as its columns can hold it: storable text, and no longer than the columns."""
    return Mirror(
        code=storable_text(mirror.code),
        language=storable_text(mirror.language)[:_LANGUAGE_LENGTH],
        title=storable_text(mirror.title)[:_TITLE_LENGTH],
        updated_at=mirror.updated_at,
    )


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not work at all (unreachable, out of disk, shutting down), as
    opposed to refusing the values of a statement, which concerns only the sessions those values belong to."""
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError | sqlite3.OperationalError):
            return True
        if isinstance(err, DBAPIError) and err.connection_invalidated:
            return True
        state = getattr(err, "sqlstate", None)
        if isinstance(state, str) and state:
            return state[:2] in _OUTAGE_CLASSES
        if isinstance(err, PgInterfaceError) and not isinstance(err, ValueError):
            return True  # the client's connection, not the values (those are ValueErrors)
        err = getattr(err, "orig", None) or err.__cause__ or err.__context__
    return False


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("The document store is unavailable; try again.")


def _read_error(exc: Exception) -> Exception:
    return _unavailable() if is_outage(exc) else exc


def _backoff(failures: int) -> float:
    return min(_MAX_BACKOFF_SECONDS, 0.1 * 2.0**failures)


@dataclass(slots=True)
class _Held:
    """A session whose log rows the database refused: its updates are retried alone, with backoff."""

    failures: int = 0
    due: float = 0.0


@dataclass(slots=True)
class _Round:
    """The outcome of one writer round."""

    unstored: list[LogRow] = field(default_factory=list)
    outage: BaseException | None = None

    def sessions(self) -> set[str]:
        return {row.session_id for row in self.unstored}


class UpdateLog:
    """Append-only per-session log of binary Yjs updates, committed in groups by one writer task."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        commit_window_ms: int,
        lock: asyncio.Semaphore,
        writer: BatchWriter | None = None,
        deleted_kept: int = 10_000,
        kept_reads_bytes: int = 0,
    ) -> None:
        """``kept_reads_bytes``: the memory for exact reads of sessions nobody has open (see ``kept.py``; 0 when
        other processes share the database)."""
        self._sessionmaker = sessionmaker
        self._batch_writer = writer
        self._lock = lock
        self._window = commit_window_ms / 1000
        self._pending: list[LogRow] = []
        self._waiters: dict[str, asyncio.Future[None]] = {}  # per session: what its writers wait for
        self._batch: asyncio.Future[None] | None = None  # the whole batch: what flush() waits for
        self._mirrors: dict[str, Mirror] = {}
        self._held: dict[str, _Held] = {}
        self._mirror_failures: dict[str, int] = {}  # sessions whose mirror row failed alone, times in a row
        self._retry: asyncio.TimerHandle | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None  # the loop of the first append (see _loop)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._new_sessions: list[tuple[NewSession, asyncio.Future[None]]] = []
        # Sessions being or lately deleted: their updates and mirrors are dropped, never written (a room dropped
        # at the deletion, or a write racing it, must not put rows back or fail a commit on the missing row).
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._gone_kept = deleted_kept
        self._creator: asyncio.Task[None] | None = None
        # Reads through the driver, those that arrive together in one statement (see batched.py).
        self._stored: BatchedReads[str, StoredSession] | None = None
        self._docs: BatchedReads[str, StoredDoc] | None = None
        self._participants: BatchedReads[str, ParticipantRecord] | None = None
        # Only a driver reads rows as exact: through the ORM nothing would ever be kept.
        self.kept = KeptSessions(kept_reads_bytes if writer is not None else 0)
        if writer is not None:
            # Looked up on each statement, not bound once: the driver stays the one object to wrap or replace.
            self._stored = BatchedReads(lambda ids: writer.stored_sessions(ids), limit=_READ_BATCH,
                                        error=_read_error, name="session-reads")
            self._docs = BatchedReads(lambda ids: writer.load(ids), limit=_READ_BATCH, name="document-reads")
            self._participants = BatchedReads(lambda hashes: writer.participants(hashes), limit=_READ_BATCH,
                                              name="participant-reads")

    def _loop(self) -> asyncio.AbstractEventLoop:
        # Once per update: on Python 3.11, asyncio.get_running_loop() makes a getpid() system call each time.
        loop = self._event_loop
        if loop is None:
            loop = self._event_loop = asyncio.get_running_loop()
        return loop

    @property
    def lock(self) -> asyncio.Semaphore:
        """The live layer's turn at the database (see ``open_update_log``)."""
        return self._lock

    async def __aenter__(self) -> UpdateLog:
        self._task = asyncio.create_task(self._writer(), name="update-log-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._creator is not None:
            await asyncio.wait([self._creator])  # sessions being created are stored before the driver closes
        try:
            await self.flush()
        except ServiceUnavailable:
            pass  # already logged; the writer makes its last attempts below
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._retry is not None:
            self._retry.cancel()
        if self._batch_writer is not None:
            await self._batch_writer.close()

    # --- creating sessions ---------------------------------------------------------------------------------

    async def create_session(self, new: NewSession) -> None:
        """Store a new session with its first update; returns once they are committed.

        Through the driver, sessions created while a group is being committed go in the next group, one
        transaction each: creation costs a round trip per group, not per session, with no window to wait for.
        """
        if self._batch_writer is None:
            async with self._lock, self._sessionmaker() as db, db.begin():
                db.add(
                    SessionRow(
                        id=new.id, title=new.title, language=new.language, code=new.code,
                        owner_key_hash=new.owner_key_hash, viewer_id=new.viewer_id, execution_enabled=True,
                        created_at=new.created_at, updated_at=new.created_at, workspace_id=new.workspace_id,
                        editor_invite_hash=new.editor_invite_hash,
                    )
                )  # fmt: skip
                await db.flush()
                db.add(DocUpdateRow(session_id=new.id, data=new.first_update, at=new.created_at))
            return
        done = asyncio.get_running_loop().create_future()
        self._new_sessions.append((new, done))
        if self._creator is None:
            self._creator = asyncio.create_task(self._create_groups(self._batch_writer), name="session-creator")
        await asyncio.shield(done)  # a request that goes away leaves its session to the group

    async def _create_groups(self, driver: BatchWriter) -> None:
        try:
            while self._new_sessions:
                group, self._new_sessions = self._new_sessions, []
                error = await self._store_new(driver, group)
                if error is not None and len(group) > 1 and not is_outage(error):
                    # One session's values were refused: the others must not fail with it.
                    for one in group:
                        self._settle_new([one], await self._store_new(driver, [one]))
                else:
                    self._settle_new(group, error)
        finally:
            self._creator = None

    @staticmethod
    async def _store_new(
        driver: BatchWriter, group: Sequence[tuple[NewSession, asyncio.Future[None]]]
    ) -> Exception | None:
        try:
            await driver.create_sessions([new for new, _ in group])
        except Exception as exc:
            return exc
        return None

    @staticmethod
    def _settle_new(group: Sequence[tuple[NewSession, asyncio.Future[None]]], exc: Exception | None) -> None:
        if exc is None:
            for _, done in group:
                done.set_result(None)
            return
        if not is_outage(exc):
            log.error("storing a new session failed: %r", exc)
        error = _unavailable()
        for _, done in group:
            done.set_exception(error)
            done.exception()  # retrieved here too: its request may have gone away

    # --- writing -----------------------------------------------------------------------------------------

    def append(
        self, session_id: str, data: bytes, author: str | None = None, tag: str | None = None
    ) -> asyncio.Future[None]:
        """Queue ``data`` for the next group commit, stamped with the time it arrived and its ``author`` (a
        participant id; None: the server); the future resolves once the session's updates of this batch
        are committed, or fails with :class:`ServiceUnavailable` if they could not be (they are retried); with
        :class:`SessionNotFound` at once for a deleted session (nothing is stored)."""
        if session_id in self._gone:
            return _not_found()
        self.kept.changed(session_id)
        self._pending.append(LogRow(session_id, data, datetime.now(UTC), author, tag))
        waiter = self._waiters.get(session_id)
        if waiter is None:
            waiter = self._waiters[session_id] = self._loop().create_future()
        self._batch_future()
        return waiter

    def mirror(self, session_id: str, mirror: Mirror) -> None:
        """Update the session row's code/language/title columns in the next commit (latest wins), cleaned by
        :func:`storable_mirror`: the document may hold what the columns cannot."""
        if session_id in self._gone:
            return
        self.kept.changed(session_id)
        self._mirrors[session_id] = storable_mirror(mirror)
        self._batch_future()

    async def flush(self) -> None:
        """Wait until everything queued so far has been committed, or held back because the database refused
        that session's rows (logged; retried alone). Raises :class:`ServiceUnavailable` when the database is out."""
        if self._pending or self._mirrors:
            await asyncio.shield(self._batch_future())
        await self._idle.wait()

    def _batch_future(self) -> asyncio.Future[None]:
        # One future per batch (flush waits for it); each session's writers have their own (see append).
        fut = self._batch
        if fut is None:
            fut = self._batch = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_consume)
            self._idle.clear()
            self._wakeup.set()
        return fut

    async def _writer(self) -> None:
        outages = 0
        while True:
            await self._wakeup.wait()
            if self._closing and not self._pending and not self._mirrors:
                return
            if self._window and not self._closing:
                await asyncio.sleep(self._window)
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, {}
            mirrors, self._mirrors = self._mirrors, {}
            done, self._batch = self._batch, None
            started = time.perf_counter()
            result = await self._round(batch, mirrors)
            stored = len(batch) - len(result.unstored)
            if stored > 0 and result.outage is None:
                metrics.COMMIT_BATCH.observe(stored)
                metrics.COMMIT_DURATION.observe(time.perf_counter() - started)
            unstored = result.sessions()
            for session_id, waiter in waiters.items():
                if not waiter.done():
                    if session_id in unstored:
                        waiter.set_exception(_unavailable())
                        waiter.exception()  # peers never await theirs: not "never retrieved"; awaiters still get it
                    else:
                        waiter.set_result(None)
            if done is not None and not done.done():
                if result.outage is not None:
                    done.set_exception(_unavailable())
                else:
                    done.set_result(None)
            if result.outage is not None:
                # Loud, and never dropped while the process lives: the batch goes back to the front of the queue
                # and is retried with backoff. Writers waiting for it are told the store is unavailable.
                outages += 1
                log.error(
                    "committing %d document updates failed (%d in a row)",
                    len(result.unstored), outages, exc_info=result.outage,
                )
            else:
                outages = 0
            left = self._last_attempts(result.unstored, outages) if self._closing else result.unstored
            if self._gone:
                left = [row for row in left if row[0] not in self._gone]
            self._pending[:0] = left
            if result.outage is not None and (self._pending or self._mirrors):
                self._batch_future()
                await asyncio.sleep(_backoff(outages))
                continue
            if self._mirrors or (self._closing and self._pending):
                self._batch_future()  # mirrors to retry alone; at shutdown, held sessions get their last tries now
            elif self._pending:
                self._retry_held()
            if self._batch is None:
                self._idle.set()
            if self._closing:
                self._wakeup.set()

    def _last_attempts(self, unstored: list[LogRow], outages: int) -> list[LogRow]:
        """At shutdown: what is still worth another attempt; the rest is dropped, loudly."""
        if outages >= _RETRIES:
            log.error(
                "shutting down with %d document updates and %d session mirrors not stored",
                len(unstored), len(self._mirrors),
            )
            self._mirrors.clear()
            return []
        given_up = {r.session_id for r in unstored if r.session_id in self._held
                    and self._held[r.session_id].failures >= _RETRIES}
        for session_id in given_up:
            count = sum(1 for r in unstored if r.session_id == session_id)
            log.error("shutting down with %d document updates of session %s not stored", count, session_id)
        return [r for r in unstored if r.session_id not in given_up]

    def _retry_held(self) -> None:
        """Wake the writer when the first held session with updates waiting is due for its next attempt."""
        waiting = {row.session_id for row in self._pending}
        due = min((h.due for s, h in self._held.items() if s in waiting), default=None)
        if due is None:
            return
        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.get_running_loop().call_later(max(0.0, due - time.monotonic()), self._batch_future)

    async def _round(self, batch: list[LogRow], mirrors: dict[str, Mirror]) -> _Round:
        """Commit one batch: in the normal case ONE transaction with every log row and every mirror row."""
        result = _Round()
        main = batch
        held: dict[str, list[LogRow]] = {}
        if self._held:  # sessions refused before wait for their turn and go alone, not with everyone else
            now = time.monotonic()
            main = []
            for row in batch:
                h = self._held.get(row.session_id)
                if h is None:
                    main.append(row)
                elif self._closing or h.due <= now:
                    held.setdefault(row.session_id, []).append(row)
                else:
                    result.unstored.append(row)
        groups = self._mirror_groups(mirrors)
        try:
            errors = await self._write(main, groups)
        except Exception as exc:
            if is_outage(exc):
                result.outage = exc
                result.unstored[:0] = main
            else:
                # The database refused some values: find whose, so everyone else's are committed now.
                sessions = _by_session(main)
                log.warning("committing %d document updates of %d sessions failed; committing each session alone",
                            len(main), len(sessions), exc_info=exc)
                if len(sessions) == 1:
                    [(session_id, rows)] = sessions.items()
                    await self._refused(session_id, exc)
                    result.unstored.extend(rows)
                else:
                    await self._commit_each(sessions, result)
            if result.outage is None:
                await self._write_mirrors(groups, result)
            else:
                for session_id, mirror in mirrors.items():
                    self._mirrors.setdefault(session_id, mirror)
        else:
            await self._write_mirrors(self._settle_mirrors(groups, errors, result), result)
        if held:
            if result.outage is None:
                await self._commit_each(held, result)
            else:
                result.unstored.extend(row for rows in held.values() for row in rows)
        return result

    async def _commit_each(self, sessions: dict[str, list[LogRow]], result: _Round) -> None:
        """Each session's rows in a transaction of its own; a refused session is held, an outage stops it all."""
        for session_id, rows in sessions.items():
            if result.outage is not None:
                result.unstored.extend(rows)
                continue
            try:
                await self._write(rows, [])
            except Exception as exc:
                result.unstored.extend(rows)
                if is_outage(exc):
                    result.outage = exc
                else:
                    await self._refused(session_id, exc)
                continue
            held = self._held.pop(session_id, None)
            if held is not None:
                log.warning("the held-back document updates of session %s are stored (after %d failures)",
                            session_id, held.failures)

    async def _refused(self, session_id: str, exc: BaseException) -> None:
        """The database refused the session's rows: held back and retried, unless the session no longer exists
        (another process deleted it before this one heard of it): then they are dropped."""
        if session_id not in self._gone and not await self._still_exists(session_id):
            self.forget([session_id])
        self._hold(session_id, exc)

    async def _still_exists(self, session_id: str) -> bool:
        try:
            if self._batch_writer is not None:
                async with self._lock:
                    return await self._batch_writer.session_exists(session_id)
            async with self._lock, self._sessionmaker() as db:
                return await db.scalar(select(SessionRow.id).where(SessionRow.id == session_id)) is not None
        except Exception:
            return True  # unknown: kept and retried as before

    def _hold(self, session_id: str, exc: BaseException) -> None:
        if session_id in self._gone:
            return  # deleted meanwhile (the missing row is why): its rows are dropped when re-queued
        held = self._held.setdefault(session_id, _Held())
        held.failures += 1
        held.due = time.monotonic() + _backoff(held.failures)
        # Loud every time; the traceback once.
        log.error(
            "the database refused the document updates of session %s (%d in a row): %s; they are kept and retried "
            "alone, other sessions are not affected", session_id, held.failures, exc,
            exc_info=exc if held.failures == 1 else None,
        )

    def _mirror_groups(self, mirrors: dict[str, Mirror]) -> list[dict[str, Mirror]]:
        # All in one statement, except rows that failed before: those go alone, so they cannot fail the others.
        healthy = {s: m for s, m in mirrors.items() if s not in self._mirror_failures}
        return ([healthy] if healthy else []) + [{s: m} for s, m in mirrors.items() if s in self._mirror_failures]

    def _settle_mirrors(
        self, groups: list[dict[str, Mirror]], errors: Sequence[BaseException | None], result: _Round
    ) -> list[dict[str, Mirror]]:
        """Note what each group's savepoint did; returns the rows of failed groups, to be written one by one."""
        alone: list[dict[str, Mirror]] = []
        for group, error in zip(groups, errors, strict=True):
            if error is None:
                for session_id in group:
                    self._mirror_failures.pop(session_id, None)
            elif len(group) > 1 and not is_outage(error):
                log.warning("updating %d session rows in one statement failed (%s); updating each alone", len(group),
                            error)
                alone.extend({session_id: mirror} for session_id, mirror in group.items())
            else:
                for session_id, mirror in group.items():
                    self._mirror_failed(session_id, mirror, error, result)
        return alone

    async def _write_mirrors(self, groups: list[dict[str, Mirror]], result: _Round) -> None:
        """Mirror rows in a transaction of their own (after the log rows are safe)."""
        while groups:
            try:
                errors = await self._write([], groups)
            except Exception as exc:
                for group in groups:
                    for session_id, mirror in group.items():
                        self._mirror_failed(session_id, mirror, exc, result)
                return
            groups = self._settle_mirrors(groups, errors, result)

    def _mirror_failed(self, session_id: str, mirror: Mirror, error: BaseException, result: _Round) -> None:
        if is_outage(error):
            result.outage = result.outage or error
            self._mirrors.setdefault(session_id, mirror)  # a newer one, queued meanwhile, wins
            return
        failures = self._mirror_failures.get(session_id, 0) + 1
        self._mirror_failures[session_id] = failures
        if failures < _RETRIES:
            self._mirrors.setdefault(session_id, mirror)
        elif failures == _RETRIES:
            # A mirror is a copy: dropping it loses nothing (the log has every change, reads go through the
            # document), but the columns stay stale until a later copy of this session succeeds.
            log.error(
                "the sessions row of session %s was refused %d times in a row; its code/language/title columns are "
                "not updated (the document keeps every change)", session_id, failures, exc_info=error,
            )

    async def _write(
        self, batch: Sequence[LogRow], mirrors: Sequence[Mapping[str, Mirror]]
    ) -> list[BaseException | None]:
        """One transaction: the log rows, then each mirror group under a savepoint of its own (see ``writer.py``).
        Raises if the log rows or the commit failed (then nothing of it is stored)."""
        if not batch and not mirrors:
            return []
        try:
            return await self._write_now(batch, mirrors)
        finally:
            # Queued, these rows already dropped what was kept of their sessions; a read that began since may
            # have read the rows as they were before this commit.
            if self.kept.max_bytes:
                for row in batch:
                    self.kept.changed(row.session_id)
                for group in mirrors:
                    for session_id in group:
                        self.kept.changed(session_id)

    async def _write_now(
        self, batch: Sequence[LogRow], mirrors: Sequence[Mapping[str, Mirror]]
    ) -> list[BaseException | None]:
        if self._batch_writer is not None:
            async with self._lock:
                return await self._batch_writer.write(batch, mirrors)
        async with self._lock, self._sessionmaker() as db, db.begin():
            if batch:
                await db.execute(
                    insert(DocUpdateRow),
                    [{"session_id": r.session_id, "data": r.data, "at": r.at, "author": r.author, "tag": r.tag}
                     for r in batch],
                )  # fmt: skip
            errors: list[BaseException | None] = []
            for group in mirrors:
                try:
                    async with db.begin_nested():
                        # One executemany on the table for all rooms: no ORM bookkeeping on the event loop.
                        await db.execute(
                            _MIRROR,
                            [
                                {"b_id": sid, "b_code": m.code, "b_language": m.language, "b_title": m.title,
                                 "b_updated_at": m.updated_at}
                                for sid, m in group.items()
                            ],
                        )
                except Exception as exc:  # the savepoint is rolled back; the log rows stay
                    errors.append(exc)
                else:
                    errors.append(None)
            return errors

    # --- deleted sessions ------------------------------------------------------------------------------------

    def forget(self, session_ids: Collection[str]) -> None:
        """Drop whatever of these sessions waits to be stored, and every update or mirror of them from now on:
        they are being deleted. Writers waiting for their updates get :class:`SessionNotFound`. A batch being
        committed right now may still hold some of their rows: :meth:`flush` waits for it. At most
        ``deleted_kept`` sessions are remembered (the oldest forgotten first); by then their rooms are long gone."""
        for session_id in session_ids:
            self.kept.changed(session_id)
            self._gone[session_id] = None
            self._gone.move_to_end(session_id)
            self._held.pop(session_id, None)
            self._mirrors.pop(session_id, None)
            self._mirror_failures.pop(session_id, None)
            waiter = self._waiters.pop(session_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(SessionNotFound())
                waiter.exception()  # its writer may have gone away
        while len(self._gone) > self._gone_kept:
            self._gone.popitem(last=False)
        if self._pending:
            self._pending = [row for row in self._pending if row[0] not in self._gone]

    def restore(self, session_ids: Collection[str]) -> None:
        """The deletion of these sessions failed (nothing was deleted): store their updates again."""
        for session_id in session_ids:
            self._gone.pop(session_id, None)

    def is_gone(self, session_id: str) -> bool:
        """Whether the session was deleted (or is being deleted) while this process runs."""
        return session_id in self._gone

    # --- reading and compaction --------------------------------------------------------------------------

    @property
    def driver(self) -> BatchWriter | None:
        """Driver-level access to the same database, when there is one for it (see ``writer.py``)."""
        return self._batch_writer

    async def stored_session(self, session_id: str) -> StoredSession | None:
        """The session as its row holds it (None: no such session). Without a driver the columns are never known
        to be exact (``exact`` is False). A read of a session nobody has open is this and little else; reads
        that arrive together share a statement (see ``batched.py``)."""
        if self._stored is None:
            return await self._orm_stored_session(session_id)
        return await self.kept.read(session_id, self._stored.get)

    def changed(self, session_id: str) -> None:
        """The session's row changed, or is about to, other than through this log (its participants, links or
        end): a read of it kept in memory is dropped. Called before such a write commits and again after."""
        self.kept.changed(session_id)

    async def participant(self, token_hash: str) -> ParticipantRecord | None:
        """The participant holding the token of this hash, through the driver (a class joining at once shares
        statements); None also when there is no driver (the caller uses the ORM then)."""
        return None if self._participants is None else await self._participants.get(token_hash)

    async def _orm_stored_session(self, session_id: str) -> StoredSession | None:
        async with self._lock, self._sessionmaker() as db:
            row = await db.scalar(
                select(SessionRow).where(SessionRow.id == session_id).options(selectinload(SessionRow.participants))
            )
            if row is None:
                return None
            card = SessionCardRecord(
                row.created_at, row.updated_at, row.viewer_id,
                [ParticipantCardRecord(p.id, p.name, p.color, p.role, p.joined_at) for p in row.participants],
                row.ended_at,
            )  # fmt: skip
            return StoredSession(card, row.code, row.language, row.title, False)

    async def seal(self, session_id: str, text: Mirror) -> bool:
        """Mark the session's mirror columns exact (see ``BatchWriter.seal``, and its one caller's conditions):
        only if nothing of the session waits to be stored, and the columns can hold ``text`` unchanged. A failure
        costs nothing but the next reads' speed, so it is logged, not raised."""
        if (
            self._batch_writer is None
            or session_id in self._gone
            or session_id in self._held
            or session_id in self._mirrors
            or any(row.session_id == session_id for row in self._pending)
            or storable_mirror(text) != text
        ):
            return False
        try:
            async with self._lock:
                return await self._batch_writer.seal(session_id, text)
        except Exception as exc:
            log.warning("marking the stored text of session %s exact failed: %s", session_id, exc)
            return False
        finally:
            self.kept.changed(session_id)  # a read racing the seal may have read the row before it

    async def load(self, session_id: str) -> StoredDoc:
        if self._docs is not None:
            stored = await self._docs.get(session_id)
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
        return StoredDoc(session.title, session.language, session.code, [r.data for r in rows])

    async def compact(
        self,
        session_id: str,
        snapshot: Callable[[], bytes] | None = None,
        *,
        fold: Callable[[list[bytes]], bytes] | None = None,
    ) -> int:
        """Replace the session's log rows by one snapshot; returns its size. The changes among the replaced rows
        move to the history (``doc_history``) in the same transaction: compaction keeps loading fast, and
        playback keeps every change.

        ``snapshot`` returns the loaded document's full state. It is taken after the rows to replace were
        read, and every row reaches the log only after its update was applied to that document, so the
        snapshot contains them all. Encoding the document is fast; merging thousands of stored updates
        (the fallback when no document is loaded) takes long enough to stall the event loop. With a driver-level
        writer the database work is the driver's (off the event loop, as for commits): through the ORM a
        compaction cost the loop a few milliseconds, and rooms busy enough compact about every 500 updates.
        """
        if session_id in self._gone:
            return 0
        if fold is not None and self._batch_writer is not None:
            # Rooms shared with other processes: see BatchWriter.compact_rows.
            async with self._lock:
                return await self._batch_writer.compact_rows(session_id, fold)
        if snapshot is not None and self._batch_writer is not None:
            async with self._lock:
                return await self._batch_writer.compact(session_id, snapshot)
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
            # The snapshot before the deletion, so that row ids only grow (see SessionRow.log_head); then the rows
            # up to the highest one read: the one writer of this process commits in id order.
            await db.execute(insert(DocUpdateRow).values(session_id=session_id, data=merged))
            # The changes folded into it go on living in the history (in the same transaction: never in both
            # tables, never in neither).
            await db.execute(
                insert(DocHistoryRow).from_select(
                    ["id", "session_id", "data", "at", "author", "tag"],
                    select(
                        DocUpdateRow.id, DocUpdateRow.session_id, DocUpdateRow.data, DocUpdateRow.at,
                        DocUpdateRow.author, DocUpdateRow.tag,
                    ).where(
                        DocUpdateRow.session_id == session_id, DocUpdateRow.id <= max_id, DocUpdateRow.at.is_not(None)
                    ),
                )
            )  # fmt: skip
            await db.execute(
                delete(DocUpdateRow).where(DocUpdateRow.session_id == session_id, DocUpdateRow.id <= max_id)
            )
        return len(merged)


def open_update_log(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> UpdateLog:
    """The update log of ``settings``' database, with the driver-level writer where there is one.

    SQLite has one write lock and every transaction here takes it (BEGIN IMMEDIATE); its busy handler waits by
    sleeping, so many connections contending for it crawl. The live layer queues its own database work on the
    log's lock instead: one at a time on SQLite, a few on PostgreSQL."""
    lock = asyncio.Semaphore(1 if settings.is_sqlite else 4)
    return UpdateLog(
        sessionmaker, settings.commit_window_ms, lock, batch_writer(settings.database_url),
        deleted_kept=settings.deleted_sessions_kept,
        # With other processes a row changes without this one hearing of it in time: nothing is kept.
        kept_reads_bytes=0 if settings.is_clustered else settings.session_read_cache_bytes,
    )  # fmt: skip


def _by_session(rows: Sequence[LogRow]) -> dict[str, list[LogRow]]:
    sessions: dict[str, list[LogRow]] = {}
    for row in rows:
        sessions.setdefault(row[0], []).append(row)
    return sessions


def _not_found() -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_exception(SessionNotFound())
    fut.exception()  # peers never await theirs
    return fut


def _consume(fut: asyncio.Future[None]) -> None:
    # Peers never await their batch; reading the outcome keeps a failed one from being reported as lost.
    if not fut.cancelled():
        fut.exception()


