"""The update log: group commit, retries after a failed commit, compaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from pycrdt import Doc, Text
from sqlalchemy import func, select

from codeconnect.collab.document import initial_update
from codeconnect.collab.store import Mirror, UpdateLog, add_initial_update
from codeconnect.collab.writer import batch_writer
from codeconnect.db import create_engine, create_sessionmaker
from codeconnect.errors import ServiceUnavailable
from codeconnect.models import DocUpdateRow, SessionRow, utcnow


async def _setup(url: str) -> Any:
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    async with maker() as db, db.begin():
        now = utcnow()
        db.add(SessionRow(id="s1", title="t", language="python", code="", owner_key_hash="x",
                          execution_enabled=True, created_at=now, updated_at=now))
        await db.flush()
        await add_initial_update(db, "s1", initial_update("", "python", "t"))
    return engine, maker


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "orm"])
async def test_group_commit_retries_a_failed_batch_and_compacts(database_url: str, driver: bool) -> None:
    engine, maker = await _setup(database_url)
    log = UpdateLog(maker, 10, asyncio.Semaphore(1), batch_writer(database_url) if driver else None)
    failures = 2
    real_commit = log._commit

    async def flaky(batch: Sequence[tuple[str, bytes]], mirrors: dict[str, Mirror]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError("disk on fire")
        await real_commit(batch, mirrors)

    log._commit = flaky  # type: ignore[method-assign]
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
