"""Presence: a participant whose browser vanishes (no close, no more frames) is shown away in time.

Stock y-websocket pages renew their awareness state every 15 s and drop a peer's state after 30 s without one
(y-protocols' ``outdatedTimeout``); the REST ``online`` flag and the others' people lists must not lag behind
that. The server notices a silent connection by pinging it after ``ws_ping_interval_seconds`` and cutting it
``ws_ping_timeout_seconds`` later. The timing tests run the defaults scaled down, and the budget with them.
"""

from __future__ import annotations

import asyncio

import httpx

from codeconnect.config import Settings
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import fresh_sqlite, start_server

#: y-protocols: a page drops a peer's awareness state this long after its last renewal.
AWARENESS_TIMEOUT_SECONDS = 30.0
SCALE = 0.2


def default(name: str) -> float:
    value = Settings.model_fields[name].default
    assert isinstance(value, float)
    return value


def scaled_keepalive(scale: float = SCALE) -> dict[str, float]:
    """The default keepalive settings, scaled down like the awareness timeout the tests compare them with."""
    return {
        "ws_ping_interval_seconds": default("ws_ping_interval_seconds") * scale,
        "ws_ping_timeout_seconds": default("ws_ping_timeout_seconds") * scale,
    }


def test_defaults_cut_a_silent_connection_before_the_awareness_timeout() -> None:
    # A vanished browser is cut interval + timeout after its last frame; its last frame may be the awareness
    # renewal itself, so the sum must stay under the awareness timeout (with room for timers and the network).
    interval, timeout = default("ws_ping_interval_seconds"), default("ws_ping_timeout_seconds")
    assert interval + timeout <= AWARENESS_TIMEOUT_SECONDS - 5
    # A quiet page answering pings is never cut: its pong comes back within the timeout.
    assert timeout >= 10


async def test_a_browser_that_vanishes_is_shown_away_within_the_awareness_timeout(sqlite_url: str) -> None:
    await fresh_sqlite(sqlite_url)
    keepalive = scaled_keepalive()
    server = await start_server(Settings(database_url=sqlite_url, **keepalive))
    loop = asyncio.get_running_loop()
    budget = AWARENESS_TIMEOUT_SECONDS * SCALE
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            s = await new_session(client)
            ada = await join(client, s["id"], "Ada")
            bob = await join(client, s["id"], "Bob")
            # Clients that never ping on their own, as browsers; both answer the server's pings while they read.
            a = await YClient(collab_url(server.ws_url, s["id"], ada["token"])).connect(ping_interval=None)
            b = await YClient(collab_url(server.ws_url, s["id"], bob["token"])).connect(ping_interval=None)
            await a.set_awareness({"user": {"name": "Ada"}})
            await b.set_awareness({"user": {"name": "Bob"}})
            await b.wait_for(lambda: a.doc.client_id in b.awareness)
            bob_last_frame = loop.time()

            async def online() -> dict[str, bool]:
                r = await client.get(f"/v1/sessions/{s['id']}/participants")
                return {p["name"]: p["online"] for p in r.json()}

            assert await online() == {"Ada": True, "Bob": True}
            # Ada's laptop lid closes right after her last message: from now on nothing, not even a pong or a
            # TCP reset (the socket stays open; only the server's keepalive can tell).
            assert a.ws is not None
            a.ws.transport.pause_reading()
            vanished = loop.time()
            while (await online())["Ada"]:
                assert loop.time() - vanished < budget * 2, "Ada is still shown online"
                await asyncio.sleep(0.05)
            elapsed = loop.time() - vanished
            assert elapsed <= budget, f"shown away after {elapsed:.2f} s (the budget is {budget:.2f} s)"
            # Bob's page is told at the same moment: Ada's awareness state is gone.
            await b.wait_for(lambda: a.doc.client_id not in b.awareness, timeout=1)
            # Bob is as quiet as Ada was, but answers the pings: still online well past the cut.
            cut_after = keepalive["ws_ping_interval_seconds"] + keepalive["ws_ping_timeout_seconds"]
            await asyncio.sleep(max(0.0, bob_last_frame + cut_after * 1.5 - loop.time()))
            assert await online() == {"Ada": False, "Bob": True}
            assert not b.closed.is_set()
            a.ws.transport.abort()
            await b.close()
            await a.close()
    finally:
        await server.stop()

