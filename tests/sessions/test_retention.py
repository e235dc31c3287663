"""Retention: idle sessions past their workspace's retention are purged with everything they hold, and nothing else."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from codeconnect.__main__ import main
from codeconnect.config import Settings
from codeconnect.db import create_engine, create_sessionmaker
from codeconnect.models import SessionRow, utcnow
from codeconnect.sessions.retention import Purger
from codeconnect.workspaces.schemas import Policy
from codeconnect.workspaces.service import create_workspace
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory, eventually
from tests.sessions.test_deletion import rows_of

GONE = dict.fromkeys(("sessions", "participants", "doc_updates", "doc_history", "doc_bases", "session_notes"), 0)


async def sql(database_url: str, statement: Any) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(statement)
    finally:
        await engine.dispose()


async def idle_for(database_url: str, session_id: str, days: float) -> None:
    """Make the session's last change ``days`` old."""
    await sql(
        database_url,
        update(SessionRow).where(SessionRow.id == session_id).values(updated_at=utcnow() - timedelta(days=days)),
    )


async def workspace(database_url: str, name: str, retention_days: int | None) -> str:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            return (await create_workspace(db, name, Policy(retention_days=retention_days))).row.id
    finally:
        await engine.dispose()


async def session_with_people(client: httpx.AsyncClient) -> dict[str, Any]:
    session = await new_session(client)
    session["ada"] = await join(client, session["id"], "Ada")
    r = await client.put(f"/v1/sessions/{session['id']}", json={"code": "print(1)\n"})
    assert r.status_code == 200
    r = await client.put(f"/v1/sessions/{session['id']}/notes", json={"text": "notes", "version": 0},
                         headers={"X-Owner-Key": session["ownerKey"]})
    assert r.status_code == 200
    return session


async def unloaded(server: LiveServer, *sessions: dict[str, Any]) -> None:
    """Wait until the sessions' rooms are unloaded (their last changes stored): then their rows are still."""
    app: Any = server.server.config.app

    async def done() -> bool:
        return not any(app.state.collab.holds(s["id"]) for s in sessions)

    await eventually(done)


def purger_of(server: LiveServer) -> Purger:
    app: Any = server.server.config.app
    purger: Purger = app.state.retention.purger
    return purger


async def test_purge_removes_every_row_of_expired_idle_sessions_and_nothing_else(
    server_factory: ServerFactory, database_url: str
) -> None:
    server = await server_factory(retention_days=30, room_unload_grace_seconds=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        expired = await session_with_people(client)
        fresh = await session_with_people(client)
        online = await session_with_people(client)
        longer = await session_with_people(client)
        shorter = await session_with_people(client)
        # Workspaces whose policy sets the retention: a year (the old session stays), a day (the fresh one goes).
        year = await workspace(database_url, "archive", 365)
        day = await workspace(database_url, "scratch", 1)
        await sql(database_url, update(SessionRow).where(SessionRow.id == longer["id"]).values(workspace_id=year))
        await sql(database_url, update(SessionRow).where(SessionRow.id == shorter["id"]).values(workspace_id=day))
        # Someone is connected to the old session: it is not idle. Its room's grace period is over before the
        # purge below, and the client stays connected.
        watcher = await YClient(collab_url(server.ws_url, online["id"], online["ada"]["token"])).connect()
        await unloaded(server, expired, fresh, longer, shorter)
        for session in (expired, online):
            await idle_for(database_url, session["id"], 31)
        await idle_for(database_url, longer["id"], 200)
        await idle_for(database_url, shorter["id"], 2)
        untouched = {s["id"]: await rows_of(database_url, s["id"]) for s in (fresh, online, longer)}

        report = await purger_of(server).run()

        assert (report.deleted, report.in_use) == (2, 1)
        for session in (expired, shorter):
            assert await rows_of(database_url, session["id"]) == GONE
            assert (await client.get(f"/v1/sessions/{session['id']}")).status_code == 404
        for session_id, rows in untouched.items():
            assert await rows_of(database_url, session_id) == rows
        assert not watcher.closed.is_set()
        # A second run finds nothing more to do while the watcher stays; once it has left (and the room unloaded),
        # its session is idle too. Connecting is not a change.
        assert (await purger_of(server).run()).deleted == 0
        await watcher.close()
        await unloaded(server, online)
        assert (await purger_of(server).run()).deleted == 1
        assert await rows_of(database_url, online["id"]) == GONE


async def test_retention_zero_keeps_sessions(server_factory: ServerFactory, database_url: str) -> None:
    server = await server_factory(retention_days=0, room_unload_grace_seconds=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session = await session_with_people(client)
    await unloaded(server, session)
    await idle_for(database_url, session["id"], 10_000)
    assert (await purger_of(server).run()).deleted == 0
    assert (await rows_of(database_url, session["id"]))["sessions"] == 1


async def test_the_background_task_purges(server_factory: ServerFactory, database_url: str) -> None:
    server = await server_factory(
        retention_days=1, purge_interval_seconds=0.05, purge_batch_size=2, room_unload_grace_seconds=0
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        sessions = [await session_with_people(client) for _ in range(5)]
        keep = await session_with_people(client)
    await unloaded(server, *sessions)
    for session in sessions:
        await idle_for(database_url, session["id"], 3)

    async def all_purged() -> bool:
        return [(await rows_of(database_url, s["id"]))["sessions"] for s in sessions] == [0] * len(sessions)

    await eventually(all_purged)
    for session in sessions:
        assert await rows_of(database_url, session["id"]) == GONE
    assert (await rows_of(database_url, keep["id"]))["sessions"] == 1


async def test_purges_at_once_delete_each_session_once(server_factory: ServerFactory, database_url: str) -> None:
    server = await server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        sessions = [await session_with_people(client) for _ in range(12)]
    await server.stop()  # two purgers of their own, each with its own connections, nobody else
    for session in sessions:
        await idle_for(database_url, session["id"], 400)
    settings = Settings(database_url=database_url, retention_days=30, purge_batch_size=3)
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        purgers = [Purger(create_sessionmaker(e), settings, asyncio.Semaphore(1)) for e in engines]
        reports = await asyncio.gather(*(p.run() for p in purgers))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(r.deleted for r in reports) == len(sessions)
    for session in sessions:
        assert await rows_of(database_url, session["id"]) == GONE


@pytest.mark.usefixtures("clean_env")
async def test_the_command(
    server_factory: ServerFactory,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = await server_factory(room_unload_grace_seconds=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        old = [await session_with_people(client) for _ in range(2)]
        new = await session_with_people(client)
    await unloaded(server, *old, new)
    for session in old:
        await idle_for(database_url, session["id"], 100)
    monkeypatch.setenv("CODECONNECT_DATABASE_URL", database_url)
    monkeypatch.setenv("CODECONNECT_RETENTION_DAYS", "30")

    # The dry run lists, by reference, and deletes nothing; it runs beside a server.
    assert await asyncio.to_thread(main, ["purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 idle session(s) past their retention would be purged (dry run)" in out
    assert out.count("idle_days=100") == 2
    for session in (*old, new):
        assert session["id"] not in out
        assert (await rows_of(database_url, session["id"]))["sessions"] == 1

    # A real purge waits for the servers to stop: they know who is connected, and purge on their own. (From a
    # process of its own: the server's row names this test's process, which the command would take for its own.)
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "codeconnect", "purge", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err = await command.communicate()
    assert command.returncode == 2
    assert b"1 server process(es) use this database" in err
    assert (await rows_of(database_url, old[0]["id"]))["sessions"] == 1

    await server.stop()
    assert await asyncio.to_thread(main, ["purge"]) == 0
    assert "purged 2 idle session(s)" in capsys.readouterr().out
    for session in old:
        assert await rows_of(database_url, session["id"]) == GONE
    assert (await rows_of(database_url, new["id"]))["sessions"] == 1
