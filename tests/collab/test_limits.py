"""Hostile and faulty input on the live endpoint: every limit closes only the offending connection."""

from __future__ import annotations

import asyncio
import os

import httpx
from pycrdt import Doc, Text
from websockets.asyncio.client import connect

from codeconnect.collab import protocol as p
from codeconnect.collab.transport import WebSocketConnection
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory
from tests.test_metrics import moved, scrape

# Found by fuzzing: 30 random bytes whose first varUint claims ~2^33 client blocks. Handed to pycrdt as
# they are, each such update took ~0.1 s and ~500 MiB before being refused.
HOSTILE_UPDATE = bytes.fromhex("91b8cc584ae1283bf6672f5950357c18b61093b8f059da2da273fac5b9749bbe2deb2f70cf")


async def _room(server: LiveServer, client: httpx.AsyncClient) -> tuple[str, YClient]:
    s = await new_session(client)
    token = (await join(client, s["id"], "Witness"))["token"]
    witness = await YClient(collab_url(server.ws_url, s["id"], token)).connect()
    return s["id"], witness


async def _token(client: httpx.AsyncClient, sid: str, name: str = "Mallory") -> str:
    token: str = (await join(client, sid, name))["token"]
    return token


async def _still_works(server: LiveServer, client: httpx.AsyncClient, sid: str, witness: YClient) -> None:
    """The room and the process survived: a new client edits and the witness sees it; REST answers."""
    other = await YClient(collab_url(server.ws_url, sid, await _token(client, sid, "Later"))).connect()
    marker = f"# still alive {os.urandom(3).hex()}\n"
    other.code.insert(0, marker)
    await witness.wait_for(lambda: marker in witness.text)
    r = await client.get(f"/v1/sessions/{sid}")
    assert r.status_code == 200 and marker in r.json()["code"]
    await other.close()


async def test_malformed_messages_close_only_that_connection(sqlite_server_factory: ServerFactory) -> None:
    server = await sqlite_server_factory()
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, witness = await _room(server, client)
        other_sid, other_witness = await _room(server, client)
        cases: list[tuple[bytes | str, int]] = [
            (os.urandom(64), 4400),  # random bytes
            (b"\x00\x02\xff\xff", 4400),  # truncated varint
            (b"\x00\x02\xff\xff\xff\xff\x0f" + b"x" * 10, 4400),  # absurd length prefix
            (b"\x09", 4400),  # unknown message type
            (b"\x00\x07\x00", 4400),  # unknown sync type
            (b"\x00\x02\x05\x01\x02\x03\x04\x05", 4400),  # an update that does not decode
            (p.sync_update(HOSTILE_UPDATE), 4400),  # tiny update claiming billions of items
            (p.sync_step1(b"\xff\xff\xff\xff\x0f"), 4400),  # absurd state vector
            (b"\x01\x03\x01\x01\x01", 4400),  # awareness update cut short
            (p.awareness_message(b"\x01\x05\x01\x03{x}"), 4400),  # awareness state that is not JSON
            ("hello", 1003),  # text frame
        ]
        for frame, code in cases:
            # A participant of its own each: closes for breaking a rule put a participant in a cooldown.
            c = await YClient(collab_url(server.ws_url, sid, await _token(client, sid))).connect()
            await c.send(frame)
            assert await c.wait_closed() == code, frame
            await c.close()
        await _still_works(server, client, sid, witness)
        await _still_works(server, client, other_sid, other_witness)
        await witness.close()
        await other_witness.close()


async def test_hostile_updates_are_refused_without_reaching_the_crdt(sqlite_server_factory: ServerFactory) -> None:
    server = await sqlite_server_factory()
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, witness = await _room(server, client)
        for _ in range(20):
            c = await YClient(collab_url(server.ws_url, sid, await _token(client, sid))).connect()
            await c.send(p.sync_update(HOSTILE_UPDATE))
            assert await c.wait_closed() == 4400
            await c.close()
        await _still_works(server, client, sid, witness)
        await witness.close()


async def test_message_over_the_size_limit_closes_4413(sqlite_server_factory: ServerFactory) -> None:
    server = await sqlite_server_factory(ws_max_message_bytes=4096)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, witness = await _room(server, client)
        c = await YClient(collab_url(server.ws_url, sid, await _token(client, sid))).connect()
        await c.send(b"\x01" + b"\x00" * 5000)
        assert await c.wait_closed() == 4413
        await c.close()
        await _still_works(server, client, sid, witness)
        await witness.close()


async def test_updates_past_the_code_limit_close_4413(sqlite_server_factory: ServerFactory) -> None:
    server = await sqlite_server_factory(max_code_bytes=1000)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, witness = await _room(server, client)
        before = witness.text
        c = await YClient(collab_url(server.ws_url, sid, await _token(client, sid))).connect()
        c.code.insert(0, "x" * 1200)
        assert await c.wait_closed() == 4413
        await c.close()
        r = await client.get(f"/v1/sessions/{sid}")
        assert r.json()["code"] == before == witness.text
        # REST enforces the same limit.
        r = await client.put(f"/v1/sessions/{sid}", json={"code": "y" * 1200})
        assert r.status_code in (413, 422)
        await witness.close()


async def test_the_code_limit_counts_the_text_as_it_is_after_deletions(sqlite_server_factory: ServerFactory) -> None:
    # The server tracks an upper bound of the text's size (inserts only) and measures exactly near the limit:
    # text deleted and typed again, any number of times, is allowed; only the real size is held to the limit.
    server = await sqlite_server_factory(max_code_bytes=1000)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, witness = await _room(server, client)
        c = await YClient(collab_url(server.ws_url, sid, await _token(client, sid))).connect()
        del c.code[0 : len(c.code)]
        for round_ in range(5):  # 5 × 900 bytes typed in all, never more than 900 at once
            c.code.insert(0, str(round_) * 900)
            await witness.wait_for(lambda: witness.text == c.text)
            del c.code[0 : len(c.code)]
        c.code.insert(0, "z" * 990)
        await witness.wait_for(lambda: witness.text == "z" * 990)
        c.code.insert(0, "y" * 20)  # 1010 bytes: over
        assert await c.wait_closed() == 4413
        assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == "z" * 990 == witness.text
        await c.close()
        await witness.close()


async def test_message_rate_limit_closes_4429(sqlite_server_factory: ServerFactory) -> None:
    server = await sqlite_server_factory(ws_rate_per_second=50, ws_rate_burst=20, ws_rate_grace_seconds=0.3)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, witness = await _room(server, client)
        async with connect(collab_url(server.ws_url, sid, await _token(client, sid))) as ws:
            query = bytes([p.MessageType.QUERY_AWARENESS])
            code = None
            for _ in range(2000):
                try:
                    await ws.send(query)
                except Exception:
                    break
                await asyncio.sleep(0.001)
            try:
                await asyncio.wait_for(ws.wait_closed(), 10)
            finally:
                code = ws.close_code
            assert code == 4429
        await _still_works(server, client, sid, witness)
        await witness.close()


async def test_connections_per_session_limit_closes_4429(sqlite_server_factory: ServerFactory) -> None:
    server = await sqlite_server_factory(max_connections_per_session=2)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, witness = await _room(server, client)
        token = await _token(client, sid)
        second = await YClient(collab_url(server.ws_url, sid, token)).connect()
        third = await YClient(collab_url(server.ws_url, sid, token)).connect(wait_sync=False)
        assert await third.wait_closed() == 4429
        await third.close()
        await second.close()
        # A place freed is a place available again.
        again = await YClient(collab_url(server.ws_url, sid, token)).connect()
        await again.close()
        await witness.close()


async def test_slow_reader_is_dropped_and_memory_stays_bounded(sqlite_server_factory: ServerFactory) -> None:
    server = await sqlite_server_factory(
        ws_send_queue_messages=16, ws_send_queue_bytes=256 * 1024, max_code_bytes=64 * 1024 * 1024,
        max_document_bytes=256 * 1024 * 1024,
    )
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        before = await scrape(client)
        sid, writer = await _room(server, client)
        slow_token = await _token(client, sid, "Slow")
        # A client that never reads: its library stops reading the socket after max_queue messages.
        slow = await connect(collab_url(server.ws_url, sid, slow_token), max_queue=1, max_size=None)
        registry = server.server.config.app.state.collab
        room = registry.rooms[sid]
        for _ in range(200):
            if len(room.peers) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(room.peers) == 2
        chunk = "z" * 32 * 1024
        for _ in range(400):
            writer.code += chunk
            await asyncio.sleep(0.002)
            if len(room.peers) == 1:
                break
        # The slow client was dropped; the writer is still connected and in sync with the server.
        assert len(room.peers) == 1
        # Its socket is gone too, with what was still waiting to be sent to it: closing it the polite way
        # would wait for those bytes to drain into a client that does not read, for good.
        async with asyncio.timeout(10):
            while server.live_sockets() > 1:
                await asyncio.sleep(0.05)
        r = await client.get(f"/v1/sessions/{sid}/participants")
        assert {q["name"]: q["online"] for q in r.json()}["Slow"] is False
        after = await scrape(client)
        assert moved(before, after, "codeconnect_live_slow_readers_dropped_total") == 1
        assert moved(before, after, "codeconnect_live_closes_total", code=str(p.CloseCode.SLOW_CLIENT.value)) == 1
        await _still_works(server, client, sid, writer)
        slow.transport.abort()
        await writer.close()


async def test_a_rule_breaker_that_does_not_read_its_close_has_its_socket_cut(
    sqlite_server_factory: ServerFactory,
) -> None:
    # A client closed for a malformed message, with megabytes it never read still waiting for it: the close
    # frame sits behind them and is never answered. Its socket must not stay open (with its unsent bytes).
    server = await sqlite_server_factory(
        ws_close_timeout_seconds=0.5, ws_send_queue_bytes=256 * 1024 * 1024, ws_send_queue_messages=100_000,
        max_code_bytes=64 * 1024 * 1024, max_document_bytes=256 * 1024 * 1024,
    )
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, writer = await _room(server, client)
        silent = await connect(collab_url(server.ws_url, sid, await _token(client, sid)), max_queue=1, max_size=None)
        room = server.server.config.app.state.collab.rooms[sid]
        async with asyncio.timeout(10):
            while len(room.peers) < 2:
                await asyncio.sleep(0.01)
        peer = next(q for q in room.peers if q.name == "Mallory")
        connection = peer.channel
        assert isinstance(connection, WebSocketConnection)
        chunk = "z" * 64 * 1024
        async with asyncio.timeout(30):
            while connection.waiting_bytes == 0:  # the kernel's buffers are full: bytes wait here
                writer.code += chunk
                await asyncio.sleep(0.005)
        assert server.live_sockets() == 2
        silent.transport.write(b"\x82\x83" + bytes(4) + b"\x07\x07\x07")  # message type 7: malformed
        async with asyncio.timeout(10):
            while len(room.peers) > 1 or server.live_sockets() > 1:
                await asyncio.sleep(0.05)
        assert connection.waiting_bytes == 0
        await _still_works(server, client, sid, writer)
        silent.transport.abort()
        await writer.close()


async def test_parked_updates_count_toward_the_document_limit(sqlite_server_factory: ServerFactory) -> None:
    """Updates whose dependencies never arrive change nothing visible but occupy memory: they count."""
    server = await sqlite_server_factory(max_document_bytes=8192)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid, witness = await _room(server, client)
        source = Doc()
        text = source.get("code", type=Text)
        updates: list[bytes] = []
        source.observe(lambda e: updates.append(e.update))
        text += "a" * 10
        for i in range(800):
            text += f"{i:04d}"
        c = await YClient(collab_url(server.ws_url, sid, await _token(client, sid))).connect()
        # Never the first update: every later one waits for it forever.
        for update in updates[1:]:
            await c.send(p.sync_update(update))
            if c.closed.is_set():
                break
        assert await c.wait_closed() == 4413
        await c.close()
        # Parked updates are stored like any other (once their dependencies arrive they are part of the text,
        # so durability needs them) and keep counting; other sessions are unaffected.
        assert (await client.get(f"/v1/sessions/{sid}")).status_code == 200
        other_sid, other_witness = await _room(server, client)
        await _still_works(server, client, other_sid, other_witness)
        await witness.close()
        await other_witness.close()
