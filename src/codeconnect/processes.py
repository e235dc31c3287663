"""The `codeconnect serve` processes sharing a database, each renewing a row of its own.

Several processes may serve the same sessions only with PostgreSQL and Redis between them (see
``collab/redis_cluster.py``). What goes wrong otherwise is silent: on SQLite, two processes split one file's
write lock and every session's editors into groups that never see each other's edits; on PostgreSQL without
Redis, the same split. So each process keeps a row (host, pid, whether it uses Redis) renewed every
``process_heartbeat_seconds``, and

- on SQLite, a process refuses to start while another live process serves the same file;
- on PostgreSQL, a process logs a loud warning (once per change) while it sees other live processes and any
  of them, or itself, runs without Redis.

A row not renewed for three intervals is someone gone (kill -9 leaves its row; it is ignored, then replaced
or deleted by the next process to start). On one host, a row whose process no longer exists is ignored at
once, so a restart right after a crash is not refused.

On SQLite the row is not the only guard: a row names a process by host name and pid, and two containers with
the same host name, each its own PID 1, would take each other's row for their own crashed past. So `serve`
also holds an exclusive lock (``flock``) on a file beside the database for as long as it runs: a second process
on the same file, in any container of the same machine, finds it taken; the kernel releases it when the holder
exits, kill -9 included.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.config import Settings
from codeconnect.db import create_engine, create_sessionmaker, sqlite_path
from codeconnect.models import ProcessRow, utcnow
from codeconnect.security import new_id

log = logging.getLogger(__name__)

_LAPSES = 3


class SharedDatabase(RuntimeError):
    """Another live process serves the same SQLite database."""


_held_files: list[int] = []  # the descriptors of the locks this process holds until it exits


def hold_sqlite_file(settings: Settings) -> str | None:
    """Take the lock beside this SQLite database for the rest of this process's life; why not (another process
    holds it), or None."""
    path = sqlite_path(settings.database_url)
    if path is None:
        return None
    lock = path.with_name(path.name + ".serve-lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        # A folder this process may not write a file into: the process row (sqlite_refusal) still guards it.
        log.warning("could not create %s (%s); relying on the process list alone", lock, type(exc).__name__)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return (
            f"another codeconnect process serves this SQLite database (it holds {lock.name}); SQLite serves one "
            "process: stop it, or for several processes use PostgreSQL (CODECONNECT_DATABASE_URL=postgresql://...) "
            "and Redis (CODECONNECT_REDIS_URL=redis://...)"
        )
    except OSError as exc:
        # A file system without flock (some network mounts): the process row still guards it.
        os.close(fd)
        log.warning("could not lock %s (%s); relying on the process list alone", lock, type(exc).__name__)
        return None
    _held_files.append(fd)
    return None


async def sqlite_refusal(settings: Settings) -> str | None:
    """Why ``codeconnect serve`` must not start on this SQLite database (another process serves it), or None;
    checked before the server starts (after :func:`hold_sqlite_file`), so the operator reads one sentence
    rather than a traceback."""
    engine = create_engine(settings.database_url, wait_seconds=settings.db_wait_seconds)
    try:
        processes = ProcessList(create_sessionmaker(engine), settings, asyncio.Semaphore(1))
        others = await processes.others()
    finally:
        await engine.dispose()
    return _refusal(others[0]) if others else None


def _refusal(other: ProcessRow) -> str:
    return (
        f"another codeconnect process (pid {other.pid} on {other.host}) serves this SQLite database; "
        "SQLite serves one process: stop it, or for several processes use PostgreSQL "
        "(CODECONNECT_DATABASE_URL=postgresql://...) and Redis (CODECONNECT_REDIS_URL=redis://...)"
    )


class ProcessList:
    """This process's row, renewed while the app runs; a lifespan resource."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, lock: asyncio.Semaphore
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._lock = lock  # the live layer's turn at the database (SQLite: one writer at a time)
        self.id = new_id()
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self._task: asyncio.Task[None] | None = None
        self._warned: frozenset[str] | None = None

    async def __aenter__(self) -> ProcessList:
        try:
            others = await self.others()
            if self._settings.is_sqlite and others:
                raise SharedDatabase(_refusal(others[0]))
            now = utcnow()
            async with self._lock, self._sessionmaker() as db, db.begin():
                # Rows of processes long gone are cleared by whoever starts next.
                await db.execute(delete(ProcessRow).where(ProcessRow.seen_at < now - self._lapse * 10))
                db.add(self._row(now))
            self._check(others)
        except SharedDatabase:
            raise
        except Exception as exc:
            # The database may be down at start: the process starts anyway (not ready until it answers) and its
            # row is written at the next renewal.
            log.warning("could not add this process to the process list (%s); trying again", type(exc).__name__)
        self._task = asyncio.create_task(self._renew(), name="process-heartbeat")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            async with self._lock, self._sessionmaker() as db, db.begin():
                await db.execute(delete(ProcessRow).where(ProcessRow.id == self.id))
        except Exception:
            log.warning("could not remove this process's row from the process list; it lapses by itself")

    def _row(self, now: datetime) -> ProcessRow:
        return ProcessRow(
            id=self.id, host=self.host, pid=self.pid, clustered=self._settings.is_clustered, started_at=now,
            seen_at=now,
        )

    @property
    def _lapse(self) -> timedelta:
        return timedelta(seconds=_LAPSES * self._settings.process_heartbeat_seconds)

    async def others(self) -> list[ProcessRow]:
        """The other processes that renewed their rows lately and, on this host, still exist."""
        async with self._lock, self._sessionmaker() as db:
            rows = (
                await db.scalars(
                    select(ProcessRow).where(ProcessRow.seen_at >= utcnow() - self._lapse, ProcessRow.id != self.id)
                )
            ).all()
        return [row for row in rows if not self._gone(row)]

    def _gone(self, row: ProcessRow) -> bool:
        if row.host != self.host:
            return False
        if row.pid == self.pid:
            return True  # a former life of this process (a container restarted under the same pid)
        try:
            os.kill(row.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # exists, under another user
        return False

    def _check(self, others: list[ProcessRow]) -> None:
        unclustered = [row for row in others if not row.clustered]
        if not others or (self._settings.is_clustered and not unclustered):
            if self._warned:
                log.warning("this process no longer shares its database with processes outside its cluster")
            self._warned = frozenset()
            return
        names = frozenset(f"pid {row.pid} on {row.host}" for row in others)
        if names != self._warned:
            self._warned = names
            log.warning(
                "%d other codeconnect process(es) serve this database (%s) and %s run without Redis: their live "
                "rooms do not share edits, presence or limits with this process's, so people in the same session "
                "on different processes do not see each other. Set CODECONNECT_REDIS_URL on every process.",
                len(others),
                ", ".join(sorted(names)),
                "this process and some of them" if not self._settings.is_clustered else "some of them",
            )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._settings.process_heartbeat_seconds)
            try:
                async with self._lock, self._sessionmaker() as db, db.begin():
                    now = utcnow()
                    renewed = await db.execute(
                        update(ProcessRow).where(ProcessRow.id == self.id).values(seen_at=now)
                    )
                    if cast(CursorResult[Any], renewed).rowcount == 0:  # lapsed so long that someone cleared it
                        db.add(self._row(now))
                self._check(await self.others())
            except Exception as exc:
                log.warning("renewing this process's row failed (%s); trying again", type(exc).__name__)
