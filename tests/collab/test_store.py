"""The update log: group commit, retries after a failed commit, compaction."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

import pytest
from pycrdt import Doc, Text
from sqlalchemy import func, select, text

from codeconnect.collab.document import initial_update
from codeconnect.collab.records import Mirror, NewSession
from codeconnect.collab.store import UpdateLog, is_outage, open_update_log, storable_text
from codeconnect.collab.writer import batch_writer
from codeconnect.config import Settings
from codeconnect.db import create_engine, create_sessionmaker
from codeconnect.errors import ServiceUnavailable, SessionNotFound
from codeconnect.models import DocUpdateRow, ParticipantRow, SessionRow, utcnow
from tests.conftest import fresh_sqlite


async def _setup(url: str) -> Any:
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    async with maker() as db, db.begin():
        now = utcnow()
        db.add(SessionRow(id="s1", title="t", language="python", code="", owner_key_hash="x",
                          execution_enabled=True, created_at=now, updated_at=now))
        await db.flush()
        db.add(DocUpdateRow(session_id="s1", data=initial_update("", "python", "t")))
    return engine, maker


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_group_commit_retries_a_failed_batch_and_compacts(database_url: str, driver: bool) -> None:
    engine, maker = await _setup(database_url)
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(database_url) if driver else None)
    failures = 2
    real_write = log._write

    async def flaky(batch: Sequence[tuple[str, bytes]], mirrors: Sequence[Mapping[str, Mirror]]) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError("disk on fire")  # an outage: the whole batch waits and is retried
        return await real_write(batch, mirrors)

    log._write = flaky  # type: ignore[method-assign]
    doc = Doc()
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for i in range(20):
        text += f"{i};"
    async with log:
        first = [log.append("s1", u) for u in updates[:10]]
        assert len({id(f) for f in first}) == 1  # one future per batch
        with pytest.raises(ServiceUnavailable):
            await first[0]  # that attempt failed: a REST writer hears about it...
        for u in updates[10:]:
            log.append("s1", u)
        log.mirror("s1", Mirror(code=str(text), language="java", title="t2", updated_at=utcnow()))
        # ...but nothing is dropped: the batch is retried until it commits.
        for _ in range(5):
            try:
                await log.flush()
                break
            except ServiceUnavailable:
                continue
        stored = await log.load("s1")
        assert len(stored.updates) == 21
        assert stored.code == str(text) and stored.language == "java"
        async with maker() as db:
            row = await db.get(SessionRow, "s1")
            assert row is not None and row.title == "t2" and row.updated_at.tzinfo is not None
        size = await log.compact("s1")
        stored = await log.load("s1")
        assert len(stored.updates) == 1 and len(stored.updates[0]) == size
        check = Doc()
        check.apply_update(stored.updates[0])
        assert str(check.get("code", type=Text)) == str(text)
    async with maker() as db:
        assert await db.scalar(select(func.count()).select_from(DocUpdateRow)) == 1
    await engine.dispose()


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_compaction_with_a_loaded_document_keeps_what_arrives_meanwhile(database_url: str, driver: bool) -> None:
    """Compacting a loaded room: its rows become one snapshot of the document; an update that reaches the log
    while the snapshot is taken stays a row of its own after it, and loading gives the whole text."""
    engine, maker = await _setup(database_url)
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(database_url) if driver else None)
    doc = Doc()
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for i in range(30):
        text += f"{i};"
    async with log:
        for u in updates:
            log.append("s1", u)
        await log.flush()

        def snapshot() -> bytes:
            merged = doc.get_update()
            text.insert(0, "late;")  # applied after the snapshot: its row must survive the compaction
            log.append("s1", updates[-1])
            return merged

        size = await log.compact("s1", snapshot)
        await log.flush()
        stored = await log.load("s1")
        assert len(stored.updates) == 2 and len(stored.updates[0]) == size
        check = Doc()
        for u in stored.updates:
            check.apply_update(u)
        assert str(check.get("code", type=Text)) == str(text)
        assert str(text).startswith("late;")
    await engine.dispose()


# --- one session's rows never hold up another's ------------------------------------------------------------------

C0 = "".join(map(chr, range(0x20)))


async def _add_session(maker: Any, session_id: str) -> None:
    async with maker() as db, db.begin():
        now = utcnow()
        db.add(SessionRow(id=session_id, title="t", language="python", code="", owner_key_hash="x",
                          execution_enabled=True, created_at=now, updated_at=now))


async def _refuse(engine: Any, url: str, table: str, column: str, session_id: str) -> str:
    """A trigger that makes the database refuse writes of ``session_id`` to ``table``; returns its drop statement."""
    name = f"refuse_{table}"
    event = "UPDATE" if table == "sessions" else "INSERT"
    async with engine.begin() as conn:
        if url.startswith("sqlite"):
            await conn.execute(text(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN NEW.{column} = '{session_id}' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            ))
            return f"DROP TRIGGER {name}"
        await conn.execute(text(
            "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
        ))
        await conn.execute(text(
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
            f"WHEN (NEW.{column} = '{session_id}') EXECUTE FUNCTION refuse()"
        ))
        return f"DROP TRIGGER {name} ON {table}"


async def _rows(maker: Any, session_id: str) -> int:
    async with maker() as db:
        count: int = await db.scalar(
            select(func.count()).select_from(DocUpdateRow).where(DocUpdateRow.session_id == session_id)
        )
        return count


def _updates(n: int) -> list[bytes]:
    doc: Doc[Any] = Doc()
    code = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for i in range(n):
        code += f"{i};"
    return updates


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_mirror_text_is_made_storable(database_url: str, driver: bool) -> None:
    """NUL, lone surrogates and every C0 control in the mirror: stored, NUL and surrogates as U+FFFD."""
    engine, maker = await _setup(database_url)
    async with UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(database_url) if driver else None) as log:
        code = f"a\x00b\ud800c\udfff{C0}\n"
        title = "T\x00\udc00" + "x" * 500  # longer than the column, too
        log.mirror("s1", Mirror(code=code, language="python", title=title, updated_at=utcnow()))
        await log.flush()
        async with maker() as db:
            row = await db.get(SessionRow, "s1")
            assert row is not None
            assert row.code == f"a\ufffdb\ufffdc\ufffd\ufffd{C0[1:]}\n"
            assert row.title == ("T\ufffd\ufffd" + "x" * 500)[:400]
    assert storable_text(C0[1:] + "é✨😀") == C0[1:] + "é✨😀"
    await engine.dispose()


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_a_refused_mirror_row_blocks_nothing(
    database_url: str, driver: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses one session's row (a trigger): its updates and everyone else's are committed, the
    refused mirror is retried alone and dropped with one error in the log."""
    engine, maker = await _setup(database_url)
    await _add_session(maker, "bad")
    await _refuse(engine, database_url, "sessions", "id", "bad")
    updates = _updates(6)
    async with UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(database_url) if driver else None) as log:
        good = log.append("s1", updates[0])
        bad = log.append("bad", updates[1])
        log.mirror("s1", Mirror(code="0;", language="java", title="good", updated_at=utcnow()))
        log.mirror("bad", Mirror(code="1;", language="java", title="bad", updated_at=utcnow()))
        await good
        await bad  # its updates are in; only its mirror row was refused
        await log.flush()
        for i in range(2, 6):  # the refused row comes back with every mirror pass; others go on
            log.mirror("bad", Mirror(code="x", language="java", title="bad", updated_at=utcnow()))
            log.mirror("s1", Mirror(code=f"{i}", language="java", title="good", updated_at=utcnow()))
            await log.append("s1", updates[i])
            await log.flush()
        assert (await _rows(maker, "s1"), await _rows(maker, "bad")) == (1 + 5, 1)
        async with maker() as db:
            s1, refused = await db.get(SessionRow, "s1"), await db.get(SessionRow, "bad")
            assert s1 is not None and (s1.code, s1.title) == ("5", "good")
            assert refused is not None and (refused.code, refused.title) == ("", "t")
    dropped = [r for r in caplog.records if "was refused" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelname == "ERROR"
    await engine.dispose()


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_refused_updates_of_one_session_are_held_and_retried_alone(database_url: str, driver: bool) -> None:
    """The database refuses one session's log rows: the others' commits go on (their writers hear 200-worthy
    success), the refused ones are kept, their writers told 503, and stored once the database takes them."""
    engine, maker = await _setup(database_url)
    await _add_session(maker, "bad")
    drop = await _refuse(engine, database_url, "doc_updates", "session_id", "bad")
    updates = _updates(8)
    async with UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(database_url) if driver else None) as log:
        good = log.append("s1", updates[0])
        bad = log.append("bad", updates[1])
        log.mirror("bad", Mirror(code="1;", language="java", title="b", updated_at=utcnow()))
        await good
        with pytest.raises(ServiceUnavailable):
            await bad
        for u in updates[2:6]:  # while "bad" is held, the others commit as usual
            await log.append("s1", u)
        log.append("bad", updates[6])
        await log.append("s1", updates[7])
        assert (await _rows(maker, "s1"), await _rows(maker, "bad")) == (1 + 6, 0)
        async with maker() as db:
            row = await db.get(SessionRow, "bad")
            assert row is not None and row.language == "java"  # its mirror is not held up either
        async with engine.begin() as conn:
            await conn.execute(text(drop))
        for _ in range(200):  # retried alone, with backoff (0.2 s, 0.4 s, ...): no new traffic needed
            if await _rows(maker, "bad") == 2:
                break
            await asyncio.sleep(0.05)
        assert await _rows(maker, "bad") == 2
        await log.flush()
    await engine.dispose()


async def test_an_outage_is_retried_as_a_whole(database_url: str) -> None:
    """A connection-level failure (not one session's values) is not isolated session by session: the batch waits."""
    engine, maker = await _setup(database_url)
    await _add_session(maker, "s2")
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(database_url))
    calls: list[int] = []
    real_write = log._write

    async def down_once(batch: Sequence[tuple[str, bytes]], mirrors: Sequence[Mapping[str, Mirror]]) -> Any:
        calls.append(len(batch))
        if len(calls) == 1:
            raise ConnectionRefusedError("database down")
        return await real_write(batch, mirrors)

    log._write = down_once  # type: ignore[method-assign]
    updates = _updates(2)
    async with log:
        a, b = log.append("s1", updates[0]), log.append("s2", updates[1])
        for waiter in (a, b):
            with pytest.raises(ServiceUnavailable):
                await waiter
        with suppress(ServiceUnavailable):
            await log.flush()
        await log.flush()
        assert calls == [2, 2]  # the same batch twice, never split
        assert (await _rows(maker, "s1"), await _rows(maker, "s2")) == (2, 1)
    await engine.dispose()


async def test_the_writer_confines_a_refused_mirror_group_to_its_savepoint(database_url: str) -> None:
    """Below the store's cleaning: values no driver or database takes (NUL, a lone surrogate) fail only their group;
    the log rows and the other groups of the same transaction are committed and the connection stays usable."""
    engine, maker = await _setup(database_url)
    await _add_session(maker, "s2")
    writer = batch_writer(database_url)
    assert writer is not None
    updates = _updates(3)
    try:
        ok = {"s1": Mirror(code="fine", language="java", title="ok", updated_at=utcnow())}
        errors = await writer.write(
            [("s1", updates[0]), ("s2", updates[1])],
            [
                {"s2": Mirror(code="a\ud800", language="java", title="x", updated_at=utcnow())},
                ok,
                {"s2": Mirror(code="a\x00" if "postgres" in database_url else "a\udfff", language="java", title="x",
                              updated_at=utcnow())},
            ],
        )
        assert [e is None for e in errors] == [False, True, False]
        assert await writer.write([("s2", updates[2])], []) == []
        assert (await _rows(maker, "s1"), await _rows(maker, "s2")) == (2, 2)
        async with maker() as db:
            s1, s2 = await db.get(SessionRow, "s1"), await db.get(SessionRow, "s2")
            assert s1 is not None and s2 is not None and (s1.code, s2.code) == ("fine", "")
    finally:
        await writer.close()
        await engine.dispose()


async def test_outages_are_told_apart_from_refused_values(database_url: str, tmp_path: Any) -> None:
    """What decides between "hold everything and retry" and "find the session whose values were refused"."""
    engine, maker = await _setup(database_url)
    writer = batch_writer(database_url)
    assert writer is not None
    try:
        unstorable = Mirror(code="\ud800", language="x", title="t", updated_at=utcnow())
        [refused] = await writer.write([], [{"s1": unstorable}])
        assert refused is not None and not is_outage(refused)
        with pytest.raises(Exception) as fk:  # a log row of a session that does not exist
            await writer.write([("missing", b"\x00\x00")], [])
        assert not is_outage(fk.value)
    finally:
        await writer.close()
        await engine.dispose()
    if database_url.startswith("sqlite"):
        down = f"sqlite+aiosqlite:///{tmp_path}"  # a folder: the database file cannot be opened
    else:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        down = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test"
    dead_writer = batch_writer(down)
    assert dead_writer is not None
    with pytest.raises(Exception) as driver_error:
        await dead_writer.write([("s1", b"\x00\x00")], [])
    await dead_writer.close()
    assert is_outage(driver_error.value)
    threads = set(threading.enumerate())
    dead_engine = create_engine(down)
    with pytest.raises(Exception) as orm_error:
        async with create_sessionmaker(dead_engine)() as db, db.begin():
            await db.execute(select(1))
    await dead_engine.dispose()
    assert is_outage(orm_error.value)
    # A connection that failed to open still has a thread of the SQLite driver, stopped by a call nobody awaits:
    # if this test's event loop closed first, that thread's answer would land on a closed loop (an unhandled
    # exception in a thread, reported against whichever test runs next). Wait for it to end.
    deadline = asyncio.get_running_loop().time() + 30
    while any(t.is_alive() for t in set(threading.enumerate()) - threads):
        assert asyncio.get_running_loop().time() < deadline, "the driver's connection thread did not end"
        await asyncio.sleep(0.01)


def _new_session(sid: str, title: str = "t") -> NewSession:
    return NewSession(
        id=sid, title=title, language="python", code=f"# {sid}\n", owner_key_hash="h" * 64, viewer_id=f"v-{sid}",
        created_at=utcnow(), first_update=initial_update(f"# {sid}\n", "python", title),
    )  # fmt: skip


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_sessions_created_together_are_committed_together_and_read_back(database_url: str, driver: bool) -> None:
    engine, maker = await _setup(database_url)
    writer = batch_writer(database_url) if driver else None
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), writer)
    groups: list[int] = []
    if writer is not None:
        real = writer.create_sessions

        async def counting(sessions: Sequence[NewSession]) -> None:
            groups.append(len(sessions))
            await real(sessions)

        writer.create_sessions = counting  # type: ignore[method-assign]
    async with log:
        news = [_new_session(f"n{i}", title=f"title {i}") for i in range(30)]
        await asyncio.gather(*(log.create_session(n) for n in news))
        if writer is not None:
            assert sum(groups) == 30 and len(groups) < 30, groups  # the first alone, the rest while it committed
        for n in news:
            stored = await log.load(n.id)
            assert (stored.title, stored.code, stored.updates) == (n.title, n.code, [n.first_update])
        async with maker() as db:
            rows = {r.id: r for r in (await db.scalars(select(SessionRow).where(SessionRow.id.like("n%")))).all()}
        assert rows["n7"].created_at == news[7].created_at == rows["n7"].updated_at  # the ORM reads what was written
        assert rows["n7"].viewer_id == "v-n7" and rows["n7"].execution_enabled and rows["n7"].allow_clear_output
    await engine.dispose()


async def test_a_group_of_new_sessions_that_cannot_be_stored_is_unavailable_for_each(database_url: str) -> None:
    engine, maker = await _setup(database_url)
    writer = batch_writer(database_url)
    assert writer is not None
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), writer)
    real = writer.create_sessions
    down = True

    async def flaky(sessions: Sequence[NewSession]) -> None:
        if down:
            raise ConnectionRefusedError("database down")
        await real(sessions)

    writer.create_sessions = flaky  # type: ignore[method-assign]
    async with log:
        results = await asyncio.gather(*(log.create_session(_new_session(f"x{i}")) for i in range(5)),
                                       return_exceptions=True)  # fmt: skip
        assert all(isinstance(r, ServiceUnavailable) for r in results), results
        with pytest.raises(SessionNotFound):
            await log.load("x0")
        down = False
        await log.create_session(_new_session("x0"))  # the next group is tried afresh
        assert (await log.load("x0")).code == "# x0\n"
        # A session the database refuses (here a duplicate id) fails alone: the others of its group are stored.
        results = await asyncio.gather(
            log.create_session(_new_session("x8")), log.create_session(_new_session("x0")),
            log.create_session(_new_session("x9")), return_exceptions=True,
        )  # fmt: skip
        assert results[0] is None and results[2] is None and isinstance(results[1], ServiceUnavailable), results
        assert (await log.load("x8")).code == "# x8\n" and (await log.load("x9")).code == "# x9\n"
    await engine.dispose()


# --- the row's text, known exact until the log moves on ------------------------------------------------------------


async def test_a_sealed_row_is_exact_until_anything_reaches_the_log(database_url: str) -> None:
    engine, maker = await _setup(database_url)
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(database_url))
    doc = Doc()
    doc.apply_update(initial_update("", "python", "t"))
    code = doc.get("code", type=Text)

    def text(value: str) -> Mirror:
        return Mirror(code=value, language="python", title="t", updated_at=utcnow())

    async def exact() -> bool:
        stored = await log.stored_session("s1")
        assert stored is not None
        return stored.exact

    async with log:
        assert not await exact()  # never sealed
        assert not await log.seal("s1", text("not what the row holds"))
        assert await log.seal("s1", text("")) and await exact()

        state = doc.get_state()
        code += "x = 1\n"
        log.append("s1", doc.get_update(state))
        await log.flush()
        assert not await exact()  # a row the columns were never told of
        log.mirror("s1", text(str(code)))
        await log.flush()
        assert not await exact()  # a copy while the room is loaded is not known to hold every row
        assert await log.seal("s1", text(str(code))) and await exact()

        assert await log.compact("s1", doc.get_update) > 0
        assert not await exact()  # the snapshot is a new row
        assert await log.seal("s1", text(str(code))) and await exact()

        log.append("s1", b"\x00\x00")  # an empty update, held in the queue: not sealed while it waits
        assert not await log.seal("s1", text(str(code)))
        await log.flush()
        assert not await exact()
        # Text the columns cannot hold as it is (NUL) is never declared exact.
        assert not await log.seal("s1", text("a\x00b"))
        stored = await log.stored_session("s1")
        assert stored is not None and stored.code == str(code) and stored.card.viewer_id
        assert await log.stored_session("no-such-session") is None
    await engine.dispose()


async def test_compaction_never_hands_a_replaced_row_id_to_its_snapshot(sqlite_url: str) -> None:
    """SQLite gives a new row the highest id plus one: deleting a session's newest rows before inserting their
    snapshot would reuse an id the row's exactness mark may name."""
    await fresh_sqlite(sqlite_url)
    engine, maker = await _setup(sqlite_url)
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(sqlite_url))
    doc = Doc()
    code = doc.get("code", type=Text)
    async with log:
        for i in range(3):
            state = doc.get_state()
            code += f"{i};"
            log.append("s1", doc.get_update(state))
        await log.flush()
        async with maker() as db:
            newest = await db.scalar(select(func.max(DocUpdateRow.id)))
        await log.compact("s1", doc.get_update)
        async with maker() as db:
            ids = (await db.scalars(select(DocUpdateRow.id).where(DocUpdateRow.session_id == "s1"))).all()
        assert len(ids) == 1 and ids[0] > newest
    await engine.dispose()


async def test_reads_of_stored_sessions_that_arrive_together_share_a_statement(database_url: str) -> None:
    engine, maker = await _setup(database_url)
    for n in range(2, 6):
        await _add_session(maker, f"s{n}")
    async with maker() as db, db.begin():
        for i, name in enumerate(("Ada", "Grace")):
            db.add(ParticipantRow(id=f"p{i}", session_id="s3", seq=i, name=name, color="#000000", role="editor",
                                  token_hash=f"h{i}"))
    driver = batch_writer(database_url)
    assert driver is not None
    statements: list[list[str]] = []
    read = driver.stored_sessions

    async def counted(ids: Sequence[str]) -> Any:
        statements.append(list(ids))
        return await read(ids)

    driver.stored_sessions = counted  # type: ignore[method-assign]
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), driver)
    async with log:
        wanted = ["s1", "s2", "s3", "s4", "s5", "no-such-session", "s1"]
        found = await asyncio.gather(*(log.stored_session(s) for s in wanted))
    assert found[5] is None and found[0] == found[6]
    assert all(f is not None for i, f in enumerate(found) if i != 5)
    assert [p.name for p in found[2].card.participants] == ["Ada", "Grace"]  # type: ignore[union-attr]
    assert found[1].card.participants == []  # type: ignore[union-attr]
    # Everything asked before a statement starts shares it (here all seven reads: one statement, six ids).
    assert len(statements) == 1 and sorted(statements[0]) == sorted(set(wanted))
    await engine.dispose()


async def test_reads_of_rows_are_kept_by_one_process_only() -> None:
    """With Redis, other processes change rows without this one hearing of it before a read could answer from
    memory: nothing is kept. Alone, the setting's budget is used."""
    pg = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    alone = Settings(database_url=pg, session_read_cache_bytes=12345)
    shared = Settings(database_url=pg, session_read_cache_bytes=12345, redis_url="redis://127.0.0.1:6379/0")
    engine = create_engine(pg)
    try:
        for settings, budget in ((alone, 12345), (shared, 0)):
            log = open_update_log(create_sessionmaker(engine), settings)
            assert log.kept.max_bytes == budget
            if log.driver is not None:
                await log.driver.close()
    finally:
        await engine.dispose()
