"""The outgoing side of a live connection: eager sends, order under back-pressure, dropping slow peers."""

from __future__ import annotations

import asyncio
from typing import Any

from codeconnect.collab.transport import WebSocketChannel


class FakeSend:
    """An ASGI send that completes at once while writable and waits otherwise (as uvicorn's does)."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.sent: list[bytes] = []

    async def __call__(self, message: Any) -> None:
        await self.writable.wait()
        self.sent.append(message["bytes"])


async def test_sends_complete_eagerly_and_keep_order_under_back_pressure() -> None:
    send = FakeSend()
    channel = WebSocketChannel(send, max_messages=100, max_bytes=1 << 20)
    channel.send(b"1")
    assert send.sent == [b"1"]  # no task, no loop turn needed
    send.writable.clear()
    for i in range(2, 6):
        channel.send(str(i).encode())
    await asyncio.sleep(0.01)
    assert send.sent == [b"1"]
    send.writable.set()
    await channel.flush(1)
    assert send.sent == [b"1", b"2", b"3", b"4", b"5"]
    channel.send(b"6")
    assert send.sent[-1] == b"6"


async def test_a_peer_that_does_not_read_is_dropped() -> None:
    send = FakeSend()
    handler = asyncio.current_task()
    channel = WebSocketChannel(send, max_messages=3, max_bytes=1 << 20)
    send.writable.clear()
    channel.send(b"a")  # in flight
    for _ in range(3):
        channel.send(b"b")
    assert not channel.overflowed
    try:
        channel.send(b"c")
        assert channel.overflowed
        await asyncio.sleep(1)  # the handler is cancelled
        raise AssertionError("not cancelled")
    except asyncio.CancelledError:
        assert handler is not None
        handler.uncancel()
    channel.send(b"ignored")
    assert send.sent == []


async def test_byte_budget_counts_backlog_not_one_large_first_message() -> None:
    send = FakeSend()
    send.writable.clear()
    channel = WebSocketChannel(send, max_messages=100, max_bytes=1000)
    channel.send(b"x" * 5000)  # a new peer's large first sync alone is fine
    channel.send(b"y" * 10)
    assert not channel.overflowed
    channel.stop()
