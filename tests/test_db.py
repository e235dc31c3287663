"""The database engine: SQLite's transactions wait for each other in arrival order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from codeconnect.db import create_engine, create_sessionmaker


async def test_sqlite_transactions_are_served_in_arrival_order(tmp_path: Path) -> None:
    # SQLite writes one transaction at a time. Waiters polling in its busy handler were served in whatever
    # order their sleeps happened to end; waiting for the one pooled connection serves them first come,
    # first served.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'order.db'}")
    maker = create_sessionmaker(engine)
    order: list[str] = []
    release = asyncio.Event()
    holding = asyncio.Event()
    try:
        async with maker() as db, db.begin():
            await db.execute(text("CREATE TABLE t (who TEXT)"))

        async def hold() -> None:
            async with maker() as db, db.begin():
                order.append("first")
                await db.execute(text("INSERT INTO t VALUES ('first')"))
                holding.set()
                await release.wait()

        async def wait_turn(name: str) -> None:
            async with maker() as db, db.begin():
                order.append(name)
                await db.execute(text("INSERT INTO t VALUES (:who)"), {"who": name})

        first = asyncio.create_task(hold())
        await holding.wait()
        waiters = []
        for name in ("b", "c", "d", "e"):
            waiters.append(asyncio.create_task(wait_turn(name)))
            await asyncio.sleep(0.05)  # let it start waiting before the next one arrives
        release.set()
        await asyncio.wait_for(asyncio.gather(first, *waiters), timeout=30)

        assert order == ["first", "b", "c", "d", "e"]
        async with maker() as db:
            rows = (await db.execute(text("SELECT who FROM t ORDER BY rowid"))).scalars().all()
        assert rows == ["first", "b", "c", "d", "e"]
    finally:
        await engine.dispose()
