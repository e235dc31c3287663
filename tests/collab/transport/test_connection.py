"""The WebSocket protocol class alone, with a fake transport and app: the handshake, the direct mode, limits
before and after authentication, the send budget, closes. Milliseconds each; no server, no socket."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from codeconnect.collab.transport import (
    ACCEPTOR_STATE_KEY,
    LIMITS_STATE_KEY,
    LIVE_EXTENSION,
    TransportLimits,
    WebSocketConnection,
)
from codeconnect.collab.transport.codec import unmask


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.writes = 0
        self.closed = False
        self.aborted = False
        self.reading = True
        self.buffered = 0  # what a full socket would keep in the transport

    def write(self, data: Any) -> None:
        self.written += bytes(data)
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)


@dataclass
class Config:
    app: Callable[..., Awaitable[None]]
    root_path: str = ""
    asgi_version: str = "3.0"
    ws_ping_interval: float | None = None
    ws_ping_timeout: float | None = None

    @property
    def loaded_app(self) -> Callable[..., Awaitable[None]]:
        return self.app


@dataclass
class ServerState:
    connections: set[Any] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def request(path: str = "/v1/collab/s") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def client_frame(payload: bytes, opcode: int = 2) -> bytes:
    n = len(payload)
    head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    if n >= 65536:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + unmask(payload, key)


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], data.index(b"\r\n\r\n") + 4 if data.startswith(b"HTTP/") else 0
    while pos < len(data):
        opcode, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if size == 126:
            size, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif size == 127:
            size, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        out.append((opcode, data[pos : pos + size]))
        pos += size
    return out


class Harness:
    """A connection, its fake transport, and a live-endpoint-like app that listens once ``release`` is set."""

    def __init__(self, limits: TransportLimits, *, listen: bool = True) -> None:
        self.messages: list[bytes] = []
        self.handler: Callable[[bytes], None] | None = None  # what the "endpoint" does with a message, if not keep it
        self.after_listen: list[int] = []  # the transport's writes as listen() returned
        self.closed = 0
        self.release = asyncio.Event()
        self.release.set()
        self.listen = listen
        self.transport = FakeTransport()
        self.state = ServerState()
        self.conn = WebSocketConnection(Config(self.app), self.state, {LIMITS_STATE_KEY: limits})

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await self.release.wait()  # "authenticating"
        if self.listen:
            scope["extensions"][LIVE_EXTENSION].listen(self.on_message, self.on_closed)
            self.after_listen.append(self.transport.writes)
        else:
            while (message := await receive())["type"] == "websocket.receive":
                if "bytes" in message:
                    self.messages.append(message["bytes"])

    def on_message(self, data: bytes) -> None:
        if self.handler is not None:
            self.handler(data)
        else:
            self.messages.append(data)

    def on_closed(self) -> None:
        self.closed += 1

    async def open(self) -> None:
        self.conn.connection_made(self.transport)
        self.conn.data_received(request())
        await self.settle()
        assert self.transport.written.startswith(b"HTTP/1.1 101")

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    def closes(self) -> list[int]:
        return [int.from_bytes(p[:2], "big") for op, p in server_frames(bytes(self.transport.written)) if op == 8]


async def test_handshake_then_messages_go_to_the_listener_in_order() -> None:
    h = Harness(TransportLimits())
    h.release.clear()
    await h.open()
    split = client_frame(b"also early")
    h.conn.data_received(client_frame(b"early") + split[:3])  # before it listens
    h.release.set()
    await h.settle()
    h.conn.data_received(split[3:] + client_frame(b"later"))
    assert h.messages == [b"early", b"also early", b"later"]
    assert h.state.tasks == set()  # the handler returned: nothing is suspended for an idle connection
    h.conn.send(b"out")
    await h.settle()  # written at the end of the loop's round
    assert server_frames(bytes(h.transport.written))[-1] == (2, b"out")


async def test_a_bad_upgrade_is_answered_by_http_and_closed() -> None:
    h = Harness(TransportLimits())
    h.conn.connection_made(h.transport)
    h.conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert h.transport.written.startswith(b"HTTP/1.1 426") or h.transport.written.startswith(b"HTTP/1.1 400")
    assert h.transport.closed


async def test_before_it_is_seated_a_peer_may_send_little() -> None:
    h = Harness(TransportLimits(preauth_bytes=1024))
    h.release.clear()
    await h.open()
    h.conn.data_received(client_frame(b"a" * 2000))
    assert h.closes() == [4413]
    assert h.messages == []


async def test_pings_count_toward_the_rate_and_a_flood_is_closed() -> None:
    h = Harness(TransportLimits(rate=10, burst=5, grace=0.05))
    await h.open()
    h.conn.data_received(client_frame(b"", opcode=9) * 50)
    await h.settle()
    pongs = [f for f in server_frames(bytes(h.transport.written)) if f[0] == 0xA]
    assert len(pongs) == 5 and not h.transport.reading  # the burst, then reading paused
    async with asyncio.timeout(5):
        while not h.closes():
            await asyncio.sleep(0.01)
    assert h.closes() == [4429] and h.closed == 1


async def test_a_burst_is_handled_in_turns_so_another_peer_is_not_held_up() -> None:
    flooder, other = Harness(TransportLimits(per_turn=16)), Harness(TransportLimits(per_turn=16))
    order: list[bytes] = []
    flooder.messages = other.messages = order  # both listeners write to one list: the order they ran in
    await flooder.open()
    await other.open()
    flooder.conn.data_received(b"".join(client_frame(b"f%d" % i) for i in range(40)))
    assert len(order) == 16  # one turn's worth; the rest waits for the loop's next round
    assert not flooder.transport.reading  # and reads no more meanwhile: its buffer cannot grow by a read a round
    other.conn.data_received(client_frame(b"honest"))  # ready in the same round
    assert order[16] == b"honest"
    await flooder.settle()
    assert order[17:] == [b"f%d" % i for i in range(16, 40)]  # nothing lost, in order
    assert flooder.transport.reading


async def test_what_a_peer_gets_in_one_round_is_written_once_and_in_order() -> None:
    """A busy room sends a peer many small messages at once: one write per round of the loop, not one each (a
    system call is most of what a relay costs); anything written another way goes after them."""
    h = Harness(TransportLimits())
    await h.open()
    before = h.transport.writes
    for i in range(20):
        h.conn.send(b"m%d" % i)
    assert h.transport.writes == before  # nothing yet: the round is not over
    await h.settle()
    assert h.transport.writes == before + 1
    h.conn.send(b"last")
    h.conn.close(4400, "bye")  # a control frame flushes what waits first
    frames = server_frames(bytes(h.transport.written))
    assert [f[1] for f in frames if f[0] == 2] == [b"m%d" % i for i in range(20)] + [b"last"]
    assert frames[-1][0] == 8


async def test_an_unfinished_frame_is_cut_after_the_timeout() -> None:
    h = Harness(TransportLimits(frame_timeout=0.05))
    await h.open()
    h.conn.data_received(client_frame(b"z" * 1000)[:500])
    async with asyncio.timeout(5):
        while not h.closes():
            await asyncio.sleep(0.01)
    assert h.closes() == [4408]


async def test_the_send_budget_counts_what_the_transport_holds() -> None:
    h = Harness(TransportLimits(send_budget_bytes=10_000))
    await h.open()
    h.conn.send(b"x" * 200_000)  # one large first message goes out, whatever its size
    assert not h.transport.aborted
    h.conn.pause_writing()  # the socket is full
    h.transport.buffered = 20_000  # and the transport holds bytes the peer has not taken
    h.conn.send(b"y")
    assert h.transport.aborted and h.closed == 0  # cut at once; on_closed follows connection_lost
    h.conn.connection_lost(None)
    assert h.closed == 1


async def test_a_large_message_is_written_in_slices_of_one_shared_object() -> None:
    h = Harness(TransportLimits())
    await h.open()
    start = len(h.transport.written)
    big = os.urandom(300_000)
    h.conn.pause_writing()
    h.conn.send(big)
    assert len(h.transport.written) == start  # nothing written while the socket is full
    assert h.conn.waiting_bytes >= len(big)
    h.conn.resume_writing()
    assert server_frames(bytes(h.transport.written[start:])) == [(2, big)]


async def test_a_peer_that_makes_no_progress_is_cut() -> None:
    h = Harness(TransportLimits(stall_seconds=0.05))
    await h.open()
    h.conn.pause_writing()
    async with asyncio.timeout(5):
        while not h.transport.aborted:
            await asyncio.sleep(0.01)


async def test_a_close_from_the_peer_is_answered_and_heard_once() -> None:
    h = Harness(TransportLimits())
    await h.open()
    h.conn.data_received(client_frame((1000).to_bytes(2, "big"), opcode=8))
    assert h.closes() == [1000] and h.transport.closed and h.closed == 1
    h.conn.connection_lost(None)
    assert h.closed == 1


@pytest.mark.parametrize("listen", [True, False])
async def test_text_frames_close_1003_in_direct_mode_and_reach_plain_asgi_handlers(listen: bool) -> None:
    h = Harness(TransportLimits(), listen=listen)
    await h.open()
    h.conn.data_received(client_frame(b"hello", opcode=1))
    await h.settle()
    if listen:
        assert h.closes() == [1003]
    else:
        assert h.closes() == [] and h.messages == []  # the app got a text message (and ignored it)


async def test_answers_to_a_peer_leave_in_the_read_that_asked_and_relays_wait_for_the_round() -> None:
    """A sync step 1 is answered in the same read (the answer must not wait for the loop's round, which a burst of
    connections makes long); what the same read relays to another peer is still written once per round."""
    asker, other = Harness(TransportLimits()), Harness(TransportLimits())
    await asker.open()
    await other.open()

    def answer_and_relay(data: bytes) -> None:
        asker.conn.send(b"answer to " + data)
        asker.conn.send(b"and more")
        other.conn.send(b"relay of " + data)

    asker.handler = answer_and_relay
    written, other_writes = asker.transport.writes, other.transport.writes
    asker.conn.data_received(client_frame(b"q1") + client_frame(b"q2"))
    assert asker.transport.writes == written + 1  # both answers of both messages, in one write, already out
    frames = [f[1] for f in server_frames(bytes(asker.transport.written)) if f[0] == 2]
    assert frames[-4:] == [b"answer to q1", b"and more", b"answer to q2", b"and more"]
    assert other.transport.writes == other_writes  # corked until the round is over
    await other.settle()
    assert other.transport.writes == other_writes + 1
    assert [f[1] for f in server_frames(bytes(other.transport.written)) if f[0] == 2][-2:] == [
        b"relay of q1", b"relay of q2",
    ]  # fmt: skip


async def test_answers_to_messages_that_arrived_before_listening_leave_when_it_starts() -> None:
    h = Harness(TransportLimits())
    h.release.clear()
    await h.open()
    h.conn.data_received(client_frame(b"early"))
    h.handler = lambda data: h.conn.send(b"answer to " + data)
    written = h.transport.writes
    h.release.set()
    await h.settle()
    assert h.after_listen == [written + 1]  # written by listen() itself, not by a later round of the loop
    assert server_frames(bytes(h.transport.written))[-1] == (2, b"answer to early")


class Acceptor:
    """An app's acceptor (``ACCEPTOR_STATE_KEY``): takes the connection, refuses it, or passes it on."""

    def __init__(self, harness: Harness, verdict: str) -> None:
        self.harness, self.verdict = harness, verdict
        self.calls: list[tuple[str, str, str | None]] = []

    def __call__(self, path: str, query: str, host: str | None, conn: WebSocketConnection) -> bool:
        self.calls.append((path, query, host))
        if self.verdict == "pass":
            return False
        if self.verdict == "fail":
            raise RuntimeError("acceptor bug")
        conn.accept()
        if self.verdict == "refuse":
            conn.close_after(0, 4429, "no")
        else:
            conn.listen(self.harness.on_message, self.harness.on_closed)
        return True


def _with_acceptor(verdict: str) -> tuple[Harness, Acceptor]:
    h = Harness(TransportLimits())
    acceptor = Acceptor(h, verdict)
    h.conn = WebSocketConnection(
        Config(h.app), h.state, {LIMITS_STATE_KEY: TransportLimits(), ACCEPTOR_STATE_KEY: acceptor}
    )
    h.conn.connection_made(h.transport)
    return h, acceptor


async def test_an_acceptor_takes_a_connection_in_the_read_that_brought_its_request() -> None:
    h, acceptor = _with_acceptor("listen")
    h.conn.data_received(request("/v1/collab/s%20x?token=t%2B"))
    # Within the call: the 101, and the connection listening; no ASGI task at all.
    assert h.transport.written.startswith(b"HTTP/1.1 101")
    assert acceptor.calls == [("/v1/collab/s x", "token=t%2B", "x")]
    assert h.state.tasks == set()
    h.conn.data_received(client_frame(b"first"))
    assert h.messages == [b"first"]


async def test_an_acceptor_may_refuse_with_a_close_or_pass_the_connection_to_the_app() -> None:
    refused, _ = _with_acceptor("refuse")
    refused.conn.data_received(request())
    assert refused.transport.written.startswith(b"HTTP/1.1 101") and refused.closes() == [4429]
    passed, acceptor = _with_acceptor("pass")
    passed.conn.data_received(request())
    assert passed.transport.written == b"" and len(passed.state.tasks) == 1  # the app's turn comes next
    await passed.settle()
    assert passed.transport.written.startswith(b"HTTP/1.1 101") and len(acceptor.calls) == 1
    passed.conn.data_received(client_frame(b"via the app"))
    assert passed.messages == [b"via the app"]


async def test_an_acceptor_that_fails_gets_the_request_refused_not_the_loop_broken() -> None:
    h, _ = _with_acceptor("fail")
    h.conn.data_received(request())
    assert h.transport.written.startswith(b"HTTP/1.1 500") and h.transport.closed
