"""The adapter from an ASGI WebSocket connection to a room :class:`~codeconnect.collab.room.Channel`.

Outgoing messages go through a bounded queue drained by a writer task that exists only while there is
something to send (an idle connection costs no task). A peer that does not read fills the queue; past
``max_messages`` or ``max_bytes`` it is dropped: its handler is cancelled and the queue freed, so one slow
client can never grow server memory or delay the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Any

from starlette.types import Send


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


class WebSocketChannel:
    __slots__ = ("_send", "_queue", "_queued_bytes", "_writer", "_handler", "max_messages", "max_bytes", "overflowed")

    def __init__(self, send: Send, *, max_messages: int, max_bytes: int) -> None:
        self._send = send
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
