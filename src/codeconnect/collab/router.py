"""The live endpoint: ``ws://HOST/v1/collab/{sessionId}?token=<participant token>`` (y-websocket framing), and
``ws://HOST/v1/collab/v/{viewerId}?token=...`` for read-only links, which seats every connection as a viewer.

It is not a FastAPI route: the app hands these requests to :class:`LiveEndpoint` before its own middleware
stack (see ``app.py``). Under ``codeconnect serve`` the connection is this project's
:class:`~codeconnect.collab.transport.WebSocketConnection`: once the peer is authenticated and in its room,
the handler hands the connection a message callback and returns, so an idle connection keeps no coroutine.
There, a connection whose token and room are in memory does not even wait for the handler: the connection
offers its request to :meth:`LiveEndpoint.admit_now` in the read that brought it. Under any other ASGI server
the same endpoint works through plain ASGI messages.

Refusals happen after the upgrade, as WebSocket close codes, because browsers hide HTTP statuses of failed
upgrades from pages: 4404 unknown session, 4401 missing or bad token, 4429 too many connections or messages
(or a participant cooling down after repeated refusals), 4413 message or document too large, 4400 malformed
message, 1003 text frame, 4408 a frame too slow to arrive. 4403 closes the connections of a participant the owner
removed (its token then fails, 4401).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from codeconnect import metrics
from codeconnect.collab.admission import Admission
from codeconnect.collab.auth import Participant
from codeconnect.collab.protocol import CloseCode
from codeconnect.collab.registry import RoomRegistry
from codeconnect.collab.room import Peer, ProtocolViolation, Room
from codeconnect.collab.transport import LIVE_EXTENSION, WebSocketConnection
from codeconnect.errors import SessionNotFound

log = logging.getLogger(__name__)

_PREFIX = "/v1/collab/"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VIEW = "v/"  # /v1/collab/v/{viewerId}: the read-only link's live URL (no session id has a slash)


def is_live(scope: Scope) -> bool:
    """Whether a request is one for the live endpoint (answered by :class:`LiveEndpoint`)."""
    return scope["type"] == "websocket" and str(scope["path"]).startswith(_PREFIX)


class Refused(Exception):
    def __init__(self, code: int, reason: str, hold: float = 0.0) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.hold = hold  # seconds the connection is kept open, silent, before the close is sent


class LiveEndpoint:
    """Authenticates a live connection, seats it in its room and wires its messages to the room."""

    def __init__(
        self,
        registry: RoomRegistry,
        admission: Admission,
        viewed_session: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self.registry = registry
        self.admission = admission
        #: The session a viewer id opens (None: unknown); without it, read-only links are refused.
        self.viewed_session = viewed_session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        try:
            session_id, participant = await self._authenticate(scope)
            room = await self._room(session_id, participant)
        except Refused as refused:
            if refused.hold > 0:
                # A client refusing to take no for an answer reconnects the moment it is closed: holding its
                # refused connection a while first turns thousands of handshakes a second into a few.
                await asyncio.sleep(refused.hold)
            await send({"type": "websocket.close", "code": refused.code, "reason": refused.reason})
            metrics.count_close(refused.code)
            return
        connection = scope.get("extensions", {}).get(LIVE_EXTENSION)
        if isinstance(connection, WebSocketConnection):
            self._listen(connection, room, participant)
        else:
            await _serve_asgi(self, room, participant, receive, send)

    async def _authenticate(self, scope: Scope) -> tuple[str, Participant]:
        target = scope["path"][len(_PREFIX) :]
        viewing = target.startswith(_VIEW)
        key = target[len(_VIEW) :] if viewing else target
        if not _SESSION_ID.match(key):
            raise Refused(CloseCode.NOT_FOUND, "session not found")
        tokens = parse_qs(scope["query_string"].decode("latin-1")).get("token")
        scope["headers"] = []  # nothing reads them after this; an open connection should not keep them
        session_id = await self._viewed(key) if viewing else key
        try:
            participant = await self.registry.authorize(session_id, tokens[0] if tokens else None)
        except SessionNotFound:
            raise Refused(CloseCode.NOT_FOUND, "session not found") from None
        if participant is None:
            raise Refused(CloseCode.UNAUTHORIZED, "missing or invalid token")
        if viewing:
            # A read-only link watches, whoever comes through it (an editor's token included).
            participant = replace(participant, role="viewer")
        self._admit(participant)
        return session_id, participant

    def _admit(self, participant: Participant) -> None:
        """Refuse a participant cooling down after refusals, or connecting too often (this counts the attempt)."""
        wait = self.admission.cooling_down(participant.id)
        if wait > 0:
            hold = min(wait, self.registry.settings.ws_refusal_hold_seconds)
            raise Refused(CloseCode.TOO_MANY, f"too many refused connections; retry in {wait - hold:.0f} s", hold)
        wait = self.admission.connect_wait(participant.id)
        if wait > 0:
            hold = min(wait, self.registry.settings.ws_refusal_hold_seconds)
            raise Refused(CloseCode.TOO_MANY, f"too many new connections; retry in {max(0.0, wait - hold):.0f} s", hold)

    async def _viewed(self, viewer_id: str) -> str:
        session_id = await self.viewed_session(viewer_id) if self.viewed_session is not None else None
        if session_id is None:
            raise Refused(CloseCode.NOT_FOUND, "session not found")
        return session_id

    async def _room(self, session_id: str, participant: Participant) -> Room:
        try:
            room = await self.registry.acquire(session_id)
        except SessionNotFound:
            raise Refused(CloseCode.NOT_FOUND, "session not found") from None
        except Exception:
            # Never serve an empty document in place of one that failed to load.
            log.exception("loading a session's document failed")
            raise Refused(CloseCode.INTERNAL_ERROR, "the document could not be loaded") from None
        if self.registry.was_removed(participant.id):
            # Removed while the room loaded: its token was good when checked, but the expel found no seat yet.
            self.registry.release(room)
            raise Refused(CloseCode.FORBIDDEN, "removed by the session owner")
        self._seat(room, participant)
        return room

    def _seat(self, room: Room, participant: Participant) -> None:
        """Refuse (and let go of) a room with no seat left for the participant."""
        # Counted over the cluster: the other processes' connections as they last renewed them (see cluster.py).
        refusal = self.admission.seat_refusal(room.seats(), participant.id, participant.role == "viewer")
        if refusal is not None:
            self.registry.release(room)
            raise Refused(CloseCode.TOO_MANY, refusal)

    def admit_now(self, path: str, query: str, connection: WebSocketConnection) -> bool:
        """The whole admission of a connection in the read that completed its upgrade request, when all it needs
        is in memory: a token issued or checked here lately, and a room loaded or built from memory. Under a
        burst of connections, the ASGI task that otherwise runs :meth:`__call__` gets its turn only after a
        whole round of the event loop, tens of milliseconds. Returns False, having done and counted nothing,
        when anything would need a read: the connection then goes the usual way, where every refusal is made.
        The same checks as :meth:`__call__`, in the same order, for the same participants."""
        if not path.startswith(_PREFIX):
            return False
        session_id = path[len(_PREFIX) :]
        if session_id.startswith(_VIEW) or not _SESSION_ID.match(session_id):
            return False
        tokens = parse_qs(query).get("token")
        participant = self.registry.authorized(session_id, tokens[0] if tokens else None)
        if participant is None or not self.registry.at_hand(session_id):
            return False
        connection.accept()
        try:
            self._admit(participant)
            room = self.registry.acquire_now(session_id)
            assert room is not None  # at hand a moment ago, and nothing ran in between
            self._seat(room, participant)
        except Refused as refused:
            connection.close_after(refused.hold, refused.code, refused.reason)
            metrics.count_close(refused.code)
            return True
        self._listen(connection, room, participant)
        return True

    def _listen(self, connection: WebSocketConnection, room: Room, participant: Participant) -> None:
        peer = _peer(connection, participant)
        left = False

        def on_message(data: bytes) -> None:
            try:
                room.receive(peer, data)
            except ProtocolViolation as exc:
                connection.close(exc.code, exc.reason[:120])
            except Exception:
                log.exception("a live message failed")
                connection.close(CloseCode.INTERNAL_ERROR, "internal error")

        def on_closed() -> None:
            nonlocal left
            if not left:
                left = True
                self.admission.strike(participant.id, connection.close_code)
                room.leave(peer)
                self.registry.release(room)
                metrics.LIVE_CONNECTIONS.dec()
                metrics.count_close(connection.close_code)

        room.join(peer)
        metrics.LIVE_CONNECTIONS.inc()
        connection.listen(on_message, on_closed)


def _peer(channel: Any, participant: Participant) -> Peer:
    return Peer(channel, participant.id, participant.name, participant.color, participant.role == "viewer")


class _AsgiChannel:
    """A peer's outgoing side over plain ASGI ``send``: a bounded queue drained by a writer task that exists
    while there is something to send. A peer past the budget is dropped (its handler task cancelled)."""

    __slots__ = (
        "_send", "_queue", "_bytes", "_writer", "_handler", "_max_messages", "_max_bytes", "overflowed", "debt",
        "closing",
    )  # fmt: skip

    def __init__(self, send: Send, max_messages: int, max_bytes: int) -> None:
        self._send = send
        self._queue: deque[bytes] = deque()
        self._bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._handler = asyncio.current_task()
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self.overflowed = False
        self.debt = 0.0  # messages charged to the peer's rate since its last message
        self.closing: tuple[int, str] | None = None  # the server ends the connection (session deleted, peer removed)

    def charge(self, messages: float) -> None:
        self.debt += messages

    def send(self, data: bytes) -> None:
        if self.overflowed:
            return
        if len(self._queue) >= self._max_messages or self._bytes > self._max_bytes:
            self.overflowed = True
            metrics.SLOW_READERS_DROPPED.inc()
            self._queue.clear()
            if self._handler is not None:
                self._handler.cancel()
            return
        self._queue.append(data)
        self._bytes += len(data)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                data = self._queue.popleft()
                self._bytes -= len(data)
                await self._send({"type": "websocket.send", "bytes": data})
        except Exception:
            self._queue.clear()  # the peer is gone; its handler notices on its next receive
        finally:
            self._writer = None

    def close(self, code: int, reason: str) -> None:
        """End the connection from the server's side: its handler sends the close."""
        if self.closing is None and not self.overflowed:
            self.closing = (code, reason)
            self._queue.clear()
            if self._handler is not None:
                self._handler.cancel()

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        self._queue.clear()


async def _serve_asgi(
    endpoint: LiveEndpoint, room: Room, participant: Participant, receive: Receive, send: Send
) -> None:
    """The endpoint through plain ASGI messages (servers other than ``codeconnect serve``)."""
    settings = endpoint.registry.settings
    channel = _AsgiChannel(send, settings.ws_send_queue_messages, settings.ws_send_queue_bytes)
    peer = _peer(channel, participant)
    close: tuple[int, str] | None = None
    ended = 1006  # the peer's close code, when it is the one that ends the connection
    loop = asyncio.get_running_loop()
    tokens, last = float(settings.ws_rate_burst), loop.time()
    room.join(peer)
    metrics.LIVE_CONNECTIONS.inc()
    try:
        while close is None:
            message = await receive()
            if message["type"] != "websocket.receive":
                ended = int(message.get("code", 1005))
                break
            data = message.get("bytes")
            now = loop.time()
            tokens = min(settings.ws_rate_burst, tokens + (now - last) * settings.ws_rate_per_second) - 1
            tokens -= channel.debt
            channel.debt = 0.0
            last = now
            if data is None:
                close = (CloseCode.UNSUPPORTED_DATA, "binary messages only")
            elif len(data) > settings.ws_max_message_bytes:
                close = (CloseCode.TOO_LARGE, f"message larger than {settings.ws_max_message_bytes} bytes")
            elif tokens < -settings.ws_rate_per_second * settings.ws_rate_grace_seconds:
                close = (CloseCode.TOO_MANY, "too many messages")
            else:
                if tokens < 0:
                    await asyncio.sleep(-tokens / settings.ws_rate_per_second)
                try:
                    room.receive(peer, data)
                except ProtocolViolation as exc:
                    close = (exc.code, exc.reason[:120])
    except asyncio.CancelledError:
        if not channel.overflowed and channel.closing is None:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # dropped for not reading, or closed by the server: it ends the connection below
        close = channel.closing or (CloseCode.SLOW_CLIENT, "not reading")
    finally:
        channel.stop()
        room.leave(peer)
        endpoint.registry.release(room)
        metrics.LIVE_CONNECTIONS.dec()
        metrics.count_close(ended if close is None else close[0])
    if close is not None:
        endpoint.admission.strike(participant.id, close[0])
        try:
            await asyncio.wait_for(send({"type": "websocket.close", "code": close[0], "reason": close[1]}), 5)
        except Exception:
            pass
