"""WebSocket frames as clients may really send them, read by the live endpoint's own frame reader: split
across reads at every byte, interleaved with pings, fragmented, unmasked."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect

from codeconnect.collab import protocol as p
from codeconnect.collab.protocol import MessageType, SyncType
from codeconnect.collab.registry import RoomRegistry
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer


def frame(payload: bytes, *, opcode: int = 2, fin: bool = True, masked: bool = True) -> bytes:
    """One client frame (RFC 6455 5.2), in any of the three length forms."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = bytes((first, mask_bit | n))
    elif n < 65536:
        head = bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawClient:
    """A synced pycrdt document whose updates are written to the socket as hand-made frames."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc[Any] = Doc()
        self.code = self.doc.get("code", type=Text)
        self.updates: list[bytes] = []

    @classmethod
    async def open(cls, url: str) -> RawClient:
        raw = cls(await connect(url, max_size=None))
        await raw.ws.send(p.sync_step1(raw.doc.get_state()))
        while True:
            msg = p.parse_message(await asyncio.wait_for(raw.ws.recv(), 10))  # type: ignore[arg-type]
            if msg.type == MessageType.SYNC and msg.sync_type == SyncType.STEP2:
                raw.doc.apply_update(msg.payload)
                break
        raw.doc.observe(lambda event: raw.updates.append(event.update))
        return raw

    def edit(self, text: str) -> bytes:
        """Append ``text`` and return the update message for it."""
        self.code += text
        return p.sync_update(self.updates[-1])

    def write(self, data: bytes) -> None:
        self.ws.transport.write(data)


async def _pair(server: LiveServer, client: httpx.AsyncClient) -> tuple[str, RawClient, YClient]:
    s = await new_session(client, code="")
    raw = await RawClient.open(collab_url(server.ws_url, s["id"], (await join(client, s["id"], "Raw"))["token"]))
    witness = await YClient(collab_url(server.ws_url, s["id"], (await join(client, s["id"], "W"))["token"])).connect()
    return s["id"], raw, witness


async def test_frames_split_at_every_byte_and_pings_between_them(http: tuple[LiveServer, httpx.AsyncClient]) -> None:
    server, client = http
    sid, raw, witness = await _pair(server, client)
    first = frame(raw.edit("a"))
    rest = frame(raw.edit("b" * 300)) + frame(raw.edit("c"))  # 7- and 16-bit lengths
    for stream in (first, rest):
        for i in range(len(stream)):
            raw.write(stream[i : i + 1])
            if i % 7 == 0:
                await asyncio.sleep(0.001)  # separate reads on the server
        if stream is first:
            pong = await raw.ws.ping(b"between frames")
            await asyncio.wait_for(pong, 5)
    await witness.wait_for(lambda: witness.text == "a" + "b" * 300 + "c")
    # Two frames in one write, and a frame whose end comes with the next one's start.
    both = frame(raw.edit("d")) + frame(raw.edit("e"))
    raw.write(both[:5])
    await asyncio.sleep(0.01)
    raw.write(both[5:])
    await witness.wait_for(lambda: witness.text.endswith("de"))
    assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == str(raw.code)
    await witness.close()
    await raw.ws.close()


async def test_fragmented_messages_are_reassembled_and_later_frames_still_read(
    http: tuple[LiveServer, httpx.AsyncClient],
) -> None:
    server, client = http
    sid, raw, witness = await _pair(server, client)
    message = raw.edit("fragmented")
    raw.write(frame(message[:4], fin=False) + frame(message[4:], opcode=0))  # binary start, continuation
    raw.write(frame(raw.edit(" then whole")))
    await witness.wait_for(lambda: witness.text == "fragmented then whole")
    pong = await raw.ws.ping()
    await asyncio.wait_for(pong, 5)
    assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == "fragmented then whole"
    await witness.close()
    await raw.ws.close()


async def test_an_unmasked_frame_fails_only_that_connection(http: tuple[LiveServer, httpx.AsyncClient]) -> None:
    server, client = http
    sid, raw, witness = await _pair(server, client)
    raw.write(frame(raw.edit("never"), masked=False))
    await asyncio.wait_for(raw.ws.wait_closed(), 10)
    assert raw.ws.close_code == 1002  # protocol error, from the websockets library
    witness.code += "still here"
    await asyncio.sleep(0.2)
    assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == "still here"
    await witness.close()


async def test_a_burst_over_the_rate_is_slowed_then_closed(http: tuple[LiveServer, httpx.AsyncClient]) -> None:
    server, client = http
    sid, raw, witness = await _pair(server, client)
    registry: RoomRegistry = server.server.config.app.state.collab
    assert server.live_sockets() == 2
    # Thousands of frames in a few writes: far over the rate; read paused, then closed with 4429.
    burst = b"".join(frame(raw.edit("x")) for _ in range(3000))
    for i in range(0, len(burst), 65536):
        raw.write(burst[i : i + 65536])
    await asyncio.wait_for(raw.ws.wait_closed(), 30)
    assert raw.ws.close_code == 4429
    assert 0 < len(witness.text) < 3000
    # The server let go of it, its room seat and its socket; the other client and REST still agree.
    async with asyncio.timeout(10):
        while len(registry.rooms[sid].peers) > 1 or server.live_sockets() > 1:
            await asyncio.sleep(0.05)
    witness.code += "!"
    await witness.wait_for(lambda: witness.text.endswith("!"))
    assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == witness.text
    await witness.close()
