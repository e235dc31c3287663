"""Structural validation of untrusted Yjs updates before they reach the CRDT library.

Yrs (under pycrdt) trusts the counts and lengths in an update: a 30-byte update claiming 2^50 client blocks
makes it reserve memory for them first, which took ~0.1-0.3 s and ~500 MiB per update here. Python walks
the v1 update format (yjs ``encoding.js``: ``readClientsStructRefs`` + ``readDeleteSet``) once, refuses
every count that cannot fit in the bytes that follow, clocks past 32 bits, deep nesting (the library
recurses), unknown content and type references and subdocuments; only updates that pass are applied.
The walk is linear in the update size and allocates nothing per claimed item, so the cost of rejecting a
hostile update is bounded by the message-size limit.

It also measures what the update would add: the UTF-8 bytes of string content (the only content that can
grow ``Y.Text``), so a document's code limit is enforced before the update is applied, not after; and it
reports each client block's range of clocks, so the room can tell whose client ids an update writes under.
String content holding NUL is refused: PostgreSQL text cannot hold it and no editor types it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from codeconnect.collab.protocol import MAX_SAFE_INTEGER, MalformedMessage, Reader

MAX_CLOCK = 0xFFFFFFFF  # Yrs clocks are u32
MAX_DEPTH = 32  # nesting of JSON/Any values; Yrs decodes them recursively

_BIT8, _BIT7, _BIT6, _BITS5 = 0x80, 0x40, 0x20, 0x1F
_CONTENT_GC, _CONTENT_STRING, _CONTENT_SKIP = 0, 4, 10
_MAX_TYPE_REF = 6  # YArray, YMap, YText, YXmlElement, YXmlFragment, YXmlHook, YXmlText
_XML_ELEMENT, _XML_HOOK = 3, 5
_NUL = "NUL in text content"


class UpdateInfo(NamedTuple):
    """What an update that passed validation may add to a document."""

    string_bytes: int  # UTF-8 bytes of string content (text inserts)
    content_bytes: int  # bytes of every other kind of content (map/array values, JSON, binary)
    structs: int
    deletes: int
    blocks: tuple[tuple[int, int, int], ...] = ()  # (client, first clock, end clock) of each client block
    parents: tuple[tuple[int, int], ...] = ()  # (client, clock) of the items named as parents (nested types)

    @property
    def is_empty(self) -> bool:
        return self.structs == 0 and self.deletes == 0


def inspect_update(data: bytes) -> UpdateInfo:
    """Validate a Yjs v1 update; raise :class:`MalformedMessage` if Yrs must not see it.

    Every live keystroke passes here, so the walk reads integers inline from local variables (a method call
    per integer cost most of its time); the rarer content kinds go through :class:`Reader`.
    """
    end = len(data)
    string_bytes = 0
    content_bytes = 0
    structs = 0
    blocks: list[tuple[int, int, int]] = []
    parents: list[tuple[int, int]] = []
    # Every client block has at least 3 bytes (count, client, clock) and every struct at least 2.
    clients, pos = _count(data, 0, end, 3)
    for _ in range(clients):
        n, pos = _count(data, pos, end, 2)
        client, pos = _uint(data, pos, end)
        clock, pos = _uint(data, pos, end)
        first = clock
        for _ in range(n):
            if pos >= end:
                raise MalformedMessage("unexpected end of message")
            info = data[pos]
            pos += 1
            ref = info & _BITS5
            if ref == _CONTENT_GC or ref == _CONTENT_SKIP:
                length, pos = _uint(data, pos, end)
                if length == 0:
                    raise MalformedMessage("a struct of length zero")  # Yjs never writes one; Yrs panics on it
                clock += length
            else:
                if info & _BIT8:  # origin
                    pos = _skip_uint(data, pos, end)
                    origin_clock, pos = _uint(data, pos, end)
                    _clock(origin_clock)
                if info & _BIT7:  # right origin
                    pos = _skip_uint(data, pos, end)
                    origin_clock, pos = _uint(data, pos, end)
                    _clock(origin_clock)
                if info & (_BIT7 | _BIT8) == 0:
                    r = Reader(data, pos, end)
                    if r.var_uint() == 1:
                        r.skip_var_bytes()  # root type name
                    else:
                        parent_client = r.var_uint()
                        parent_clock = r.var_uint()
                        _clock(parent_clock)
                        parents.append((parent_client, parent_clock))
                    if info & _BIT6:
                        r.skip_var_bytes()  # parent sub (map key)
                    pos = r.pos
                if ref == _CONTENT_STRING:  # typing: the common case, inline
                    size, pos = _uint(data, pos, end)
                    if size > end - pos:
                        raise MalformedMessage("length prefix larger than the message")
                    raw = data[pos : pos + size]
                    pos += size
                    if b"\x00" in raw:
                        raise MalformedMessage(_NUL)
                    length = _utf16_length(raw)
                    string_bytes += size
                else:
                    r = Reader(data, pos, end)
                    length, s_bytes, c_bytes = _content(r, ref)
                    pos = r.pos
                    string_bytes += s_bytes
                    content_bytes += c_bytes
                if length == 0:
                    raise MalformedMessage("a struct of length zero")  # Yjs never writes one; Yrs panics on it
                clock += length
            _clock(clock)
            structs += 1
        blocks.append((client, first, clock))
    deletes = 0
    delete_clients, pos = _count(data, pos, end, 2)
    for _ in range(delete_clients):
        pos = _skip_uint(data, pos, end)  # client
        ranges, pos = _count(data, pos, end, 2)
        for _ in range(ranges):
            clock, pos = _uint(data, pos, end)
            length, pos = _uint(data, pos, end)
            _clock(clock + length)
            deletes += 1
    if pos != end:
        raise MalformedMessage("trailing bytes after the update")
    return UpdateInfo(string_bytes, content_bytes, structs, deletes, tuple(blocks), tuple(parents))


def _uint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The lib0 varUint at ``pos`` and the position after it (the same checks as :meth:`Reader.var_uint`)."""
    num = 0
    shift = 0
    while pos < end:
        b = data[pos]
        pos += 1
        if b < 0x80:
            num |= b << shift
            if num > MAX_SAFE_INTEGER:
                raise MalformedMessage("integer out of range")
            return num, pos
        num |= (b & 0x7F) << shift
        shift += 7
        if shift > 56:
            raise MalformedMessage("integer out of range")
    raise MalformedMessage("truncated integer")


# A varUint of at most 8 bytes (2^53 needs 8): client ids are 53-bit random numbers, read in one C call.
_VAR_UINT = re.compile(rb"[\x80-\xff]{0,7}[\x00-\x7f]")


def _skip_uint(data: bytes, pos: int, end: int) -> int:
    """The position after the varUint at ``pos``, checked as :func:`_uint` would, without its value."""
    m = _VAR_UINT.match(data, pos, end)
    if m is None:
        return _uint(data, pos, end)[1]  # raises: truncated, or longer than any safe integer
    after = m.end()
    if after - pos == 8 and data[after - 1] > 0x0F:  # bits above 2^53
        raise MalformedMessage("integer out of range")
    return after


def _count(data: bytes, pos: int, end: int, min_item_bytes: int) -> tuple[int, int]:
    n, pos = _uint(data, pos, end)
    if n * min_item_bytes > end - pos:
        raise MalformedMessage("count larger than the message")
    return n, pos


def _utf16_length(raw: bytes) -> int:
    """Clock length of string content: UTF-16 code units, as in JavaScript."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage("invalid UTF-8 in a string") from exc
    if len(raw) == len(text):
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _clock(value: int) -> None:
    if value > MAX_CLOCK:
        raise MalformedMessage("clock out of range")


def _content(r: Reader, ref: int) -> tuple[int, int, int]:
    """Skip one item's content; return (clock length, string bytes, other content bytes)."""
    start = r.pos
    if ref == 1:  # deleted
        return r.var_uint(), 0, 0
    if ref == 2:  # JSON (legacy): n strings
        n = r.count(1)
        for _ in range(n):
            _json(r.var_string())
        return n, 0, r.pos - start
    if ref == 3:  # binary
        r.skip_var_bytes()
        return 1, 0, r.pos - start
    if ref == _CONTENT_STRING:
        raw = r.var_bytes()
        if b"\x00" in raw:
            raise MalformedMessage(_NUL)
        return _utf16_length(raw), len(raw), 0
    if ref == 5:  # embed
        _json(r.var_string())
        return 1, 0, r.pos - start
    if ref == 6:  # format
        r.skip_var_bytes()
        _json(r.var_string())
        return 1, 0, r.pos - start
    if ref == 7:  # nested shared type
        type_ref = r.var_uint()
        if type_ref > _MAX_TYPE_REF:
            raise MalformedMessage(f"unknown shared type {type_ref}")
        if type_ref in (_XML_ELEMENT, _XML_HOOK):
            r.skip_var_bytes()
        return 1, 0, r.pos - start
    if ref == 8:  # any values
        n = r.count(1)
        for _ in range(n):
            _any(r, 0)
        return n, 0, r.pos - start
    if ref == 9:
        raise MalformedMessage("subdocuments are not supported")
    raise MalformedMessage(f"unknown content type {ref}")


def _any(r: Reader, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MalformedMessage("value nested too deeply")
    t = r.byte()
    if t in (127, 126, 121, 120):  # undefined, null, false, true
        return
    if t == 125:
        r.var_int()
    elif t == 124:
        r.skip(4)
    elif t in (123, 122):
        r.skip(8)
    elif t == 119:
        r.var_string()
    elif t == 118:  # object
        for _ in range(r.count(2)):
            r.var_string()
            _any(r, depth + 1)
    elif t == 117:  # array
        for _ in range(r.count(1)):
            _any(r, depth + 1)
    elif t == 116:
        r.skip_var_bytes()
    else:
        raise MalformedMessage(f"unknown value type {t}")


def _json(text: str) -> None:
    """Yrs parses JSON content recursively: refuse deep nesting (the content itself is otherwise opaque)."""
    if text == "undefined":
        return
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise MalformedMessage("value nested too deeply")
        elif ch in "]}":
            depth -= 1
