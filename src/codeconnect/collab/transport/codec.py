"""RFC 6455 framing for the server side: an incremental parser of client frames and the encoders of ours.

The parser keeps what has arrived in one ``bytearray`` and consumes it in place: a frame sent in a thousand
small pieces costs a thousand appends, not a thousand copies of everything received so far. It never
allocates for a frame before the frame is whole, and refuses a header that announces more than the limit the
moment the header is complete, so a partial frame can never hold more memory than the limit allows.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class FrameError(ValueError):
    """The peer broke the framing rules; the connection is failed with ``code`` (RFC 6455 7.4.1)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


PROTOCOL_ERROR = 1002
MESSAGE_TOO_BIG = 1009
_CONTROL_MAX = 125


# By the low four bits of a frame's first byte (a table: calling the enum costs a microsecond a frame).
_OPCODES: tuple[Opcode | None, ...] = tuple({o.value: o for o in Opcode}.get(code) for code in range(16))


class Frame(NamedTuple):
    fin: bool
    opcode: Opcode
    payload: bytes


def unmask(payload: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking key, as one big-integer operation (C speed, no Python loop)."""
    n = len(payload)
    if n == 0:
        return b""
    repeated = key * (n // 4 + 1)
    value = int.from_bytes(payload, "little") ^ int.from_bytes(repeated[:n], "little")
    return value.to_bytes(n, "little")


class FrameParser:
    """Client frames out of a byte stream. ``feed`` appends what arrived; ``next_frame`` returns one complete
    frame at a time (None: wait for more). Fragmented messages are left to the caller; this checks each frame.
    """

    __slots__ = ("_buffer", "max_payload")

    def __init__(self, max_payload: int) -> None:
        self._buffer = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as frames (a partial frame, or frames not yet taken)."""
        return len(self._buffer)

    def clear(self) -> None:
        self._buffer = bytearray()

    def next_frame(self) -> Frame | None:
        buf = self._buffer
        end = len(buf)
        if end < 2:
            return None
        first, second = buf[0], buf[1]
        if first & 0x70:
            raise FrameError(PROTOCOL_ERROR, "reserved bits set")
        if not second & 0x80:
            raise FrameError(PROTOCOL_ERROR, "client frames must be masked")
        opcode = _OPCODES[first & 0x0F]
        if opcode is None:
            raise FrameError(PROTOCOL_ERROR, "unknown opcode")
        fin = bool(first & 0x80)
        size = second & 0x7F
        head = 2
        if size == 126:
            if end < 4:
                return None
            size = int.from_bytes(buf[2:4], "big")
            head = 4
        elif size == 127:
            if end < 10:
                return None
            size = int.from_bytes(buf[2:10], "big")
            head = 10
        if opcode >= Opcode.CLOSE and (size > _CONTROL_MAX or not fin):
            raise FrameError(PROTOCOL_ERROR, "control frames are short and whole")
        if size > self.max_payload:
            raise FrameError(MESSAGE_TOO_BIG, f"frame larger than {self.max_payload} bytes")
        frame_end = head + 4 + size
        if end < frame_end:
            return None
        key = bytes(buf[head : head + 4])
        with memoryview(buf) as view:
            payload = unmask(view[head + 4 : frame_end], key)
        # One in-place deletion per frame: CPython moves the start of a bytearray instead of its contents.
        del buf[:frame_end]
        return Frame(fin, opcode, payload)


def frame_header(opcode: Opcode, size: int) -> bytes:
    """The header of an unmasked, final server frame of ``size`` payload bytes (RFC 6455 5.2)."""
    first = 0x80 | opcode
    if size < 126:
        return bytes((first, size))
    if size < 65536:
        return bytes((first, 126, size >> 8, size & 0xFF))
    return bytes((first, 127)) + size.to_bytes(8, "big")


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's body: the code, then a reason cut to fit a control frame (on a character boundary)."""
    raw = reason.encode("utf-8")[: _CONTROL_MAX - 2].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw


def parse_close(payload: bytes) -> tuple[int, str]:
    """A received close frame's code and reason (1005 when it carries none)."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "close frame with a one-byte body")
    code = int.from_bytes(payload[:2], "big")
    if not (code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code < 5000):
        raise FrameError(PROTOCOL_ERROR, "invalid close code")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(1007, "close reason is not UTF-8") from None
    return code, reason
