"""Group commits of the update log through the database driver itself, off the event loop's back.

A commit through the ORM costs about a millisecond of event-loop time (session, statement processing,
result handling) forty times a second; live messages arriving meanwhile wait, which showed in the
fan-out tail. SQLite commits run in one dedicated thread on a plain ``sqlite3`` connection (the C library
releases the GIL while it works); PostgreSQL commits use one ``asyncpg`` connection, whose protocol work is
compiled code. Both write exactly what the ORM would: rows of ``doc_updates`` and the mirror columns of
``sessions`` (timestamps in the format SQLAlchemy stores and reads).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import make_url

from codeconnect.db import sqlite_path

if TYPE_CHECKING:
    from codeconnect.collab.store import Mirror

_INSERT_SQLITE = "INSERT INTO doc_updates (session_id, data) VALUES (?, ?)"
_MIRROR_SQLITE = "UPDATE sessions SET code = ?, language = ?, title = ?, updated_at = ? WHERE id = ?"
_INSERT_PG = "INSERT INTO doc_updates (session_id, data) VALUES ($1, $2)"
_MIRROR_PG = "UPDATE sessions SET code = $1, language = $2, title = $3, updated_at = $4 WHERE id = $5"


class BatchWriter(Protocol):
    async def write(self, batch: Sequence[tuple[str, bytes]], mirrors: dict[str, Mirror]) -> None: ...

    async def close(self) -> None: ...


def batch_writer(database_url: str) -> BatchWriter | None:
    """The driver-level writer for ``database_url`` (None: let the ORM do it)."""
    path = sqlite_path(database_url)
    if path is not None:
        return SqliteWriter(str(path))
    url = make_url(database_url)
    if url.drivername == "postgresql+asyncpg":
        return PostgresWriter(url.set(drivername="postgresql").render_as_string(hide_password=False))
    return None


class SqliteWriter:
    """One connection, used from one thread only."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="update-log")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=30)
            # The same settings as the app's engine (db.py).
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return self._conn

    def _write(self, batch: Sequence[tuple[str, bytes]], mirrors: dict[str, Mirror]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if batch:
                conn.executemany(_INSERT_SQLITE, batch)
            if mirrors:
                conn.executemany(
                    _MIRROR_SQLITE,
                    [
                        (m.code, m.language, m.title, _sqlite_time(m), session_id)
                        for session_id, m in mirrors.items()
                    ],
                )
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                conn.close()
                self._conn = None
            raise

    async def write(self, batch: Sequence[tuple[str, bytes]], mirrors: dict[str, Mirror]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch, mirrors)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


def _sqlite_time(m: Mirror) -> str:
    # SQLAlchemy's SQLite DateTime storage format; UTCDateTime stores UTC without an offset.
    return m.updated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class PostgresWriter:
    """One asyncpg connection, (re)opened on demand."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None

    async def write(self, batch: Sequence[tuple[str, bytes]], mirrors: dict[str, Mirror]) -> None:
        import asyncpg  # type: ignore[import-untyped]

        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn)
        conn = self._conn
        try:
            async with conn.transaction():
                if batch:
                    await conn.executemany(_INSERT_PG, batch)
                if mirrors:
                    await conn.executemany(
                        _MIRROR_PG,
                        [
                            (m.code, m.language, m.title, m.updated_at, session_id)
                            for session_id, m in mirrors.items()
                        ],
                    )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()
