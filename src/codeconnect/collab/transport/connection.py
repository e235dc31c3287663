"""One WebSocket connection, owned end to end by this project: uvicorn's ``ws=`` protocol class.

uvicorn hands an upgrade request to the class named by its documented ``ws`` option, constructed as
``cls(config=..., server_state=..., app_state=...)``, then ``connection_made(transport)``,
``data_received(request bytes)`` and ``transport.set_protocol(instance)`` (the contract a test pins). From
there this class does everything:

* the opening handshake through the websockets library's public sans-I/O ``ServerProtocol`` (request checks,
  the 101 response), which is then let go: frames are read by :class:`~.codec.FrameParser`;
* the ASGI WebSocket interface (``receive``/``send``), so the app routes and refuses as usual;
* for the live endpoint, a direct mode (:meth:`listen`, reached through the ASGI scope extension
  :data:`LIVE_EXTENSION`): each message goes to a callback inside the read, and the handler's coroutine ends,
  so an idle connection is this object, its transport and its room seat; nothing is suspended for it.

Every limit lives here once, for every frame the peer sends: a token bucket counts data AND control frames
(a ping flood is a flood); a started frame must complete within ``frame_timeout``; before :meth:`listen` a peer
may send only ``preauth_bytes``. On the way out, what waits for the peer (our backlog plus the transport's own
buffer) is its send budget; a large message goes out in slices of one shared ``bytes`` object, so serving a
big document to many new peers does not copy it per peer; a peer whose backlog makes no progress for
``stall_seconds`` is cut.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from codeconnect import metrics
from codeconnect.collab.protocol import CloseCode
from codeconnect.collab.transport.codec import (
    MESSAGE_TOO_BIG,
    Frame,
    FrameError,
    FrameParser,
    Opcode,
    close_payload,
    frame_header,
    parse_close,
)
from codeconnect.config import Settings

log = logging.getLogger(__name__)

#: The ASGI scope extension under which a connection of this class offers :meth:`WebSocketConnection.listen`.
LIVE_EXTENSION = "codeconnect.live"
#: The key of the lifespan state under which the app hands its :class:`TransportLimits` to connections.
LIMITS_STATE_KEY = "codeconnect.transport_limits"
#: The key of the lifespan state under which the app may offer an :data:`Acceptor`.
ACCEPTOR_STATE_KEY = "codeconnect.acceptor"
#: The key of the lifespan state under which the app may offer a callable with no arguments, called once the
#: server starts its graceful shutdown (before it waits for the requests in flight; see ``http.py``).
SHUTDOWN_STATE_KEY = "codeconnect.on_shutdown"

_SLICE = 64 * 1024  # a large message is written in slices of this size, each once the transport has room
_HIGH_WATER = 256 * 1024  # the transport buffers at most about this much before it asks us to pause
_ASGI_QUEUE = 16  # messages waiting for a plain-ASGI handler before reading pauses

_CONNECTING, _OPEN, _CLOSING, _CLOSED = range(4)


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """What one connection may cost (the app builds it from its Settings; defaults match them)."""

    max_message_bytes: int = 2 * 1024 * 1024
    preauth_bytes: int = 64 * 1024
    frame_timeout: float = 10.0
    rate: float = 200.0
    burst: int = 1000
    per_turn: int = 8
    grace: float = 2.0
    send_budget_bytes: int = 16 * 1024 * 1024
    send_budget_messages: int = 1024
    stall_seconds: float = 10.0
    close_timeout: float = 10.0
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, s: Settings) -> TransportLimits:
        return cls(
            max_message_bytes=s.ws_max_message_bytes,
            preauth_bytes=s.ws_preauth_bytes,
            frame_timeout=s.ws_frame_timeout_seconds,
            rate=s.ws_rate_per_second,
            burst=s.ws_rate_burst,
            per_turn=s.ws_messages_per_turn,
            grace=s.ws_rate_grace_seconds,
            send_budget_bytes=s.ws_send_queue_bytes,
            send_budget_messages=s.ws_send_queue_messages,
            stall_seconds=s.ws_send_stall_seconds,
            close_timeout=s.ws_close_timeout_seconds,
            header_timeout=s.http_header_timeout_seconds,
            max_header_bytes=s.http_max_header_bytes,
        )


MessageHandler = Callable[[bytes], None]
ClosedHandler = Callable[[], None]
#: ``acceptor(path, query, host, connection)``, called in the read that completed an upgrade request (path
#: unquoted, query as sent, the Host header or None): True when it took the connection there and then
#: (:meth:`WebSocketConnection.accept`, then :meth:`~WebSocketConnection.listen` or a close); False, having
#: done nothing, to have the app called through ASGI as usual.
Acceptor = Callable[[str, str, "str | None", "WebSocketConnection"], bool]


class WebSocketConnection(asyncio.Protocol):
    """The server side of one WebSocket connection (see the module docstring)."""

    __slots__ = (
        "_config", "_connections", "_tasks", "_app_state", "_loop", "_limits", "_transport", "_handshake",
        "_request", "_state", "_parser", "_fragments", "_fragment_opcode", "_fragment_bytes", "_partial_since",
        "_frame_timer", "_tokens", "_refilled", "_over_since", "_throttle", "_read_paused", "_asgi_queue",
        "_waiter", "_on_message", "_on_closed", "_backlog", "_backlog_bytes", "_backlog_offset", "_cork",
        "_cork_bytes",
        "_write_paused", "_stall_timer", "_close_timer", "_ping_timer", "_last_seen", "_ping_sent",
        "_accepted", "close_code", "_listening", "_close_received", "_queued_bytes", "_denial",
    )

    def __init__(
        self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._config = config
        self._connections: set[Any] = server_state.connections
        self._tasks: set[asyncio.Task[None]] = server_state.tasks
        self._app_state = app_state
        self._loop = _loop or asyncio.get_running_loop()
        limits = app_state.get(LIMITS_STATE_KEY)
        self._limits: TransportLimits = limits if isinstance(limits, TransportLimits) else TransportLimits()
        self._transport: asyncio.Transport | None = None
        self._handshake: ServerProtocol | None = ServerProtocol(max_size=None)
        self._request: Request | None = None
        self._state = _CONNECTING
        self._parser = FrameParser(self._limits.preauth_bytes)
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = Opcode.BINARY
        self._fragment_bytes = 0
        self._partial_since: float | None = None
        self._frame_timer: asyncio.TimerHandle | None = None
        self._tokens = float(self._limits.burst)
        self._refilled = self._loop.time()
        self._over_since: float | None = None
        # The deferred read: a wait for the next rate token, or the next turn after a full one.
        self._throttle: asyncio.Handle | None = None
        self._read_paused = False
        # Messages for the app before it listens (pre-authentication) or for a plain-ASGI handler.
        self._asgi_queue: deque[dict[str, Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_message: MessageHandler | None = None
        self._on_closed: ClosedHandler | None = None
        self._listening = False
        # Outgoing: whole messages not yet (fully) handed to the transport; the first may be partly written.
        self._backlog: deque[bytes] | None = None
        self._backlog_bytes = 0
        self._backlog_offset = -1  # -1: the first message's header is not written yet
        # Small frames sent during one round of the event loop, written with one call at its end: a peer that
        # gets many messages at once (a busy room) costs one write, not one each.
        self._cork: list[bytes] | None = None
        self._cork_bytes = 0
        self._write_paused = False
        self._stall_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._last_seen = 0.0
        self._ping_sent = 0.0  # loop time of our last ping
        self._accepted = False
        self._close_received = False
        self._queued_bytes = 0  # bytes of the messages in _asgi_queue
        self._denial: tuple[int, list[tuple[bytes, bytes]], bytearray] | None = None
        self.close_code: int | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)
        self._transport.set_write_buffer_limits(high=_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        was_open = self._state in (_OPEN, _CLOSING)
        self._state = _CLOSED
        if self.close_code is None:
            self.close_code = 1006
        for timer in (self._frame_timer, self._throttle, self._stall_timer, self._close_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._frame_timer = self._throttle = self._stall_timer = self._close_timer = self._ping_timer = None
        self._backlog = None
        self._backlog_bytes = 0
        self._cork = None
        self._cork_bytes = 0
        self._parser.clear()
        self._fragments = None
        self._handshake = self._request = None  # a timer may keep this object a while: not what it parsed
        if was_open or self._accepted:
            self._closed()
        else:
            self._push({"type": "websocket.disconnect", "code": 1006})

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._stall_timer is None and self._state != _CLOSED:
            self._stall_timer = self._loop.call_later(self._limits.stall_seconds, self._stalled)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._flush()

    def eof_received(self) -> bool:
        return False  # close our side too

    def data_received(self, data: bytes) -> None:
        if self._handshake is not None and self._request is None:
            self._read_request(data)
            return
        if self._state >= _CLOSED:
            return
        self._last_seen = self._loop.time()
        self._parser.feed(data)
        if self._state == _CONNECTING and self._parser.buffered > self._limits.preauth_bytes:
            self._fail(CloseCode.TOO_LARGE, "too much data before the connection was set up")
            return
        if self._throttle is None:
            self._pump()

    # --- the opening handshake --------------------------------------------------------------------------

    def _read_request(self, data: bytes) -> None:
        handshake = self._handshake
        assert handshake is not None and self._transport is not None
        handshake.receive_data(data)
        for event in handshake.events_received():
            if isinstance(event, Request):
                self._request = event
                break
        if self._request is None:
            if handshake.parser_exc is not None or len(data) > 65536:
                self._transport.close()
            return
        response = handshake.accept(self._request)
        if response.status_code != 101:
            handshake.send_response(response)
            self._transport.write(b"".join(handshake.data_to_send()))
            self._handshake = None
            self._state = _CLOSED
            self._transport.close()
            return
        if self._accepted_now(self._request):
            return
        task = self._loop.create_task(self._run_asgi(self._scope(self._request)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accepted_now(self, request: Request) -> bool:
        """Whether the app's acceptor took the connection in this read (see :data:`Acceptor`)."""
        acceptor = self._app_state.get(ACCEPTOR_STATE_KEY)
        if acceptor is None:
            return False
        raw_path, _, query = request.path.partition("?")
        try:
            return bool(acceptor(self._config.root_path + unquote(raw_path), query, request.headers.get("Host"), self))
        except Exception:
            self._failed("a WebSocket acceptor failed")
            return True

    def _scope(self, request: Request) -> dict[str, Any]:
        assert self._transport is not None
        transport = self._transport
        root = self._config.root_path
        raw_path, _, query = request.path.partition("?")
        headers = [(k.lower().encode("ascii"), v.encode("latin-1")) for k, v in request.headers.raw_items()]
        subprotocols = [t.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for t in h.split(",")]
        server = transport.get_extra_info("sockname")
        client = transport.get_extra_info("peername")
        return {
            "type": "websocket",
            "asgi": {"version": self._config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if transport.get_extra_info("sslcontext") is not None else "ws",
            "server": tuple(server[:2]) if isinstance(server, tuple) else None,
            "client": tuple(client[:2]) if isinstance(client, tuple) else None,
            "root_path": root,
            "path": root + unquote(raw_path),
            "raw_path": root.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self._app_state.copy(),
            "extensions": {LIVE_EXTENSION: self, "websocket.http.response": {}},
        }

    async def _run_asgi(self, scope: dict[str, Any]) -> None:
        self._push({"type": "websocket.connect"})
        try:
            await self._config.loaded_app(scope, self.asgi_receive, self.asgi_send)
        except Exception:
            self._failed("a WebSocket handler failed")
            return
        if not self._accepted and self._handshake is not None and self._denial is None:
            self._reject(500)
        elif not self._listening and self._state in (_OPEN, _CONNECTING):
            self.close(CloseCode.NORMAL, "")

    def _failed(self, what: str) -> None:
        """The app failed on this connection (called from its ``except``): a 500 in place of the upgrade, or 1011."""
        log.exception(what)
        if self._accepted:
            self.close(CloseCode.INTERNAL_ERROR, "internal error")
        else:
            self._reject(500)

    def _deny(self) -> None:
        """The ASGI denial response (extension ``websocket.http.response``) in place of the upgrade."""
        handshake, denial = self._handshake, self._denial
        if handshake is None or denial is None or self._transport is None:
            return
        status, raw_headers, body = denial
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers])
        headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Connection", "close")
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        handshake.send_response(Response(status, reason, headers, bytes(body)))
        self._transport.write(b"".join(handshake.data_to_send()))
        self._handshake = None
        self._request = None
        self._state = _CLOSED
        self._transport.close()

    def _reject(self, status: int) -> None:
        handshake = self._handshake
        if handshake is None or self._transport is None:
            return
        handshake.send_response(handshake.reject(status, ""))
        self._transport.write(b"".join(handshake.data_to_send()))
        self._handshake = None
        self._request = None
        self._state = _CLOSED
        self._transport.close()

    # --- ASGI --------------------------------------------------------------------------------------------

    async def asgi_receive(self) -> dict[str, Any]:
        while not self._asgi_queue:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._asgi_queue.popleft()
        self._queued_bytes -= len(message.get("bytes") or message.get("text") or "")
        if self._read_paused and not self._queue_full() and self._throttle is None:
            self._resume_reading()
        return message

    def _queue_full(self) -> bool:
        return len(self._asgi_queue) >= _ASGI_QUEUE or self._queued_bytes > self._limits.preauth_bytes

    async def asgi_send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.send":
            if not self._accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            data = message.get("bytes")
            if data is not None:
                self.send_frame(Opcode.BINARY, data)
            else:
                self.send_frame(Opcode.TEXT, str(message.get("text", "")).encode("utf-8"))
        elif kind == "websocket.close":
            if not self._accepted:
                self._reject(403)
            else:
                self.close(int(message.get("code", 1000)), str(message.get("reason") or ""))
        elif kind == "websocket.http.response.start" and not self._accepted and self._denial is None:
            self._denial = (int(message["status"]), list(message.get("headers") or []), bytearray())
        elif kind == "websocket.http.response.body" and self._denial is not None:
            self._denial[2].extend(message.get("body", b""))
            if not message.get("more_body", False):
                self._deny()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    def _accept(self, message: dict[str, Any]) -> None:
        handshake, request = self._handshake, self._request
        if self._accepted or handshake is None or request is None or self._transport is None:
            raise RuntimeError("websocket.accept twice, or after the connection ended")
        response = handshake.accept(request)
        for name, value in message.get("headers") or []:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        if message.get("subprotocol"):
            response.headers["Sec-WebSocket-Protocol"] = message["subprotocol"]
        handshake.send_response(response)
        self._transport.write(b"".join(handshake.data_to_send()))
        # The library's part ends here; its parser (and the request it keeps) would only cost memory.
        self._handshake = None
        self._request = None
        self._accepted = True
        self._state = _OPEN
        self._schedule_ping()
        if self._parser.buffered:
            self._pump()

    def accept(self) -> None:
        """Complete the opening handshake (the 101 response) for an :data:`Acceptor`, outside ASGI."""
        self._accept({"type": "websocket.accept"})

    def close_after(self, delay: float, code: int, reason: str) -> None:
        """Close the connection ``delay`` seconds from now (at once if not positive), staying silent till then."""
        if delay > 0:
            self._loop.call_later(delay, self.close, code, reason)
        else:
            self.close(code, reason)

    def _push(self, message: dict[str, Any]) -> None:
        self._asgi_queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the live endpoint's direct mode --------------------------------------------------------------------

    def listen(self, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        """Hand every later message to ``on_message`` (inside the read) and the end of the connection to
        ``on_closed`` (once); messages that arrived before are handed over first, in order. The caller's
        coroutine may return afterwards: the connection stays open until either side closes it."""
        self._on_message = on_message
        self._on_closed = on_closed
        self._listening = True
        self._parser.max_payload = self._limits.max_message_bytes
        early = [m for m in self._asgi_queue if m["type"] == "websocket.receive"]
        self._asgi_queue.clear()
        self._queued_bytes = 0
        if self._state == _CLOSED:
            self._closed()
            return
        for message in early:
            if self._state != _OPEN:
                break
            self._deliver_to_listener(message.get("bytes"), message.get("text"))
        if self._read_paused and self._throttle is None:
            self._resume_reading()
        if self._parser.buffered and self._state == _OPEN:
            self._pump()
        self._uncork()  # the answers to what arrived early, at once (see _pump)

    def _deliver_to_listener(self, data: bytes | None, text: str | None) -> None:
        if data is None:
            self.close(CloseCode.UNSUPPORTED_DATA, "binary messages only")
            return
        handler = self._on_message
        assert handler is not None
        handler(data)

    def _closed(self) -> None:
        handler, self._on_closed = self._on_closed, None
        self._on_message = None
        if handler is not None:
            handler()
        elif not self._listening:
            self._push({"type": "websocket.disconnect", "code": self.close_code or 1006})

    # --- reading frames ----------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Handle the complete frames received, as fast as the rate allows; then send this connection's own
        answers at once. What goes to other connections stays corked until the loop's next round (one write
        each for a whole round of messages); a sender's answers (a sync step 2, say) would otherwise wait a
        whole round too, which a burst of connections makes tens of milliseconds long."""
        self._handle_frames()
        self._uncork()

    def _handle_frames(self) -> None:
        if self._throttle is not None:
            return  # the deferred read handles them
        limits = self._limits
        progressed = drained = False
        handled = 0
        parser = self._parser
        while self._state in (_OPEN, _CLOSING):
            if parser.buffered == 0:
                # Nothing left to read: the usual end of a round, without the rate's arithmetic (which only
                # depends on the time, so it loses nothing by waiting for the next frame).
                drained = True
                break
            now = self._loop.time()
            self._tokens = min(limits.burst, self._tokens + (now - self._refilled) * limits.rate)
            self._refilled = now
            if self._tokens < 1:
                if self._parser.buffered == 0:
                    drained = True
                    break
                if self._over_since is None:
                    self._over_since = now
                elif now - self._over_since > limits.grace:
                    self._fail(CloseCode.TOO_MANY, "too many messages")
                    return
                # Read no more until the next token: TCP pushes back on the sender.
                self._pause_reading()
                self._throttle = self._loop.call_later((1 - self._tokens) / limits.rate, self._unthrottle)
                break
            if self._tokens >= limits.burst / 2:
                # Clearly back under the rate (a throttled sender only ever sees one token at a time).
                self._over_since = None
            if handled >= limits.per_turn:
                # One connection's burst (a read can hold hundreds of messages) must not hold up everyone else's:
                # the rest waits for the loop's next round, after the reads that are ready now. Reading pauses
                # meanwhile, or the buffer would grow by a whole read per round while a round takes a few frames.
                self._pause_reading()
                self._throttle = self._loop.call_soon(self._next_turn)
                break
            try:
                frame = self._parser.next_frame()
            except FrameError as exc:
                if exc.code == MESSAGE_TOO_BIG and self._listening:
                    self._fail(CloseCode.TOO_LARGE, f"message larger than {limits.max_message_bytes} bytes")
                elif exc.code == MESSAGE_TOO_BIG:
                    self._fail(CloseCode.TOO_LARGE, "too much data before the connection was set up")
                else:
                    self._fail(exc.code, exc.reason)
                return
            if frame is None:
                drained = True
                break
            self._tokens -= 1
            progressed = True
            handled += 1
            self._handle(frame)
        if drained and self._read_paused and self._state in (_OPEN, _CLOSING):
            # Reading resumes only once what was read has been handled: a sender held back by the rate or by
            # its turn gets no more of its bytes buffered here than one read, however long it keeps sending.
            if self._listening or not self._queue_full():
                self._resume_reading()
        self._watch_partial(progressed)

    def _next_turn(self) -> None:
        self._throttle = None
        if self._state in (_OPEN, _CLOSING):
            self._pump()

    def _unthrottle(self) -> None:
        self._throttle = None
        # A throttled sender gets one token per wake, however late the loop wakes it: a late timer must not
        # look like a pause in the flood.
        now = self._loop.time()
        self._tokens = min(1.0, self._tokens + (now - self._refilled) * self._limits.rate)
        self._refilled = now
        if self._state in (_OPEN, _CLOSING):
            self._pump()  # which reads again once what is buffered is handled

    def _watch_partial(self, progressed: bool) -> None:
        """A started frame (or fragmented message) must be complete within ``frame_timeout``."""
        pending = self._parser.buffered > 0 or self._fragments is not None
        if not pending or self._state == _CLOSED:
            self._partial_since = None
            return
        if progressed or self._partial_since is None:
            self._partial_since = self._loop.time()
        if self._frame_timer is None:
            self._frame_timer = self._loop.call_later(self._limits.frame_timeout, self._frame_deadline)

    def _frame_deadline(self) -> None:
        self._frame_timer = None
        since = self._partial_since
        if since is None or self._state == _CLOSED:
            return
        left = since + self._limits.frame_timeout - self._loop.time()
        if left > 0:
            self._frame_timer = self._loop.call_later(left, self._frame_deadline)
        else:
            self._fail(CloseCode.SLOW_CLIENT, "a frame took too long to arrive")

    def _handle(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode == Opcode.BINARY or opcode == Opcode.TEXT:
            if self._fragments is not None:
                self._fail(1002, "a new message inside a fragmented one")
                return
            if not frame.fin:
                self._fragments = [frame.payload]
                self._fragment_opcode = opcode
                self._fragment_bytes = len(frame.payload)
                return
            self._message(opcode, frame.payload)
        elif opcode == Opcode.CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                self._fail(1002, "a continuation without a message")
                return
            self._fragment_bytes += len(frame.payload)
            if self._fragment_bytes > self._parser.max_payload:
                self._fail(CloseCode.TOO_LARGE, f"message larger than {self._parser.max_payload} bytes")
                return
            fragments.append(frame.payload)
            if frame.fin:
                self._fragments = None
                self._message(self._fragment_opcode, b"".join(fragments))
        elif opcode == Opcode.PING:
            if self._state == _OPEN:
                self.send_frame(Opcode.PONG, frame.payload)
        elif opcode == Opcode.PONG:
            pass  # any frame counts as a sign of life (``_last_seen``)
        else:
            self._peer_closed(frame.payload)

    def _message(self, opcode: Opcode, payload: bytes) -> None:
        if self._state != _OPEN:
            return  # past our close: the peer's late messages are dropped
        if self._listening:
            if opcode == Opcode.TEXT:
                self.close(CloseCode.UNSUPPORTED_DATA, "binary messages only")
                return
            handler = self._on_message
            if handler is not None:
                handler(payload)
            return
        if opcode == Opcode.TEXT:
            try:
                message: dict[str, Any] = {"type": "websocket.receive", "text": payload.decode("utf-8")}
            except UnicodeDecodeError:
                self._fail(1007, "text message is not UTF-8")
                return
        else:
            message = {"type": "websocket.receive", "bytes": payload}
        self._push(message)
        self._queued_bytes += len(payload)
        if self._queue_full():
            self._pause_reading()

    def _peer_closed(self, payload: bytes) -> None:
        try:
            code, _ = parse_close(payload)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        transport = self._transport
        assert transport is not None
        was_open = self._state == _OPEN
        if was_open:
            self.close_code = code
            echo = 1000 if code in (1005, 1006) else code
            self._write_control(Opcode.CLOSE, close_payload(echo, ""))
        self._state = _CLOSING
        self._close_received = True
        self._finish_close()
        if was_open:
            self._closed()  # the peer left: its handler hears it now, not when the socket is gone

    def _pause_reading(self) -> None:
        if not self._read_paused and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and self._transport is not None and self._state != _CLOSED:
            self._read_paused = False
            self._transport.resume_reading()

    # --- writing frames ----------------------------------------------------------------------------------

    @property
    def waiting_bytes(self) -> int:
        """Bytes sent to this peer that it has not taken yet: our backlog plus the transport's buffer."""
        if self._transport is None or self._state == _CLOSED:
            return 0
        return self._cork_bytes + self._backlog_bytes + self._transport.get_write_buffer_size()

    def send(self, data: bytes) -> None:
        """Queue one binary message; never blocks. A peer over its send budget is cut."""
        self.send_frame(Opcode.BINARY, data)

    def charge(self, messages: float) -> None:
        """Count ``messages`` more toward this peer's rate (see ``Channel.charge``)."""
        self._tokens -= messages

    def send_frame(self, opcode: Opcode, data: bytes) -> None:
        transport = self._transport
        # A transport that is closing (cut, or the peer reset it) until connection_lost arrives takes no more.
        if self._state != _OPEN or transport is None or transport.is_closing():
            return
        if self._backlog is None and not self._write_paused and len(data) <= _SLICE:
            frame = frame_header(opcode, len(data)) + data
            cork = self._cork
            if cork is None:
                self._cork = [frame]
                self._loop.call_soon(self._uncork)
            else:
                cork.append(frame)
            self._cork_bytes += len(frame)
            if self._cork_bytes >= _SLICE:
                self._uncork()
            return
        self._uncork()  # what is corked goes first
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        # What already waits for this peer says whether it is behind: a new peer's first sync may be larger
        # than the budget on its own.
        waiting = self._backlog_bytes + transport.get_write_buffer_size()
        # Two items a message: its header, its payload.
        if waiting > self._limits.send_budget_bytes or len(backlog) >= 2 * self._limits.send_budget_messages:
            self._drop()
            return
        self._enqueue(frame_header(opcode, len(data)), data)

    def _enqueue(self, header: bytes, payload: bytes) -> None:
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        backlog.append(header)
        backlog.append(payload)
        self._backlog_bytes += len(header) + len(payload)
        self._flush()

    def _uncork(self) -> None:
        cork = self._cork
        if cork is None:
            return
        self._cork = None
        self._cork_bytes = 0
        transport = self._transport
        if transport is not None and not transport.is_closing() and self._state != _CLOSED:
            transport.write(cork[0] if len(cork) == 1 else b"".join(cork))

    def _write_control(self, opcode: Opcode, payload: bytes) -> None:
        """A control frame, after whatever is queued (frames are never interleaved)."""
        self._uncork()
        if self._transport is None or self._transport.is_closing():
            return
        if self._backlog is None and not self._write_paused:
            self._transport.write(frame_header(opcode, len(payload)) + payload)
            return
        self._enqueue(frame_header(opcode, len(payload)), payload)

    def _flush(self) -> None:
        self._uncork()
        backlog = self._backlog
        transport = self._transport
        if backlog is None or transport is None or transport.is_closing():
            return
        while backlog and not self._write_paused:
            item = backlog[0]
            start = max(self._backlog_offset, 0)
            end = min(len(item), start + _SLICE)
            if start == 0 and end == len(item):
                transport.write(item)
            else:
                # A slice of the one shared object: no copy of the whole message per peer.
                with memoryview(item) as view:
                    transport.write(view[start:end])
            self._backlog_bytes -= end - start
            if end == len(item):
                backlog.popleft()
                self._backlog_offset = -1
            else:
                self._backlog_offset = end
        if not backlog:
            self._backlog = None
            self._backlog_bytes = 0
            if self._close_received:
                self._finish_close()

    def _drop(self) -> None:
        """Cut a peer that does not read: its unsent bytes go with it."""
        if self._state != _CLOSED:
            metrics.SLOW_READERS_DROPPED.inc()
        self.close_code = CloseCode.SLOW_CLIENT
        self._abort()

    def _stalled(self) -> None:
        self._stall_timer = None
        if self._write_paused and self._state != _CLOSED:
            self._drop()

    def _abort(self) -> None:
        if self._transport is not None and self._state != _CLOSED:
            self._backlog = None
            self._backlog_bytes = 0
            self._cork = None
            self._cork_bytes = 0
            self._transport.abort()

    # --- closing -----------------------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close with ``code`` after what is already queued; a peer that does not answer within
        ``close_timeout`` has its socket cut (with whatever it did not read)."""
        if self._state not in (_OPEN, _CONNECTING) or not self._accepted:
            return
        self.close_code = code
        self._state = _CLOSING
        self._write_control(Opcode.CLOSE, close_payload(code, reason))
        self._parser.clear()
        self._fragments = None
        if self._throttle is not None:
            self._throttle.cancel()
            self._throttle = None
        self._resume_reading()  # to read the peer's answer
        self._close_timer = self._loop.call_later(self._limits.close_timeout, self._abort)
        # The handler hears of it now: no message of this peer is handled after its close.
        self._closed()

    def _fail(self, code: int, reason: str) -> None:
        if self._accepted and self._state == _OPEN:
            self.close(code, reason)
        elif self._state != _CLOSED and self._transport is not None:
            self.close_code = code
            self._abort()

    def _finish_close(self) -> None:
        """Both closes are sent (or the peer left): end the TCP connection once our frames are out."""
        transport = self._transport
        if transport is None:
            return
        self._uncork()
        if self._backlog is None and not self._write_paused:
            transport.close()  # the backlog is out: nothing waits in our buffers, and the socket's drain is short
        if self._close_timer is None:
            self._close_timer = self._loop.call_later(self._limits.close_timeout, self._abort)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: tell the peer the server is restarting."""
        if self._accepted and self._state == _OPEN:
            self.close(CloseCode.SERVICE_RESTART, "server restarting")
        elif self._transport is not None and self._state == _CONNECTING:
            self._reject(503) if self._handshake is not None else self._transport.close()

    # --- keepalive ---------------------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self._config.ws_ping_interval
        if interval:
            self._last_seen = self._loop.time()
            self._ping_timer = self._loop.call_later(interval, self._keepalive)

    def _keepalive(self) -> None:
        self._ping_timer = None
        if self._state != _OPEN:
            return
        interval = float(self._config.ws_ping_interval)
        timeout = self._config.ws_ping_timeout
        silent = self._loop.time() - self._last_seen
        if timeout is not None and silent >= interval + timeout:
            self.close_code = 1011
            self._abort()  # not a frame, not even a pong, for that long: the peer is gone
            return
        if silent >= interval:
            # One ping per silence: a frame since the last ping (its pong) ended that silence, so this one needs its
            # own; otherwise a quiet peer that answers every ping would still be cut.
            if self._ping_sent <= self._last_seen:
                self._ping_sent = self._loop.time()
                self.send_frame(Opcode.PING, b"")
            delay = interval + float(timeout if timeout is not None else interval) - silent
        else:
            delay = interval - silent
        self._ping_timer = self._loop.call_later(max(delay, 0.05), self._keepalive)
