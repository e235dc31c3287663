"""The update log and deleted sessions: nothing of them is written back, and nothing fails for it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import delete, func, select

from codeconnect.collab.document import initial_update
from codeconnect.collab.records import Mirror
from codeconnect.collab.store import UpdateLog
from codeconnect.collab.writer import batch_writer
from codeconnect.errors import SessionNotFound
from codeconnect.models import DocUpdateRow, SessionRow, utcnow
from tests.collab.test_store import _setup


async def _rows(maker: object, session_id: str) -> int:
    async with maker() as db:  # type: ignore[operator]
        count: int = await db.scalar(select(func.count()).where(DocUpdateRow.session_id == session_id))
        return count


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_forgotten_sessions_are_not_written(database_url: str, driver: bool) -> None:
    engine, maker = await _setup(database_url)
    log = UpdateLog(maker, 20, asyncio.Semaphore(1), batch_writer(database_url) if driver else None)
    async with log:
        pending = log.append("s1", initial_update("a", "python", "t"))
        log.mirror("s1", Mirror("a", "python", "t", utcnow()))
        log.forget(["s1"])
        with pytest.raises(SessionNotFound):
            await pending
        with pytest.raises(SessionNotFound):
            await log.append("s1", initial_update("b", "python", "t"))
        await log.flush()
        assert await log.compact("s1", lambda: b"") == 0
        assert await _rows(maker, "s1") == 1  # only the row from before; the deletion itself is the caller's
        log.restore(["s1"])
        await log.append("s1", initial_update("c", "python", "t"))
        assert await _rows(maker, "s1") == 2
    await engine.dispose()


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_a_session_deleted_elsewhere_is_dropped_quietly(
    database_url: str, driver: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Another process deleted the session; this one has not heard yet and commits an update of it: the missing
    # row refuses it, the log finds the session gone and drops its rows instead of retrying them forever.
    engine, maker = await _setup(database_url)
    async with maker() as db, db.begin():
        now = utcnow()
        db.add(SessionRow(id="s2", title="t", language="python", code="", owner_key_hash="x",
                          execution_enabled=True, created_at=now, updated_at=now))  # fmt: skip
    log = UpdateLog(maker, 20, asyncio.Semaphore(1), batch_writer(database_url) if driver else None)
    async with log:
        async with maker() as db, db.begin():
            await db.execute(delete(DocUpdateRow).where(DocUpdateRow.session_id == "s1"))
            await db.execute(delete(SessionRow).where(SessionRow.id == "s1"))
        with caplog.at_level(logging.ERROR, logger="codeconnect.collab.store"):
            doomed = log.append("s1", initial_update("a", "python", "t"))
            kept = log.append("s2", initial_update("b", "python", "t"))
            await kept
            with pytest.raises(Exception):  # noqa: B017 - whichever the writer says; it must not hang
                await doomed
            await log.flush()
        assert log.is_gone("s1")
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert await _rows(maker, "s1") == 0
        assert await _rows(maker, "s2") == 1
    await engine.dispose()
