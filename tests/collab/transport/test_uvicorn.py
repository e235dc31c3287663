"""The seam with uvicorn: its documented ``ws``/``http`` options construct this project's protocol classes,
and the live endpoint also works through plain ASGI under uvicorn's own WebSocket protocol."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from codeconnect.collab.transport import SHUTDOWN_STATE_KEY, WebSocketConnection
from codeconnect.collab.transport.http import HeadDeadlineHTTP
from codeconnect.config import Settings
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, eventually, fresh_sqlite, start_server


@pytest.fixture
async def settings(sqlite_url: str) -> Settings:
    await fresh_sqlite(sqlite_url)
    return Settings(database_url=sqlite_url)


async def _co_edit(server: LiveServer) -> list[object]:
    """Two clients co-edit; returns the room's peers' channels while both are connected."""
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid = (await new_session(client, code=""))["id"]
        a = await YClient(collab_url(server.ws_url, sid, (await join(client, sid, "A"))["token"])).connect()
        b = await YClient(collab_url(server.ws_url, sid, (await join(client, sid, "B"))["token"])).connect()
        a.code += "hello"
        await b.wait_for(lambda: b.text == "hello")
        channels: list[object] = [peer.channel for peer in server.server.config.app.state.collab.rooms[sid].peers]
        await a.close()
        await b.close()
        assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == "hello"
        return channels


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[LiveServer]:
    server = await start_server(settings)
    yield server
    await server.stop()


async def test_uvicorn_constructs_our_protocol_classes(served: LiveServer) -> None:
    # uvicorn builds `ws=` and `http=` classes as cls(config=..., server_state=..., app_state=...), then
    # connection_made / data_received / set_protocol; a release that changes that fails here.
    assert served.server.config.ws_protocol_class is WebSocketConnection
    assert served.server.config.http_protocol_class is HeadDeadlineHTTP
    channels = await _co_edit(served)
    assert len(channels) == 2 and all(isinstance(c, WebSocketConnection) for c in channels)

    # Nothing of a closed connection stays in uvicorn's set (which it waits on to stop): neither the HTTP
    # connections nor the two that became WebSocket connections.
    async def gone() -> bool:
        return not served.server.server_state.connections

    await eventually(gone)


def _upgrade(server: LiveServer, session_id: str, token: str) -> bytes:
    host = server.base_url.removeprefix("http://")
    return (
        f"GET /v1/collab/{session_id}?token={token} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()


async def _open(server: LiveServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_a_first_request_that_upgrades_is_handed_over_without_an_http_protocol(served: LiveServer) -> None:
    """The head arrives in pieces; once whole, the connection is the WebSocket protocol's (the only one in
    uvicorn's set), and nothing of it stays there once it is closed."""
    async with httpx.AsyncClient(timeout=30, base_url=served.base_url) as client:
        sid = (await new_session(client))["id"]
        token = (await join(client, sid, "Ada"))["token"]
    reader, writer = await _open(served)
    request = _upgrade(served, sid, token)
    for piece in (request[:10], request[10:-3], request[-3:]):
        writer.write(piece)
        await writer.drain()
    async with asyncio.timeout(10):
        status = await reader.readuntil(b"\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    connections = served.server.server_state.connections
    assert len(connections) == 1 and all(isinstance(c, WebSocketConnection) for c in connections)
    writer.close()

    async def gone() -> bool:
        return not connections

    await eventually(gone)


async def test_an_upgrade_after_a_request_on_the_same_connection_goes_through_uvicorn(served: LiveServer) -> None:
    """The other way in: uvicorn's HTTP protocol constructs the ``ws=`` class for an upgrade that is not a
    connection's first request (its construction contract, with the test above)."""
    async with httpx.AsyncClient(timeout=30, base_url=served.base_url) as client:
        sid = (await new_session(client))["id"]
        token = (await join(client, sid, "Ada"))["token"]
    reader, writer = await _open(served)
    host = served.base_url.removeprefix("http://")
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    async with asyncio.timeout(10):
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))[15:])
        await reader.readexactly(length)
        writer.write(_upgrade(served, sid, token))
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 101")
    room = served.server.config.app.state.collab.rooms[sid]
    await eventually(lambda: _seated(room))
    assert all(isinstance(peer.channel, WebSocketConnection) for peer in room.peers)
    writer.close()


async def _seated(room: Any) -> bool:
    return len(room.peers) == 1


async def test_a_malformed_first_upgrade_head_is_answered_by_uvicorn(served: LiveServer) -> None:
    reader, writer = await _open(served)
    writer.write(b"GET /v1/collab/x HTTP/1.1\r\nHost example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    async with asyncio.timeout(10):
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 400")
    writer.close()


async def test_the_live_endpoint_works_through_plain_asgi(settings: Settings) -> None:
    server = await start_server(settings, ws="websockets-sansio", http="h11")
    try:
        channels = await _co_edit(server)
        assert len(channels) == 2 and not any(isinstance(c, WebSocketConnection) for c in channels)
    finally:
        await server.stop()


async def test_a_removal_closes_a_plain_asgi_connection_with_4403(settings: Settings) -> None:
    server = await start_server(settings, ws="websockets-sansio", http="h11")
    try:
        async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
            created = await new_session(client)
            sid = created["id"]
            ada = await join(client, sid, "Ada")
            a = await YClient(collab_url(server.ws_url, sid, ada["token"])).connect()
            r = await client.delete(
                f"/v1/sessions/{sid}/participants/{ada['id']}", headers={"X-Owner-Key": created["ownerKey"]}
            )
            assert r.status_code == 204
            assert await a.wait_closed() == 4403
    finally:
        await server.stop()


async def test_the_graceful_shutdown_reaches_the_apps_hook_while_a_request_waits() -> None:
    # uvicorn calls shutdown() on each connection of server_state.connections, then waits for the requests in
    # flight: the HTTP class's shutdown() calls the lifespan state's hook, which here ends a waiting request (as
    # it ends the notes' long-polls). A release that stops calling it, or waits before, fails here.
    stopping = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"][SHUTDOWN_STATE_KEY] = stopping.set
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await stopping.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"stopping"})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=HeadDeadlineHTTP, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(timeout=60) as client:
        request = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/"))
        while len(server.server_state.tasks) < 1:  # the request is in the app
            assert not request.done()
            await asyncio.sleep(0.01)
        server.should_exit = True
        answer = await request
    assert answer.status_code == 200 and answer.text == "stopping"
    await asyncio.wait_for(task, 30)
