"""The database engine: SQLite's transactions wait in arrival order; a wait that runs out is a 503."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.db import create_engine, create_sessionmaker
from tests.collab.yclient import new_session
from tests.conftest import fresh_sqlite, servers_on


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


async def test_a_request_that_cannot_get_the_database_in_time_is_a_503(sqlite_url: str) -> None:
    # Overload is the server's to report, not a fault: our error shape, a 503 with Retry-After, nothing written.
    await fresh_sqlite(sqlite_url)
    async with servers_on(sqlite_url) as factory:
        server = await factory(db_wait_seconds=0.2)
        maker: async_sessionmaker[AsyncSession] = server.server.config.app.state.sessionmaker
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            sid = (await new_session(client))["id"]
            async with maker() as db, db.begin():  # the one SQLite connection, held past the wait
                await db.execute(text("SELECT 1"))
                r = await client.post(f"/v1/sessions/{sid}/participants", json={"name": "late"})
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.json() == {"error": "database_busy", "detail": "The database is busy; try again shortly."}
            assert (await client.get(f"/v1/sessions/{sid}/participants")).json() == []
            assert (await client.post(f"/v1/sessions/{sid}/participants", json={"name": "later"})).status_code == 201
