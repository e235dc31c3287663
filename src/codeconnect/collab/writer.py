"""The live layer's database work through the driver itself, off the event loop's back: group commits of the
update log, and the reads of a connection's first moments (its token, its session's stored document).

A commit through the ORM costs about a millisecond of event-loop time (session, statement processing,
result handling) forty times a second; live messages arriving meanwhile wait, which showed in the
fan-out tail. A read through the ORM and aiosqlite costs several thread round trips; with a class of fifty
joining at once they queued behind each other for hundreds of milliseconds. SQLite work runs in one
dedicated thread on a plain ``sqlite3`` connection (the C library releases the GIL while it works);
PostgreSQL work uses one ``asyncpg`` connection, whose protocol work is compiled code. Both write exactly
what the ORM would: rows of ``doc_updates`` and the mirror columns of ``sessions`` (timestamps in the format
SQLAlchemy stores and reads).

A write is one transaction: the log rows first, then each group of mirror rows under a savepoint of its own, so
a refused mirror row rolls back only its group, never an update. What to do about a refused group (retry its
rows one by one, drop one that keeps failing) is the store's decision; the text reaching the columns was made
storable there (``store.storable_mirror``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import make_url

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
from codeconnect.db import sqlite_path

# In sqlite3's parameter style; "?" is rewritten to "$n" for asyncpg below.
_INSERT = "INSERT INTO doc_updates (session_id, data, at, author, tag) VALUES (?, ?, ?, ?, ?)"
# A compaction moves the changes it folds into the history, in its transaction (see models.DocHistoryRow).
_HISTORY_COLUMNS = "id, session_id, data, at, author, tag"
_MOVE_UPTO = (
    f"INSERT INTO doc_history ({_HISTORY_COLUMNS}) SELECT {_HISTORY_COLUMNS} FROM doc_updates"
    " WHERE session_id = ? AND id <= ? AND at IS NOT NULL"
)
_MOVE_ID = (
    f"INSERT INTO doc_history ({_HISTORY_COLUMNS}) SELECT {_HISTORY_COLUMNS} FROM doc_updates"
    " WHERE id = ? AND at IS NOT NULL"
)
_MOVE_IDS_PG = (
    f"INSERT INTO doc_history ({_HISTORY_COLUMNS}) SELECT {_HISTORY_COLUMNS} FROM doc_updates"
    " WHERE id = ANY($1::bigint[]) AND at IS NOT NULL"
)
# A mirror written while the room is loaded is not known to hold every row: it clears ``log_head`` (models.py).
_MIRROR = "UPDATE sessions SET code = ?, language = ?, title = ?, updated_at = ?, log_head = NULL WHERE id = ?"
# Marks the columns exact up to the newest row, if they hold the unloading document's text (see models.py).
_SEAL = (
    "UPDATE sessions SET log_head = (SELECT max(id) FROM doc_updates WHERE session_id = ?)"
    " WHERE id = ? AND code = ? AND language = ? AND title = ?"
)
# Whether the columns are still exact: nothing was appended, compacted or mirrored since the seal.
_EXACT = "s.log_head IS NOT NULL AND s.log_head = (SELECT max(d.id) FROM doc_updates d WHERE d.session_id = s.id)"
# Sessions are read many at a time (see UpdateLog.stored_session); the rows come back in any order, with their ids.
_STORED_SESSIONS = (
    f"SELECT s.id, s.created_at, s.updated_at, s.viewer_id, s.code, s.language, s.title, {_EXACT}, s.ended_at"
    " FROM sessions s WHERE s.id IN ({ids})"
)
_PARTICIPANTS_OF = (
    "SELECT session_id, id, name, color, role, joined_at FROM participants WHERE session_id IN ({ids})"
    " ORDER BY session_id, seq"
)
_PARTICIPANTS = "SELECT id, session_id, name, color, role, token_hash FROM participants WHERE token_hash IN ({ids})"
_SESSION_EXISTS = "SELECT 1 FROM sessions WHERE id = ?"
_SESSION_COLUMNS = "SELECT id, title, language, code FROM sessions WHERE id IN ({ids})"
_DOC_ROWS = "SELECT session_id, data FROM doc_updates WHERE session_id IN ({ids}) ORDER BY id"
_LOG_EXTENT = "SELECT count(*), max(id) FROM doc_updates WHERE session_id = ?"
_DELETE_UPTO = "DELETE FROM doc_updates WHERE session_id = ? AND id <= ?"
_DOC_ROWS_WITH_IDS = "SELECT id, data FROM doc_updates WHERE session_id = ? ORDER BY id"
# One compaction of a session at a time across processes; a process that does not get it skips its turn (the
# lock is the transaction's, released at its end: a dead process holds nothing).
_COMPACTION_LOCK_PG = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 2026))"
_DELETE_IDS_PG = "DELETE FROM doc_updates WHERE id = ANY($1::bigint[])"
_SESSION_CARD = "SELECT created_at, updated_at, viewer_id FROM sessions WHERE id = ?"
_PARTICIPANT_CARDS = "SELECT id, name, color, role, joined_at FROM participants WHERE session_id = ? ORDER BY seq"
# PostgreSQL reads a session's document, or its card, in one statement (one snapshot, one round trip): a read of
# a session nobody has open made eight round trips on the log's one connection (two read-only transactions of
# BEGIN, two SELECTs and COMMIT), which capped such reads at about 170 a second.
_LOAD_PG = (
    "SELECT s.id, s.title, s.language, s.code,"
    " ARRAY(SELECT d.data FROM doc_updates d WHERE d.session_id = s.id ORDER BY d.id)"
    " FROM sessions s WHERE s.id = ANY($1::text[])"
)
_PARTICIPANTS_PG = (
    "SELECT id, session_id, name, color, role, token_hash FROM participants WHERE token_hash = ANY($1::text[])"
)
_CARD_PG = (
    "SELECT s.created_at, s.updated_at, s.viewer_id,"
    " ARRAY(SELECT ROW(p.id, p.name, p.color, p.role, p.joined_at) FROM participants p"
    " WHERE p.session_id = s.id ORDER BY p.seq)"
    " FROM sessions s WHERE s.id = $1"
)
_STORED_SESSIONS_PG = (
    f"SELECT s.id, s.created_at, s.updated_at, s.viewer_id, s.code, s.language, s.title, {_EXACT},"
    " ARRAY(SELECT ROW(p.id, p.name, p.color, p.role, p.joined_at) FROM participants p"
    " WHERE p.session_id = s.id ORDER BY p.seq), s.ended_at"
    " FROM sessions s WHERE s.id = ANY($1::text[])"
)
_NEW_SESSION = (
    "INSERT INTO sessions (id, title, language, code, owner_key_hash, viewer_id, execution_enabled,"
    " allow_clear_output, created_at, updated_at, workspace_id, editor_invite_hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _pg(query: str) -> str:
    """A query with asyncpg's numbered parameters in place of "?"."""
    parts = query.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "") for i, part in enumerate(parts, 1))


(
    _INSERT_PG, _MIRROR_PG, _SESSION_EXISTS_PG, _LOG_EXTENT_PG, _DELETE_UPTO_PG, _NEW_SESSION_PG,
    _DOC_ROWS_WITH_IDS_PG, _SEAL_PG, _MOVE_UPTO_PG,
) = map(_pg, (
    _INSERT, _MIRROR, _SESSION_EXISTS, _LOG_EXTENT, _DELETE_UPTO, _NEW_SESSION, _DOC_ROWS_WITH_IDS,
    _SEAL, _MOVE_UPTO,
))
_T = TypeVar("_T")


MirrorGroups = Sequence[Mapping[str, "Mirror"]]


def _sqlite_row(row: LogRow | tuple[str, bytes]) -> tuple[str, bytes, str | None, str | None, str | None]:
    # Run on the writer's thread while it holds the GIL, which the event loop then waits for: kept lean.
    r = row if type(row) is LogRow else LogRow(*row)
    return r.session_id, r.data, None if r.at is None else _sqlite_datetime(r.at), r.author, r.tag


def _pg_row(row: LogRow | tuple[str, bytes]) -> tuple[str, bytes, datetime | None, str | None, str | None]:
    r = row if type(row) is LogRow else LogRow(*row)
    return r.session_id, r.data, r.at, r.author, r.tag


class BatchWriter(Protocol):
    async def write(self, batch: Sequence[LogRow], mirrors: MirrorGroups) -> list[BaseException | None]:
        """In one transaction: insert ``batch``, then update each group of mirror rows under its own savepoint.
        Returns one entry per group: None if written, else the error that rolled the group back. Raises if the
        inserts or the commit failed (nothing of the transaction is stored then)."""
        ...

    async def participants(self, token_hashes: Sequence[str]) -> dict[str, ParticipantRecord]:
        """The participants holding tokens of these hashes, by hash, in one statement."""
        ...

    async def session_exists(self, session_id: str) -> bool: ...

    async def load(self, session_ids: Sequence[str]) -> dict[str, StoredDoc]:
        """What each existing session's room is loaded from, in one statement (on SQLite, one snapshot of two)."""
        ...

    async def session_card(self, session_id: str) -> SessionCardRecord | None: ...

    async def stored_sessions(self, session_ids: Sequence[str]) -> dict[str, StoredSession]:
        """Each existing session's card with its mirror columns, which are its document's exact text if
        ``exact``; in one statement (on SQLite, one snapshot of two), however many ids."""
        ...

    async def seal(self, session_id: str, text: Mirror) -> bool:
        """Mark the mirror columns exact up to the session's newest row if they hold ``text`` (code, language and
        title; its time is not compared). Only for a document that holds every row of the session and takes no
        more: an unloading room of the one process serving it. Returns whether the columns matched."""
        ...

    async def create_sessions(self, sessions: Sequence[NewSession]) -> None:
        """Store new sessions with their first updates, all in one transaction (or none of them: raises)."""
        ...

    async def compact(self, session_id: str, snapshot: Callable[[], bytes]) -> int:
        """Replace the session's log rows by ``snapshot()``, taken after the rows to replace were counted (every
        row reaches the log after its update was applied to the document, so the snapshot holds them all);
        rows added meanwhile stay after it. Returns the snapshot's size, or 0 when there was nothing to merge."""
        ...

    async def compact_rows(self, session_id: str, fold: Callable[[list[bytes]], bytes]) -> int:
        """Replace exactly the session's rows read here by ``fold(their data)``, a snapshot that contains them:
        the compaction for rooms shared by several processes, where a row another process committed may not be
        in this process's document yet. Returns the snapshot's size, or 0 (nothing to merge, or another process
        compacting the session right now)."""
        ...

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

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back if anything fails (and the connection dropped if even that does)."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                conn.close()
                self._conn = None
            raise

    def _write(self, batch: Sequence[LogRow], mirrors: MirrorGroups) -> list[BaseException | None]:
        with self._transaction() as conn:
            if batch:
                conn.executemany(_INSERT, [_sqlite_row(row) for row in batch])
            return [self._mirror(conn, group) for group in mirrors]

    @staticmethod
    def _mirror(conn: sqlite3.Connection, group: Mapping[str, Mirror]) -> BaseException | None:
        conn.execute("SAVEPOINT mirror")
        try:
            conn.executemany(
                _MIRROR, [(m.code, m.language, m.title, _sqlite_time(m), session_id) for session_id, m in group.items()]
            )
        except Exception as exc:
            # If even the rollback fails, that propagates: the whole transaction is given up.
            conn.execute("ROLLBACK TO mirror")
            conn.execute("RELEASE mirror")
            return exc
        conn.execute("RELEASE mirror")
        return None

    async def _run(self, work: Callable[..., _T], *args: Any) -> _T:
        """``work`` on the writer's thread, the one that owns the connection."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    async def write(self, batch: Sequence[LogRow], mirrors: MirrorGroups) -> list[BaseException | None]:
        return await self._run(self._write, batch, mirrors)

    def _participants(self, token_hashes: Sequence[str]) -> dict[str, ParticipantRecord]:
        rows = self._connection().execute(_PARTICIPANTS.format(ids=_marks(token_hashes)), token_hashes).fetchall()
        return {row[5]: ParticipantRecord(*row) for row in rows}

    def _session_exists(self, session_id: str) -> bool:
        return self._connection().execute(_SESSION_EXISTS, (session_id,)).fetchone() is not None

    def _load(self, session_ids: Sequence[str]) -> dict[str, StoredDoc]:
        conn = self._connection()
        ids = _marks(session_ids)
        conn.execute("BEGIN")  # one snapshot for both reads
        try:
            sessions = conn.execute(_SESSION_COLUMNS.format(ids=ids), session_ids).fetchall()
            rows = conn.execute(_DOC_ROWS.format(ids=ids), session_ids).fetchall() if sessions else []
        finally:
            conn.execute("COMMIT")
        found = {s[0]: StoredDoc(s[1], s[2], s[3], []) for s in sessions}
        for session_id, data in rows:
            found[session_id].updates.append(bytes(data))
        return found

    def _session_card(self, session_id: str) -> SessionCardRecord | None:
        conn = self._connection()
        conn.execute("BEGIN")  # one snapshot for both reads
        try:
            row = conn.execute(_SESSION_CARD, (session_id,)).fetchone()
            people = conn.execute(_PARTICIPANT_CARDS, (session_id,)).fetchall() if row is not None else []
        finally:
            conn.execute("COMMIT")
        if row is None:
            return None
        return SessionCardRecord(
            _sqlite_parse(row[0]), _sqlite_parse(row[1]), row[2],
            [ParticipantCardRecord(p[0], p[1], p[2], p[3], _sqlite_parse(p[4])) for p in people],
        )  # fmt: skip

    async def session_card(self, session_id: str) -> SessionCardRecord | None:
        return await self._run(self._session_card, session_id)

    def _stored_sessions(self, session_ids: Sequence[str]) -> dict[str, StoredSession]:
        conn = self._connection()
        ids = _marks(session_ids)
        conn.execute("BEGIN")  # one snapshot for both reads
        try:
            rows = conn.execute(_STORED_SESSIONS.format(ids=ids), session_ids).fetchall()
            people = conn.execute(_PARTICIPANTS_OF.format(ids=ids), session_ids).fetchall() if rows else []
        finally:
            conn.execute("COMMIT")
        cards: dict[str, list[ParticipantCardRecord]] = {row[0]: [] for row in rows}
        for p in people:
            cards[p[0]].append(ParticipantCardRecord(p[1], p[2], p[3], p[4], _sqlite_parse(p[5])))
        return {
            row[0]: StoredSession(
                SessionCardRecord(
                    _sqlite_parse(row[1]), _sqlite_parse(row[2]), row[3], cards[row[0]],
                    None if row[8] is None else _sqlite_parse(row[8]),
                ),
                row[4], row[5], row[6], bool(row[7]),
            )
            for row in rows
        }  # fmt: skip

    async def stored_sessions(self, session_ids: Sequence[str]) -> dict[str, StoredSession]:
        return await self._run(self._stored_sessions, session_ids)

    def _seal(self, session_id: str, text: Mirror) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(_SEAL, (session_id, session_id, text.code, text.language, text.title))
            return cursor.rowcount == 1

    async def seal(self, session_id: str, text: Mirror) -> bool:
        return await self._run(self._seal, session_id, text)

    def _log_extent(self, session_id: str) -> tuple[int, int | None]:
        count, max_id = self._connection().execute(_LOG_EXTENT, (session_id,)).fetchone()
        return int(count), max_id

    def _replace_upto(self, session_id: str, max_id: int, merged: bytes) -> None:
        with self._transaction() as conn:
            # The snapshot first: SQLite gives a new row the highest id plus one, so deleting first could hand it
            # the id of a row it replaces, and row ids must only grow (see SessionRow.log_head).
            conn.execute(_INSERT, (session_id, merged, None, None, None))
            conn.execute(_MOVE_UPTO, (session_id, max_id))
            conn.execute(_DELETE_UPTO, (session_id, max_id))

    async def compact(self, session_id: str, snapshot: Callable[[], bytes]) -> int:
        count, max_id = await self._run(self._log_extent, session_id)
        if count <= 1 or max_id is None:
            return 0
        merged = snapshot()
        await self._run(self._replace_upto, session_id, max_id, merged)
        return len(merged)

    def _rows_with_ids(self, session_id: str) -> list[tuple[int, bytes]]:
        return [(int(i), bytes(d)) for i, d in self._connection().execute(_DOC_ROWS_WITH_IDS, (session_id,))]

    def _replace_ids(self, session_id: str, ids: list[int], merged: bytes) -> None:
        with self._transaction() as conn:
            conn.execute(_INSERT, (session_id, merged, None, None, None))  # first, as in _replace_upto
            conn.executemany(_MOVE_ID, [(i,) for i in ids])
            conn.executemany("DELETE FROM doc_updates WHERE id = ?", [(i,) for i in ids])

    async def compact_rows(self, session_id: str, fold: Callable[[list[bytes]], bytes]) -> int:
        rows = await self._run(self._rows_with_ids, session_id)
        if len(rows) <= 1:
            return 0
        merged = fold([data for _, data in rows])
        await self._run(self._replace_ids, session_id, [i for i, _ in rows], merged)
        return len(merged)

    def _create_sessions(self, sessions: Sequence[NewSession]) -> None:
        with self._transaction() as conn:
            conn.executemany(
                _NEW_SESSION,
                [
                    (s.id, s.title, s.language, s.code, s.owner_key_hash, s.viewer_id, 1, 1,
                     _sqlite_datetime(s.created_at), _sqlite_datetime(s.created_at), s.workspace_id,
                     s.editor_invite_hash)
                    for s in sessions
                ],
            )  # fmt: skip
            conn.executemany(
                _INSERT, [(s.id, s.first_update, _sqlite_datetime(s.created_at), None, None) for s in sessions]
            )

    async def create_sessions(self, sessions: Sequence[NewSession]) -> None:
        await self._run(self._create_sessions, sessions)

    async def participants(self, token_hashes: Sequence[str]) -> dict[str, ParticipantRecord]:
        return await self._run(self._participants, token_hashes)

    async def session_exists(self, session_id: str) -> bool:
        return await self._run(self._session_exists, session_id)

    async def load(self, session_ids: Sequence[str]) -> dict[str, StoredDoc]:
        return await self._run(self._load, session_ids)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


def _marks(values: Sequence[object]) -> str:
    """sqlite3's placeholders for ``values`` in an ``IN (...)``."""
    return ", ".join("?" * len(values))


def _sqlite_time(m: Mirror) -> str:
    return _sqlite_datetime(m.updated_at)


def _sqlite_parse(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _sqlite_datetime(value: datetime) -> str:
    # SQLAlchemy's SQLite DateTime storage format; UTCDateTime stores UTC without an offset. (isoformat is
    # about twice as fast as strftime, and this runs once per stored update.)
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class PostgresWriter:
    """One asyncpg connection, (re)opened on demand."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None
        self._use = asyncio.Lock()  # an asyncpg connection runs one operation at a time

    async def _connection(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn)
        return self._conn

    @asynccontextmanager
    async def _using(self) -> AsyncIterator[Any]:
        """The connection, for one operation at a time; after a failure it is closed and the next use opens a
        fresh one (a broken connection or transaction is never reused)."""
        async with self._use:
            conn = await self._connection()
            try:
                yield conn
            except BaseException:
                await self.close()
                raise

    async def participants(self, token_hashes: Sequence[str]) -> dict[str, ParticipantRecord]:
        async with self._using() as conn:
            rows = await conn.fetch(_PARTICIPANTS_PG, list(token_hashes))
        return {row[5]: ParticipantRecord(*row) for row in rows}

    async def session_exists(self, session_id: str) -> bool:
        async with self._using() as conn:
            return await conn.fetchrow(_SESSION_EXISTS_PG, session_id) is not None

    async def load(self, session_ids: Sequence[str]) -> dict[str, StoredDoc]:
        async with self._using() as conn:
            rows = await conn.fetch(_LOAD_PG, list(session_ids))
        return {row[0]: StoredDoc(row[1], row[2], row[3], [bytes(data) for data in row[4]]) for row in rows}

    async def session_card(self, session_id: str) -> SessionCardRecord | None:
        async with self._using() as conn:
            row = await conn.fetchrow(_CARD_PG, session_id)
        if row is None:
            return None
        return SessionCardRecord(
            row[0].astimezone(UTC), row[1].astimezone(UTC), row[2],
            [ParticipantCardRecord(p[0], p[1], p[2], p[3], p[4].astimezone(UTC)) for p in row[3]],
        )  # fmt: skip

    async def stored_sessions(self, session_ids: Sequence[str]) -> dict[str, StoredSession]:
        async with self._using() as conn:
            rows = await conn.fetch(_STORED_SESSIONS_PG, list(session_ids))
        return {
            row[0]: StoredSession(
                SessionCardRecord(
                    row[1].astimezone(UTC), row[2].astimezone(UTC), row[3],
                    [ParticipantCardRecord(p[0], p[1], p[2], p[3], p[4].astimezone(UTC)) for p in row[8]],
                    None if row[9] is None else row[9].astimezone(UTC),
                ),
                row[4], row[5], row[6], bool(row[7]),
            )
            for row in rows
        }  # fmt: skip

    async def seal(self, session_id: str, text: Mirror) -> bool:
        async with self._using() as conn:
            status = await conn.execute(_SEAL_PG, session_id, session_id, text.code, text.language, text.title)
        return bool(status == "UPDATE 1")

    async def compact(self, session_id: str, snapshot: Callable[[], bytes]) -> int:
        async with self._using() as conn:
            count, max_id = await conn.fetchrow(_LOG_EXTENT_PG, session_id)
            if count <= 1 or max_id is None:
                return 0
            merged = snapshot()
            async with conn.transaction():
                await conn.execute(_MOVE_UPTO_PG, session_id, max_id)
                await conn.execute(_DELETE_UPTO_PG, session_id, max_id)
                await conn.execute(_INSERT_PG, session_id, merged, None, None, None)
        return len(merged)

    async def compact_rows(self, session_id: str, fold: Callable[[list[bytes]], bytes]) -> int:
        async with self._using() as conn, conn.transaction():
            if not await conn.fetchval(_COMPACTION_LOCK_PG, session_id):
                return 0
            rows = await conn.fetch(_DOC_ROWS_WITH_IDS_PG, session_id)
            if len(rows) <= 1:
                return 0
            merged = fold([bytes(r[1]) for r in rows])
            ids = [r[0] for r in rows]
            await conn.execute(_MOVE_IDS_PG, ids)
            await conn.execute(_DELETE_IDS_PG, ids)
            await conn.execute(_INSERT_PG, session_id, merged, None, None, None)
        return len(merged)

    async def create_sessions(self, sessions: Sequence[NewSession]) -> None:
        async with self._using() as conn, conn.transaction():
            await conn.executemany(
                _NEW_SESSION_PG,
                [
                    (s.id, s.title, s.language, s.code, s.owner_key_hash, s.viewer_id, True, True,
                     s.created_at, s.created_at, s.workspace_id, s.editor_invite_hash)
                    for s in sessions
                ],
            )  # fmt: skip
            await conn.executemany(_INSERT_PG, [(s.id, s.first_update, s.created_at, None, None) for s in sessions])

    async def write(self, batch: Sequence[LogRow], mirrors: MirrorGroups) -> list[BaseException | None]:
        errors: list[BaseException | None] = []
        async with self._using() as conn, conn.transaction():
            if batch:
                await conn.executemany(_INSERT_PG, [_pg_row(row) for row in batch])
            for group in mirrors:
                try:
                    async with conn.transaction():  # nested: a savepoint
                        await conn.executemany(
                            _MIRROR_PG,
                            [(m.code, m.language, m.title, m.updated_at, sid) for sid, m in group.items()],
                        )
                except Exception as exc:  # the savepoint is rolled back; a broken connection fails the commit
                    errors.append(exc)
                else:
                    errors.append(None)
        return errors

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()
