"""The adapter from an ASGI WebSocket connection to a room :class:`~codeconnect.collab.room.Channel`.

Outgoing messages go through a bounded queue drained by a writer task that exists only while there is
something to send (an idle connection costs no task). A peer that does not read fills the queue; past
``max_messages`` or ``max_bytes`` it is dropped: its handler is cancelled and the queue freed, so one slow
client can never grow server memory or delay the others.

Under uvicorn's websockets-sansio protocol, a binary message to a writable open connection is framed here
and written to the socket at once (:class:`DirectFrames`): the ASGI send builds a message dict, a coroutine,
an event wait and a websockets frame object for each of the thousands of small updates a second a busy
server relays. Anything else (a full socket, a closing connection, an unknown server) takes the ASGI path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Any

from starlette.types import Receive, Send


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


class DirectFrames:
    """Unmasked, unfragmented binary frames (RFC 6455 5.2) written straight to uvicorn's transport."""

    __slots__ = ("_protocol", "_transport", "_writable", "_conn", "_open")

    def __init__(self, protocol: Any) -> None:
        from websockets.protocol import State

        self._protocol = protocol
        self._transport = protocol.transport
        self._writable = protocol.writable
        self._conn = protocol.conn
        self._open = State.OPEN

    @classmethod
    def of(cls, receive: Receive) -> DirectFrames | None:
        """For a connection served by uvicorn's websockets-sansio protocol without extensions, else None."""
        protocol: Any = getattr(receive, "__self__", None)
        if type(protocol).__name__ != "WebSocketsSansIOProtocol":
            return None
        try:
            direct = cls(protocol)
            if protocol.conn.extensions:  # compression would have to frame every message itself
                return None
        except (AttributeError, ImportError):
            return None
        return direct

    def ready(self) -> bool:
        """Whether a frame may be written now: open, not closing, and the socket's buffer below its mark."""
        protocol = self._protocol
        return (
            self._writable.is_set()
            and not protocol.close_sent
            and not protocol.disconnected
            and self._conn.state is self._open
            and not self._conn.expect_continuation_frame
        )

    def write(self, data: bytes) -> None:
        size = len(data)
        if size < 126:
            header = bytes((0x82, size))
        elif size < 65536:
            header = bytes((0x82, 126, size >> 8, size & 0xFF))
        else:
            header = b"\x82\x7f" + size.to_bytes(8, "big")
        if size < 4096:
            self._transport.write(header + data)
        else:
            self._transport.writelines((header, data))


class WebSocketChannel:
    __slots__ = (
        "_send", "_direct", "_queue", "_queued_bytes", "_writer", "_handler", "max_messages", "max_bytes",
        "overflowed",
    )

    def __init__(
        self, send: Send, *, max_messages: int, max_bytes: int, direct: DirectFrames | None = None
    ) -> None:
        self._send = send
        self._direct = direct
        # Allocated while there is something to send: most connections are idle most of the time.
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._handler = asyncio.current_task()
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.overflowed = False

    def send(self, data: bytes) -> None:
        if self.overflowed:
            return
        if self._writer is None:
            direct = self._direct
            if direct is not None and direct.ready():
                direct.write(data)
                return
            # Nothing queued: start the ASGI send right here. With a writable transport it finishes without
            # suspending (no task, no queue); only a peer whose socket is full costs a writer task.
            sending = self._send({"type": "websocket.send", "bytes": data})
            coro = sending if isinstance(sending, Coroutine) else _awaiting(sending)
            try:
                waiting = coro.send(None)
            except StopIteration:
                return
            except Exception:
                return  # the peer is gone; its handler notices on its next receive
            self._writer = asyncio.create_task(self._finish(coro, waiting))
            return
        if self._queue is None:
            self._queue = deque()
        self._queue.append(data)
        self._queued_bytes += len(data)
        # The backlog before this message is what says the peer is behind: a new peer's first sync can be
        # larger than the byte budget on its own.
        if len(self._queue) > self.max_messages or self._queued_bytes - len(data) > self.max_bytes:
            self._drop()
            return

    async def _finish(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        """Drive a send that suspended (as a task would), then send whatever queued up meanwhile."""
        try:
            while True:
                try:
                    if waiting is None:
                        await asyncio.sleep(0)  # a bare yield: just give the loop a turn
                    else:
                        # What Task.__step does with a future a coroutine yields: reset the flag the
                        # future's __await__ set, or awaiting it again is refused.
                        waiting._asyncio_future_blocking = False
                        await waiting
                except Exception:
                    pass  # the coroutine sees the outcome itself when resumed, as under a task
                try:
                    waiting = coro.send(None)
                except StopIteration:
                    break
        except asyncio.CancelledError:
            coro.close()
            self._writer = None
            raise
        except Exception:
            coro.close()  # the peer is gone; its handler notices on its next receive
            self._queue = None
            self._writer = None
            return
        await self._drain()

    async def _drain(self) -> None:
        send = self._send
        queue = self._queue
        if queue is None:
            self._writer = None
            return
        try:
            while queue:
                data = queue.popleft()
                self._queued_bytes -= len(data)
                await send({"type": "websocket.send", "bytes": data})
        except Exception:
            # The peer is gone; its handler notices on its next receive.
            queue.clear()
            self._queued_bytes = 0
        finally:
            self._writer = None
            if not queue and self._queue is queue:
                self._queue = None

    def _drop(self) -> None:
        self.overflowed = True
        self._queue = None
        self._queued_bytes = 0
        if self._writer is not None:
            self._writer.cancel()
        if self._handler is not None:
            self._handler.cancel()

    async def flush(self, timeout: float) -> None:
        """Give queued messages a moment to leave (before a deliberate close)."""
        writer = self._writer
        if writer is not None:
            await asyncio.wait([writer], timeout=timeout)

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        self._queue = None
