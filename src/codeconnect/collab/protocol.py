"""The y-websocket wire protocol (y-protocols ``sync``/``awareness``): decoding and encoding of messages.

One WebSocket binary frame carries one message: ``varUint(type)`` then a type-specific payload. Everything
here is pure byte handling; no I/O and no document state. Decoding never trusts a length prefix: every
length is checked against the bytes that are actually there before anything is sliced or allocated.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

# JavaScript numbers are exact up to 2^53; lib0 refuses larger varUints, so do we.
MAX_SAFE_INTEGER = 2**53 - 1


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


class AuthType(IntEnum):
    """The sub-types of an auth message (server -> client) this server sends about the session's state."""

    # y-protocols' one auth message, ``readAuthMessage``: stock clients log the reason and carry on.
    PERMISSION_DENIED = 0
    # This server's own: y-protocols' reader skips sub-types it does not know, pycrdt's provider every auth message.
    PERMISSION_GRANTED = 1


#: The reasons of the auth messages about the owner's controls (the page reads them; see contracts.py).
SESSION_ENDED = "session-ended"
SESSION_REOPENED = "session-reopened"
# The close reason (with 4404) of the connections of a session deleted while they were open: the page tells it
# apart from a link to no session.
SESSION_DELETED = "session deleted"


class CloseCode(IntEnum):
    """WebSocket close codes the live endpoint uses (4xxx mirror HTTP statuses, like Hocuspocus)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003  # a text frame: the protocol is binary only
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    BAD_MESSAGE = 4400  # malformed message or update
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403  # the owner removed this participant: its token no longer works
    NOT_FOUND = 4404
    SLOW_CLIENT = 4408  # a frame too slow to arrive whole (a client cut for not reading gets no close frame)
    TOO_LARGE = 4413  # message over the size limit, or an update that would grow the code past its limit
    TOO_MANY = 4429  # over the message rate, or the session has too many live connections


class MalformedMessage(ValueError):
    """The bytes are not a valid message (truncated, absurd lengths, unknown types...)."""


class Reader:
    """A cursor over bytes with lib0's variable-length integer and string readers."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def done(self) -> bool:
        return self.pos >= self.end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MalformedMessage("unexpected end of message")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def var_uint(self) -> int:
        data, pos, end = self.data, self.pos, self.end
        num = 0
        shift = 0
        while pos < end:
            b = data[pos]
            pos += 1
            num |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                if num > MAX_SAFE_INTEGER:
                    raise MalformedMessage("integer out of range")
                return num
            shift += 7
            if shift > 56:
                raise MalformedMessage("integer out of range")
        raise MalformedMessage("truncated integer")

    def var_int(self) -> int:
        # lib0 varInt: first byte = continuation bit, sign bit, 6 value bits; then 7 bits per byte.
        b = self.byte()
        num = b & 0x3F
        negative = bool(b & 0x40)
        shift = 6
        while b & 0x80:
            b = self.byte()
            num |= (b & 0x7F) << shift
            shift += 7
            if shift > 60:
                raise MalformedMessage("integer out of range")
        if num > MAX_SAFE_INTEGER:
            raise MalformedMessage("integer out of range")
        return -num if negative else num

    def count(self, min_item_bytes: int = 1) -> int:
        """A count of items that follow, each at least ``min_item_bytes`` long: refuse absurd counts
        before anything is allocated for them."""
        n = self.var_uint()
        if n * min_item_bytes > self.remaining:
            raise MalformedMessage("count larger than the message")
        return n

    def var_bytes(self) -> bytes:
        n = self.var_uint()
        if n > self.remaining:
            raise MalformedMessage("length prefix larger than the message")
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def skip_var_bytes(self) -> int:
        n = self.var_uint()
        if n > self.remaining:
            raise MalformedMessage("length prefix larger than the message")
        self.pos += n
        return n

    def var_string(self) -> str:
        raw = self.var_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("invalid UTF-8 in a string") from exc

    def skip(self, n: int) -> None:
        if n > self.remaining:
            raise MalformedMessage("unexpected end of message")
        self.pos += n


def write_var_uint(out: bytearray, num: int) -> None:
    while num > 0x7F:
        out.append(0x80 | (num & 0x7F))
        num >>= 7
    out.append(num)


def var_uint_bytes(num: int) -> bytes:
    out = bytearray()
    write_var_uint(out, num)
    return bytes(out)


def _message(prefix: bytes, payload: bytes) -> bytes:
    # One allocation: a document-sized payload is copied once, not into a bytearray and again into bytes.
    return b"".join((prefix, var_uint_bytes(len(payload)), payload))


#: A state vector of no client at all (asks for, or answers with, the whole document).
EMPTY_STATE_VECTOR = b"\x00"


def sync_step1(state_vector: bytes) -> bytes:
    return _message(b"\x00\x00", state_vector)


def sync_step2(update: bytes) -> bytes:
    return _message(b"\x00\x01", update)


def sync_update(update: bytes) -> bytes:
    return _message(b"\x00\x02", update)


def awareness_message(payload: bytes) -> bytes:
    return _message(b"\x01", payload)


def auth_message(kind: AuthType, reason: str) -> bytes:
    """An auth message (``2 · kind · varString(reason)``): how live clients hear that writing stopped or resumed."""
    return _message(bytes([MessageType.AUTH, kind]), reason.encode())


class Message(NamedTuple):
    """One decoded client message. ``payload`` is the sync/awareness payload (already length-checked)."""

    type: MessageType
    sync_type: SyncType | None = None
    payload: bytes = b""


_SYNC_TYPES = (SyncType.STEP1, SyncType.STEP2, SyncType.UPDATE)


def parse_message(data: bytes) -> Message:
    """Decode one frame. Trailing bytes after the payload are refused: a frame holds exactly one message."""
    # Keystrokes: a sync message with a payload under 16 KiB, its length in one or two bytes.
    size = len(data)
    if size >= 3 and data[0] == 0 and data[1] <= 2:
        n = data[2]
        if n < 0x80:
            if size == 3 + n:
                return Message(MessageType.SYNC, _SYNC_TYPES[data[1]], data[3:])
        elif size >= 4 and data[3] < 0x80 and size == 4 + ((n & 0x7F) | data[3] << 7):
            return Message(MessageType.SYNC, _SYNC_TYPES[data[1]], data[4:])
    r = Reader(data)
    kind = r.var_uint()
    if kind == MessageType.SYNC:
        sub = r.var_uint()
        if sub > 2:
            raise MalformedMessage(f"unknown sync message type {sub}")
        payload = r.var_bytes()
        _no_trailing(r)
        return Message(MessageType.SYNC, SyncType(sub), payload)
    if kind == MessageType.AWARENESS:
        payload = r.var_bytes()
        _no_trailing(r)
        return Message(MessageType.AWARENESS, None, payload)
    if kind == MessageType.AUTH:
        # Clients have nothing to say here; the server authenticates at the upgrade. Ignored.
        return Message(MessageType.AUTH)
    if kind == MessageType.QUERY_AWARENESS:
        _no_trailing(r)
        return Message(MessageType.QUERY_AWARENESS)
    raise MalformedMessage(f"unknown message type {kind}")


def encoded_as_sent(data: bytes, payload: bytes) -> bool:
    """Whether the parsed sync frame ``data`` is encoded as y-protocols encodes it: one-byte types and the shortest
    length. Only such a frame is relayed as it came; an over-long varint (which :func:`parse_message` accepts, as
    lib0 does) would reach other clients whose decoders may be stricter, so it is encoded afresh."""
    n = len(payload)
    header = 3 if n < 0x80 else 4 if n < 0x4000 else 2 + len(var_uint_bytes(n))
    return len(data) == header + n


def _no_trailing(r: Reader) -> None:
    if not r.done():
        raise MalformedMessage("trailing bytes after the message")


def parse_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector: ``varUint(n)`` then n pairs ``(client, clock)``."""
    r = Reader(data)
    n = r.count(2)
    sv: dict[int, int] = {}
    for _ in range(n):
        client = r.var_uint()
        clock = r.var_uint()
        if clock > 0xFFFFFFFF:
            raise MalformedMessage("clock out of range")
        sv[client] = clock
    _no_trailing(r)
    return sv
