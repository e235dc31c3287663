"""The live endpoint: ``ws://HOST/v1/collab/{sessionId}?token=<participant token>`` (y-websocket framing).

It is not a FastAPI route: each idle connection keeps its handler's whole call chain suspended in memory, and
the route machinery (routing, dependency solving, exception middleware) added ~15 coroutine frames per
connection for nothing. The app hands these requests to :func:`serve_connection` before its own middleware
stack (see ``app.py``), so a connection's chain is uvicorn's handler, this module's, and the read it waits on.

Refusals happen after the upgrade, as WebSocket close codes, because browsers hide HTTP statuses of failed
upgrades from pages: 4404 unknown session, 4401 missing or bad token, 4429 too many connections or
messages, 4413 message or document too large, 4400 malformed message, 1003 text frame, 4408 slow reader.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Message, Receive, Scope, Send

from codeconnect.collab.frames import FrameShim
from codeconnect.collab.protocol import CloseCode
from codeconnect.collab.registry import Participant, RoomRegistry
from codeconnect.collab.room import Peer, ProtocolViolation, Room
from codeconnect.collab.transport import DirectFrames, WebSocketChannel
from codeconnect.errors import SessionNotFound

log = logging.getLogger(__name__)

_PREFIX = "/v1/collab/"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RateLimiter:
    """Token bucket per connection. Over the rate, reading is slowed to the rate (TCP pushes back on the
    client); a client that stays over it for ``grace`` seconds is disconnected."""

    __slots__ = ("rate", "burst", "grace", "tokens", "last", "over_since", "_loop")

    def __init__(self, rate: float, burst: int, grace: float) -> None:
        self.rate, self.burst, self.grace = rate, burst, grace
        self.tokens = float(burst)
        self._loop = asyncio.get_running_loop()
        self.last = self._loop.time()
        self.over_since: float | None = None

    def try_take(self) -> bool:
        """Take one message's token if there is one (every message asks: no coroutine for this)."""
        now = self._loop.time()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.over_since = None
            return True
        return False

    async def wait_for_token(self) -> bool:
        """After :meth:`try_take` found none: wait for the next token and take it; False when the client has
        been over the rate for longer than ``grace`` and must be disconnected."""
        loop = self._loop
        now = loop.time()
        if self.over_since is None:
            self.over_since = now
        elif now - self.over_since > self.grace:
            return False
        await asyncio.sleep((1 - self.tokens) / self.rate)
        now = loop.time()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate) - 1
        self.last = now
        return True


def is_live(scope: Scope) -> bool:
    """Whether a request is one for the live endpoint (answered by :func:`serve_connection`)."""
    return scope["type"] == "websocket" and str(scope["path"]).startswith(_PREFIX)


def _drop_handshake(scope: Scope, receive: Receive) -> None:
    """Free what only the handshake needed. An idle connection is mostly server bookkeeping, and uvicorn's
    websockets-sansio protocol keeps the upgrade request and response (headers included) for the
    connection's lifetime: ~4 KB of 25 per idle connection. Nothing reads them after the accept."""
    scope["headers"] = []
    protocol: Any = getattr(receive, "__self__", None)
    if type(protocol).__name__ == "WebSocketsSansIOProtocol" and hasattr(protocol, "response"):
        protocol.request = None
        protocol.response = None


def _abort_later(receive: Receive, delay: float) -> None:
    """Cut the connection's socket after ``delay`` seconds, unless it is closed by then (then a no-op)."""
    transport: Any = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is not None:
        asyncio.get_running_loop().call_later(delay, transport.abort)


async def _close(send: Send, code: int, reason: str) -> None:
    await send({"type": "websocket.close", "code": code, "reason": reason})


_Opened = tuple[RoomRegistry, Room, Participant, FrameShim | None]


async def _open(registry: RoomRegistry, scope: Scope, receive: Receive, send: Send) -> _Opened | None:
    """Handshake, authentication and the room; None when the connection was refused (and closed)."""
    if (await receive())["type"] != "websocket.connect":
        return None
    session_id = scope["path"][len(_PREFIX) :]
    # Before the response, so no frame can have arrived yet; twice the app's limit, as uvicorn is configured.
    shim = FrameShim.install(receive, 2 * registry.settings.ws_max_message_bytes)
    await send({"type": "websocket.accept"})
    if not _SESSION_ID.match(session_id):
        await _close(send, CloseCode.NOT_FOUND, "session not found")
        return None
    tokens = parse_qs(scope["query_string"].decode("latin-1")).get("token")
    _drop_handshake(scope, receive)
    try:
        participant = await registry.authorize(session_id, tokens[0] if tokens else None)
    except SessionNotFound:
        await _close(send, CloseCode.NOT_FOUND, "session not found")
        return None
    if participant is None:
        await _close(send, CloseCode.UNAUTHORIZED, "missing or invalid token")
        return None
    try:
        room = await registry.acquire(session_id)
    except SessionNotFound:
        await _close(send, CloseCode.NOT_FOUND, "session not found")
        return None
    except Exception:
        # Never serve an empty document in place of one that failed to load.
        log.exception("loading a session's document failed")
        await _close(send, CloseCode.INTERNAL_ERROR, "the document could not be loaded")
        return None
    if len(room.peers) >= registry.settings.max_connections_per_session:
        registry.release(room)
        await _close(send, CloseCode.TOO_MANY, "too many connections to this session")
        return None
    return registry, room, participant, shim


async def serve_connection(registry: RoomRegistry, scope: Scope, receive: Receive, send: Send) -> None:
    """One live connection, from the handshake to its close."""
    opened = await _open(registry, scope, receive, send)
    if opened is None:
        return
    registry, room, participant, shim = opened
    try:
        settings = registry.settings
        channel = WebSocketChannel(
            send,
            max_messages=settings.ws_send_queue_messages,
            max_bytes=settings.ws_send_queue_bytes,
            direct=DirectFrames.of(receive),
        )
        peer = Peer(channel, participant.id, participant.name, participant.color, participant.role == "viewer")
        limiter = RateLimiter(settings.ws_rate_per_second, settings.ws_rate_burst, settings.ws_rate_grace_seconds)
        max_bytes = settings.ws_max_message_bytes
        close: tuple[int, str] | None = None

        def on_message(data: bytes) -> bool:
            """A message read by the shim while this handler waits: handled right there, in order. False
            hands it to the loop below instead: over a limit (its checks close or slow the connection), or
            after this connection broke a rule (the loop wakes and closes it)."""
            nonlocal close
            if close is not None or len(data) > max_bytes or not limiter.try_take():
                return False
            try:
                room.receive(peer, data)
            except ProtocolViolation as exc:
                close = (exc.code, exc.reason[:120])
                return False
            except Exception:
                log.exception("a live message failed")
                close = (CloseCode.INTERNAL_ERROR, "internal error")
                return False
            return True

        room.join(peer)
        if shim is not None:
            shim.on_message = on_message
        try:
            while close is None:
                if shim is not None:
                    shim.armed = True
                message: Message = await receive()
                if shim is not None:
                    shim.armed = False
                if close is not None or message["type"] != "websocket.receive":
                    break
                data = message.get("bytes")
                if data is None:
                    close = (CloseCode.UNSUPPORTED_DATA, "binary messages only")
                    break
                if len(data) > max_bytes:
                    close = (CloseCode.TOO_LARGE, f"message larger than {max_bytes} bytes")
                    break
                if not limiter.try_take() and not await limiter.wait_for_token():
                    close = (CloseCode.TOO_MANY, "too many messages")
                    break
                try:
                    room.receive(peer, data)
                except ProtocolViolation as exc:
                    close = (exc.code, exc.reason[:120])
                    break
        except asyncio.CancelledError:
            if not channel.overflowed:
                raise
            # Dropped for not reading: nothing more can be sent to it, so the socket is cut rather than
            # closed (a close waits, forever, for unsent bytes to reach a client that does not read).
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            _abort_later(receive, 0)
        finally:
            if shim is not None:
                shim.detach()
            room.leave(peer)
        if close is not None:
            # The whole close is bounded: a client that answers it is gone long before the deadline; one that
            # does not read would keep its socket and unsent bytes for good, as uvicorn gives up waiting for
            # its answer with ``close()``, which first waits for those bytes to drain.
            timeout = settings.ws_close_timeout_seconds
            _abort_later(receive, timeout)
            await channel.flush(min(1.0, timeout))
            channel.stop()
            try:
                await asyncio.wait_for(_close(send, *close), timeout)
            except (TimeoutError, Exception):
                pass
        else:
            channel.stop()
    finally:
        registry.release(room)
