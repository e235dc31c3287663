"""Deleting a session in a cluster: every process closes its connections, forgets its tokens and rooms."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import update

from codeconnect.models import SessionRow, utcnow
from tests.cluster.conftest import session_on
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import REDIS_URL, ServerFactory, eventually
from tests.sessions.test_deletion import rows_of
from tests.sessions.test_retention import GONE, sql


async def test_a_deletion_on_one_process_closes_clients_on_the_other(cluster: ServerFactory, pg_url: str) -> None:
    first: Any = await cluster()
    second: Any = await cluster()
    async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as http:
        created = await new_session(http)
        sid, owner_key = created["id"], created["ownerKey"]
        ada, grace = await join(http, sid, "Ada"), await join(http, sid, "Grace")
    a = await YClient(collab_url(first.ws_url, sid, ada["token"])).connect()
    b = await YClient(collab_url(second.ws_url, sid, grace["token"])).connect()
    other, _ = await session_on(second, "Alan")
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert await redis.exists(f"ccl:s:{sid}") == 1
        # The second process's client types just before the deletion: its process is still storing it.
        b.code.insert(0, "typed on the other process\n")
        await a.wait_for(lambda: "typed on the other process" in a.text)

        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as http:
            r = await http.delete(f"/v1/sessions/{sid}", headers={"X-Owner-Key": owner_key})
        assert r.status_code == 204, r.text
        assert await a.wait_closed() == 4404
        assert await b.wait_closed() == 4404

        # The second process checked Grace's token a moment ago (it is in its cache): refused now, with 4404.
        again = YClient(collab_url(second.ws_url, sid, grace["token"]))
        with pytest.raises(TimeoutError, match="closed 4404"):
            await again.connect(sync_timeout=5)
        await again.close()
        async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as http:
            assert (await http.get(f"/v1/sessions/{sid}")).status_code == 404
            # Its writer commits again (a write elsewhere waits for its commit): nothing of the session returns.
            for _ in range(2):
                assert (await http.put(f"/v1/sessions/{other}", json={"code": "x\n"})).status_code == 200
        assert await rows_of(pg_url, sid) == GONE

        async def keys_gone() -> bool:
            return await redis.exists(f"ccl:s:{sid}", f"ccl:m:{sid}", f"ccl:o:{sid}") == 0

        await eventually(keys_gone)
    finally:
        await redis.aclose()
        for client in (a, b):
            await client.close()


async def test_purges_of_two_processes(cluster: ServerFactory, pg_url: str) -> None:
    first: Any = await cluster(retention_days=30, room_unload_grace_seconds=0)
    second: Any = await cluster(retention_days=30, room_unload_grace_seconds=0)
    async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as http:
        created = [await new_session(http) for _ in range(8)]
        watched = created[0]
        grace = await join(http, watched["id"], "Grace")
    # Someone is connected to one old session on the second process only: the first one hears it through Redis.
    watcher = await YClient(collab_url(second.ws_url, watched["id"], grace["token"])).connect()
    apps = [first.server.config.app, second.server.config.app]

    async def unloaded() -> bool:
        return not any(app.state.collab.holds(s["id"]) for s in created[1:] for app in apps)

    await eventually(unloaded)
    await sql(pg_url, update(SessionRow).values(updated_at=utcnow() - timedelta(days=40)))
    try:
        reports = await asyncio.gather(*(app.state.retention.purger.run() for app in apps))
        # Each idle session deleted once, by one of them; the watched one by neither.
        assert sum(r.deleted for r in reports) == len(created) - 1
        assert not watcher.closed.is_set()
        assert (await rows_of(pg_url, watched["id"]))["sessions"] == 1
        for session in created[1:]:
            assert await rows_of(pg_url, session["id"]) == GONE
    finally:
        await watcher.close()
