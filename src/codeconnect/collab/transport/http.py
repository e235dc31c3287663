"""uvicorn's ``http=`` protocol class: its own HTTP/1.1 protocol, behind a deadline for request heads.

uvicorn times out idle keep-alive connections, but not a client that opens a connection (or starts a
request) and then sends its headers a byte at a time, or never finishes them: each such connection holds a
socket and a parser for as long as the client likes. This wrapper follows the byte stream just far enough to
know where each request head ends (``\\r\\n\\r\\n``) and how long its body is (``Content-Length``), and
closes a connection whose head is not complete within ``http_header_timeout`` of its first byte (or of the
connection's start), or grows past ``http_max_header_bytes``. Everything else, and every byte, goes to
uvicorn's protocol unchanged, constructed with the same arguments uvicorn gives this class.

A connection whose first request is a WebSocket upgrade (by uvicorn's own rule: ``Connection`` lists
``upgrade`` and ``Upgrade`` is ``websocket``) is handed to this project's WebSocket protocol as soon as its head is
complete, as uvicorn itself would hand it over, without uvicorn's HTTP protocol ever being made for it: parsing
the head with h11 only to rebuild it for the WebSocket protocol cost about 100 µs of each connection (a class
connecting at once pays it 400 times in a row). A head this wrapper cannot vouch for (any line that is not
``name: value``, a request line other than ``GET <target> HTTP/1.1``) goes uvicorn's way, which answers it.

It also tells the app when the server starts its graceful shutdown. uvicorn calls ``shutdown()`` on every
connection of ``server_state.connections`` and then waits for the requests in flight, before the app hears of the
shutdown through the lifespan; a request that waits on purpose (a long-poll) would hold the stop for its whole
wait. Each connection of this class is in that set too (beside the protocol it wraps, which adds itself; until a
WebSocket upgrade hands the transport over), and its ``shutdown()`` calls the app's hook (``SHUTDOWN_STATE_KEY``
of the lifespan state), so such waits can end at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from codeconnect.collab.transport.connection import (
    LIMITS_STATE_KEY,
    SHUTDOWN_STATE_KEY,
    TransportLimits,
    WebSocketConnection,
)

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,18})[ \t]*\r\n", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_LARGE_RESPONSE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

_HEAD, _BODY, _IDLE, _UNTRACKED = range(4)

# A whole head (without its last CRLF CRLF) that this wrapper vouches for: the request line, then lines of
# ``name: value`` with no control character but tab. Three regular expressions over the head, not a loop per line.
_WELL_FORMED = re.compile(
    rb"GET [\x21-\x7e]+ HTTP/1\.1(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\x09\x20-\x7e\x80-\xff]*)*"
)
_CONNECTION = re.compile(rb"\r\nconnection:([^\r]*)", re.IGNORECASE)
_UPGRADE = re.compile(rb"\r\nupgrade:([^\r]*)", re.IGNORECASE)


def is_websocket_upgrade(head: bytes) -> bool:
    """Whether a complete request head (ending in CRLF CRLF) is a well-formed WebSocket upgrade request, by
    uvicorn's rule for taking the WebSocket path (the last ``Connection`` and ``Upgrade`` headers decide)."""
    body = head[:-4]
    if _WELL_FORMED.fullmatch(body) is None:
        return False
    upgrades = _UPGRADE.findall(body)
    if not upgrades or upgrades[-1].strip().lower() != b"websocket":
        return False
    connections = _CONNECTION.findall(body)
    return bool(connections) and b"upgrade" in [token.strip().lower() for token in connections[-1].split(b",")]


class HeadDeadlineHTTP(asyncio.Protocol):
    """uvicorn's HTTP protocol with a deadline and a size limit on every request head."""

    __slots__ = ("_inner", "_transport", "_loop", "_timeout", "_max_head", "_state", "_head", "_body_left",
                 "_started", "_timer", "_connections", "_on_shutdown", "_arguments", "_first", "_first_head")

    def __init__(
        self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        # uvicorn's protocol is made once the first request head shows it is needed (see the module docstring).
        self._inner: asyncio.Protocol | None = None
        self._arguments: dict[str, Any] = {
            "config": config, "server_state": server_state, "app_state": app_state, "_loop": _loop,
        }  # fmt: skip
        self._first: list[bytes] | None = []  # what arrived before the first head was complete
        self._first_head: bytes | None = None
        limits = app_state.get(LIMITS_STATE_KEY)
        limits = limits if isinstance(limits, TransportLimits) else TransportLimits()
        self._timeout = limits.header_timeout
        self._max_head = limits.max_header_bytes
        self._loop = _loop or asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._state = _HEAD
        self._head = bytearray()
        self._body_left = 0
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None
        # Counted twice by uvicorn's ``limit_concurrency`` (this and the protocol it wraps), which is not set here.
        self._connections: set[Any] = server_state.connections
        hook = app_state.get(SHUTDOWN_STATE_KEY)
        self._on_shutdown: Callable[[], object] | None = hook if callable(hook) else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._disarm()
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown has begun (the protocol it wraps hears it too, from uvicorn itself)."""
        self._connections.discard(self)  # what uvicorn waits for is the wrapped protocol's connection
        if self._inner is None and self._transport is not None:
            self._transport.close()  # no request yet: nothing to wait for
        if self._on_shutdown is not None:
            self._on_shutdown()

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._state != _UNTRACKED and not self._follow(data):
            return
        if self._inner is None:
            self._first_request(data)
            return
        self._inner.data_received(data)
        if self._transport is not None and self._transport.get_protocol() is not self:
            # Handed over (a WebSocket upgrade: the wrapped protocol left uvicorn's set and gave the transport to
            # the WebSocket protocol): this connection is no longer ours to hear about.
            self._disarm()
            self._connections.discard(self)

    def _first_request(self, data: bytes) -> None:
        """Until the first head is complete, keep what arrives; then hand it all to the WebSocket protocol (an
        upgrade) or to uvicorn's HTTP protocol (anything else)."""
        assert self._first is not None and self._transport is not None
        self._first.append(data)
        head = self._first_head
        if head is None:
            return  # not complete yet (``_follow`` keeps its deadline and size limit)
        arrived, self._first = b"".join(self._first), None
        transport = self._transport
        if is_websocket_upgrade(head):
            self._disarm()
            self._state = _UNTRACKED
            self._connections.discard(self)
            websocket = WebSocketConnection(**self._arguments)
            websocket.connection_made(transport)
            websocket.data_received(arrived)
            # After the head is read, as uvicorn does: a protocol that closed the transport meanwhile is still set.
            transport.set_protocol(websocket)
            return
        self._inner = AutoHTTPProtocol(**self._arguments)
        self._inner.connection_made(transport)
        self._inner.data_received(arrived)
        if transport.get_protocol() is not self:
            self._disarm()
            self._connections.discard(self)

    def _follow(self, data: bytes) -> bool:
        """Advance the request-boundary tracker over ``data``; False when the connection was closed."""
        pos, end = 0, len(data)
        while pos < end:
            if self._state == _IDLE:
                self._state = _HEAD
                self._arm()
            if self._state == _BODY:
                step = min(self._body_left, end - pos)
                self._body_left -= step
                pos += step
                if self._body_left == 0:
                    self._state = _IDLE
                continue
            if self._state == _UNTRACKED:
                return True
            # _HEAD: look for its end, also across the previous chunk's last bytes.
            before = len(self._head)
            self._head += data[pos:]
            found = self._head.find(b"\r\n\r\n", max(0, before - 3))
            if found < 0:
                if len(self._head) > self._max_head:
                    return self._refuse(_TOO_LARGE_RESPONSE)
                return True
            head = bytes(self._head[: found + 4])
            pos += found + 4 - before
            self._head.clear()
            if self._first is not None and self._first_head is None:
                self._first_head = head
            self._disarm()
            if len(head) > self._max_head:
                return self._refuse(_TOO_LARGE_RESPONSE)
            if _CHUNKED.search(head):
                self._state = _UNTRACKED  # a streamed body: its end is the app's business, not the head's
                return True
            length = _CONTENT_LENGTH.search(head)
            self._body_left = int(length.group(1)) if length else 0
            self._state = _BODY if self._body_left else _IDLE
        return True

    def _arm(self) -> None:
        self._started = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_later(self._timeout, self._deadline)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline(self) -> None:
        self._timer = None
        if self._state != _HEAD:
            return
        left = self._started + self._timeout - self._loop.time()
        if left > 0:
            self._timer = self._loop.call_later(left, self._deadline)
        else:
            self._refuse(_TIMEOUT_RESPONSE)

    def _refuse(self, response: bytes) -> bool:
        self._disarm()
        self._state = _UNTRACKED
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(response)
            self._transport.close()
        return False
