"""The live endpoint: ``ws://HOST/v1/collab/{sessionId}?token=<participant token>`` (y-websocket framing).

Refusals happen after the upgrade, as WebSocket close codes, because browsers hide HTTP statuses of failed
upgrades from pages: 4404 unknown session, 4401 missing or bad token, 4429 too many connections or
messages, 4413 message or document too large, 4400 malformed message, 1003 text frame, 4408 slow reader.
"""

from __future__ import annotations

import asyncio
import logging
import re

from fastapi import APIRouter, WebSocket

from codeconnect.collab.protocol import CloseCode
from codeconnect.collab.registry import RoomRegistry
from codeconnect.collab.room import Peer, ProtocolViolation, Room
from codeconnect.collab.transport import WebSocketChannel
from codeconnect.config import Settings
from codeconnect.errors import SessionNotFound

log = logging.getLogger(__name__)

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RateLimiter:
    """Token bucket per connection. Over the rate, reading is slowed to the rate (TCP pushes back on the
    client); a client that stays over it for ``grace`` seconds is disconnected."""

    __slots__ = ("rate", "burst", "grace", "tokens", "last", "over_since")

    def __init__(self, rate: float, burst: int, grace: float) -> None:
        self.rate, self.burst, self.grace = rate, burst, grace
        self.tokens = float(burst)
        self.last = asyncio.get_running_loop().time()
        self.over_since: float | None = None

    async def take(self) -> bool:
        """Take one message's token; False when the client must be disconnected."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.over_since = None
            return True
        if self.over_since is None:
            self.over_since = now
        elif now - self.over_since > self.grace:
            return False
        await asyncio.sleep((1 - self.tokens) / self.rate)
        now = loop.time()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate) - 1
        self.last = now
        return True


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()

    @router.websocket("/v1/collab/{session_id}")
    async def collab(websocket: WebSocket, session_id: str) -> None:
        registry: RoomRegistry = websocket.app.state.collab
        await websocket.accept()
        if not _SESSION_ID.match(session_id):
            await websocket.close(CloseCode.NOT_FOUND, "session not found")
            return
        try:
            participant = await registry.authorize(session_id, websocket.query_params.get("token"))
        except SessionNotFound:
            await websocket.close(CloseCode.NOT_FOUND, "session not found")
            return
        if participant is None:
            await websocket.close(CloseCode.UNAUTHORIZED, "missing or invalid token")
            return
        try:
            room = await registry.acquire(session_id)
        except SessionNotFound:
            await websocket.close(CloseCode.NOT_FOUND, "session not found")
            return
        except Exception:
            # Never serve an empty document in place of one that failed to load.
            log.exception("loading a session's document failed")
            await websocket.close(CloseCode.INTERNAL_ERROR, "the document could not be loaded")
            return
        try:
            if len(room.peers) >= settings.max_connections_per_session:
                await websocket.close(CloseCode.TOO_MANY, "too many connections to this session")
                return
            await _serve(websocket, room, participant.id, participant.name, participant.color,
                         participant.role == "viewer", settings)
        finally:
            registry.release(room)

    return router


async def _serve(
    websocket: WebSocket, room: Room, participant_id: str, name: str, color: str, readonly: bool,
    settings: Settings,
) -> None:
    channel = WebSocketChannel(
        websocket, max_messages=settings.ws_send_queue_messages, max_bytes=settings.ws_send_queue_bytes
    )
    peer = Peer(channel, participant_id, name, color, readonly)
    limiter = RateLimiter(settings.ws_rate_per_second, settings.ws_rate_burst, settings.ws_rate_grace_seconds)
    max_bytes = settings.ws_max_message_bytes
    receive = websocket.receive
    close: tuple[int, str] | None = None
    room.join(peer)
    try:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                break
            data = message.get("bytes")
            if data is None:
                close = (CloseCode.UNSUPPORTED_DATA, "binary messages only")
                break
            if len(data) > max_bytes:
                close = (CloseCode.TOO_LARGE, f"message larger than {max_bytes} bytes")
                break
            if not await limiter.take():
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
        # Dropped for not reading: nothing more can be sent to it, the server just lets go.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        room.leave(peer)
    if close is not None:
        await channel.flush(1.0)
        channel.stop()
        try:
            await asyncio.wait_for(websocket.close(*close), 5)
        except (TimeoutError, Exception):
            pass
    else:
        channel.stop()
