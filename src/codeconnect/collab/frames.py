"""The receiving side of a live connection under uvicorn: data frames read here, handed to the room at once.

uvicorn's websockets-sansio protocol parses every frame with the websockets library's generator-based reader,
queues it as an ASGI message, pauses reading until the app takes it and resumes afterwards (two system calls),
and the app's task wakes a loop turn later. For a server relaying thousands of keystrokes a second that was
most of the work and the largest share of the time a message spent in the server.

:class:`FrameShim` is put in front of that protocol on the transport before the handshake response goes out
(a client may not send frames before it; RFC 6455 4.1). It reads the frames itself while they are the simple
kind: complete, final, masked binary frames within the size limit. While the connection's handler is waiting
for a message and nothing is queued, a message goes straight to the handler's callback, inside this read;
otherwise it is queued as uvicorn would, so messages are handled in order whatever path they take. Control
frames (ping, pong) are passed to uvicorn's protocol whole, so its parser stays at a frame boundary. Anything
else (a close, a text or fragmented message, an unmasked or oversized frame) hands the rest of the stream over
to uvicorn's protocol for good: the websockets library answers it as it always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.types import Receive
from websockets.protocol import Protocol

try:
    from websockets.speedups import apply_mask
except ImportError:  # the library's pure-Python build
    from websockets.utils import apply_mask

_BINARY_FINAL = 0x82  # FIN, no RSV bits, opcode 2
_PING_FINAL, _PONG_FINAL = 0x89, 0x8A
_MASKED = 0x80


class FrameShim(asyncio.Protocol):
    """Between the transport and uvicorn's websockets-sansio protocol of one live connection."""

    __slots__ = ("_inner", "_transport", "_queue", "_max_size", "_buffer", "_passthrough", "on_message", "armed")

    def __init__(self, inner: Any, max_size: int) -> None:
        self._inner = inner
        self._transport = inner.transport
        self._queue: asyncio.Queue[Any] = inner.queue
        self._max_size = max_size
        self._buffer = b""
        self._passthrough = False
        # Set by the connection's handler: the callback, and whether the handler is idle (waiting for a
        # message), the only time a message may skip the queue without overtaking one still being handled.
        # The callback returns False to have the message queued after all.
        self.on_message: Callable[[bytes], bool] | None = None
        self.armed = False

    @classmethod
    def install(cls, receive: Receive, max_size: int) -> FrameShim | None:
        """Put a shim in front of uvicorn's protocol, before the handshake response is sent; None if the
        connection is not served by that protocol, or bytes already arrived after the request. Frames over
        ``max_size`` (or over the library's own limit) are left to the library, which refuses them."""
        inner: Any = getattr(receive, "__self__", None)
        if type(inner).__name__ != "WebSocketsSansIOProtocol":
            return None
        try:
            conn = inner.conn
            if inner.handshake_complete or conn.reader.buffer or conn.extensions:
                return None
            if conn.max_message_size is not None:
                max_size = min(max_size, conn.max_message_size)
            shim = cls(inner, max_size)
            inner.transport.set_protocol(shim)
        except (AttributeError, NotImplementedError):
            return None
        # The library's parser is a generator that keeps the handshake request (every header) in a local for
        # the connection's lifetime. It waits at a frame boundary with nothing buffered (checked above), so a
        # fresh frame parser in its place is in the same state, without the request.
        conn.parser = Protocol.parse(conn)
        next(conn.parser)
        return shim

    def detach(self) -> None:
        """The handler is done: every later message is queued (and, with nobody reading, reading pauses)."""
        self.on_message = None
        self.armed = False

    # --- asyncio.Protocol: everything but data goes to uvicorn's protocol ----------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self.detach()
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._passthrough:
            self._inner.data_received(data)
            return
        buf = self._buffer + data if self._buffer else data
        end = len(buf)
        pos = 0
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            if not second & _MASKED:  # clients must mask (RFC 6455 5.1): the library fails the connection
                return self._hand_over(buf, pos)
            size = second & 0x7F
            head = pos + 2
            if size == 126:
                if end - head < 2:
                    break
                size = int.from_bytes(buf[head : head + 2], "big")
                head += 2
            elif size == 127:
                if end - head < 8:
                    break
                size = int.from_bytes(buf[head : head + 8], "big")
                head += 8
            if size > self._max_size:
                return self._hand_over(buf, pos)
            frame_end = head + 4 + size
            if frame_end > end:
                break  # the rest has not arrived yet
            if first == _BINARY_FINAL:
                self._deliver(apply_mask(buf[head + 4 : frame_end], buf[head : head + 4]))
            elif first == _PING_FINAL or first == _PONG_FINAL:
                self._inner.data_received(buf[pos:frame_end])  # a whole frame: its parser ends at a boundary
            else:
                return self._hand_over(buf, pos)
            pos = frame_end
        # At most one partial frame is kept, and its declared size is within the limit.
        self._buffer = buf[pos:] if pos < end else b""

    def _hand_over(self, buf: bytes, pos: int) -> None:
        self._passthrough = True
        self._buffer = b""
        self._inner.data_received(buf[pos:])

    def _deliver(self, message: bytes) -> None:
        inner = self._inner
        if inner.close_sent:
            return  # as uvicorn does: the app is past its close, the message is dropped
        callback = self.on_message
        if callback is not None and self.armed and self._queue.empty() and callback(message):
            return
        self._queue.put_nowait({"type": "websocket.receive", "bytes": message})
        if not inner.read_paused:  # what uvicorn does: read no more until the app has taken this
            inner.read_paused = True
            self._transport.pause_reading()
