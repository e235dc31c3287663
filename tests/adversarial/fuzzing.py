"""Hostile input for the live endpoint: y-websocket messages, valid, odd and broken, from a seeded generator.

Shared by the live fuzz test (``test_fuzz.py``) and the benchmarks that run the fuzzer beside an honest load
(``bench/fuzz_timing.py``, ``bench/soak.py``). Everything is drawn from one ``random.Random``, so a seed replays
the same sequence of messages.

The encoders here are written from the y-protocols specification, not imported from the server: a fuzzer that
shared the parser it attacks would share its mistakes too.

What is drawn from these pieces and written to a socket is in :mod:`tests.adversarial.shots`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText, merge_updates

try:
    from websockets.speedups import apply_mask
except ImportError:  # the pure-Python build of the library
    from websockets.utils import apply_mask


# Closes the live endpoint may answer hostile input with (README "Close codes", RFC 6455 7.4.1).
EXPECTED_CLOSES = frozenset({1000, 1002, 1003, 1007, 1009, 4400, 4401, 4404, 4408, 4413, 4429})
MAX_CLOCK = 2**32 - 1
MAX_SAFE_INTEGER = 2**53 - 1
# Values a length, count, client or clock field is set to when a mutation aims at the integers of a message.
HUGE_VALUES = (
    2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**50, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, 2**63 - 1, 2**64,
    2**70,
)


# --- encoding (y-protocols / lib0) ------------------------------------------------------------------------


def var_uint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def sync_step1(state_vector: bytes) -> bytes:
    return b"\x00\x00" + var_bytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return b"\x00\x01" + var_bytes(update)


def sync_update(update: bytes) -> bytes:
    return b"\x00\x02" + var_bytes(update)


def awareness(entries: list[tuple[int, int, bytes]]) -> bytes:
    payload = var_uint(len(entries)) + b"".join(var_uint(c) + var_uint(k) + var_bytes(s) for c, k, s in entries)
    return b"\x01" + var_bytes(payload)


QUERY_AWARENESS = b"\x03"


def state_vector(pairs: list[tuple[int, int]]) -> bytes:
    return var_uint(len(pairs)) + b"".join(var_uint(c) + var_uint(k) for c, k in pairs)


def frame(
    payload: bytes, opcode: int = 2, *, mask: bytes | None = b"\x00\x00\x00\x00", fin: bool = True, rsv: int = 0,
    length: int | None = None,
) -> bytes:
    """One client frame (RFC 6455 5.2). ``mask=None`` sends it unmasked; ``length`` lies about its size."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0x0F
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 65536:
        head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + (apply_mask(payload, mask) if payload and mask != b"\x00\x00\x00\x00" else payload)


# --- an independent reading of the messages the server sends back --------------------------------------------


class Truncated(ValueError):
    pass


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    num = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        num |= (b & 0x7F) << shift
        if b < 0x80:
            return num, pos
        shift += 7
    raise Truncated("truncated integer")


def awareness_entries(message: bytes) -> list[tuple[int, int, bytes]]:
    """The entries of an awareness message (type 1); raises ValueError if it is not one, exactly."""
    kind, pos = read_var_uint(message, 0)
    if kind != 1:
        raise ValueError("not an awareness message")
    size, pos = read_var_uint(message, pos)
    if pos + size != len(message):
        raise ValueError("awareness payload length does not match the frame")
    n, pos = read_var_uint(message, pos)
    entries = []
    for _ in range(n):
        client, pos = read_var_uint(message, pos)
        clock, pos = read_var_uint(message, pos)
        size, pos = read_var_uint(message, pos)
        if pos + size > len(message):
            raise Truncated("awareness state cut short")
        entries.append((client, clock, message[pos : pos + size]))
        pos += size
    if pos != len(message):
        raise ValueError("trailing bytes after the awareness entries")
    return entries


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes) -> Any:
    """What a browser's ``JSON.parse(utf8decode(raw))`` would accept: UTF-8, RFC 8259 (no NaN or Infinity)."""
    return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)


def is_valid_step1(message: bytes) -> bool:
    """Whether the server must answer this message with a step 2: a sync step 1 with a well-formed state vector
    (y-protocols; clocks are 32-bit in Yrs, integers at most 2^53 - 1 as in lib0)."""
    try:
        kind, pos = read_var_uint(message, 0)
        if kind != 0:
            return False
        sub, pos = read_var_uint(message, pos)
        size, pos = read_var_uint(message, pos)
        if sub != 0 or pos + size != len(message) or kind > MAX_SAFE_INTEGER:
            return False
        n, pos = read_var_uint(message, pos)
        for _ in range(n):
            client, pos = read_var_uint(message, pos)
            clock, pos = read_var_uint(message, pos)
            if client > MAX_SAFE_INTEGER or clock > MAX_CLOCK:
                return False
        return pos == len(message)
    except Truncated:
        return False


# --- valid Yjs updates, made by pycrdt ------------------------------------------------------------------------

_ALPHABETS = (
    "abcdefghijklmnopqrstuvwxyz \n\t(){};=+-",
    "éüßçØæœ", "日本語のテキスト", "😀🎉👩‍💻🏳️‍🌈", "\u0301\u200b\u200d\ufeff\u202e", "\x01\x7f\t",
)


def text(rng: random.Random, max_len: int = 12) -> str:
    """A few characters of one script (ASCII code, accents, CJK, emoji, invisible ones, control characters)."""
    alphabet = rng.choice(_ALPHABETS)
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, max_len)))


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice((0, -1, 1, 2**31, -(2**31), 2**53 - 1, -(2**53) + 1, rng.randrange(-1000, 1000)))
    if kind == 3:
        return rng.choice((0.5, -0.0, 1e308, 5e-324, rng.random()))
    if kind in (4, 5):
        return text(rng)
    if kind in (6, 7):
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {text(rng, 5): _json_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _byte_offset(text: str, index: int) -> int:
    # Yrs indexes text by UTF-8 bytes; an index inside a character would split it.
    return len(text[:index].encode("utf-8", "surrogatepass"))


def random_edit(rng: random.Random, doc: Doc[Any]) -> None:
    """One random change of a session document: text typed, deleted or formatted, meta set, runs added..."""
    code = doc.get("code", type=Text)
    meta = doc.get("meta", type=Map)
    runs = doc.get("runs", type=Array)
    current = str(code)
    op = rng.randrange(10)
    if op <= 3 or not current:
        at = _byte_offset(current, rng.randint(0, len(current)))
        code.insert(at, text(rng), {"bold": True} if op == 3 else None)
    elif op == 4:
        start = rng.randrange(len(current))
        end = rng.randint(start + 1, min(len(current), start + 8))
        del code[_byte_offset(current, start) : _byte_offset(current, end)]
    elif op == 5:
        start = rng.randrange(len(current))
        code.format(_byte_offset(current, start), _byte_offset(current, len(current)), {"italic": rng.random() < 0.5})
    elif op == 6:
        meta[rng.choice(("language", "title", text(rng, 4)))] = _json_value(rng)
    elif op == 7:
        runs.append(Map({"id": text(rng, 6), "stdout": Text(text(rng)), "exitCode": rng.randrange(3)}))
    elif op == 8:
        if len(runs):
            del runs[rng.randrange(len(runs))]
        else:
            runs.append(Array([_json_value(rng) for _ in range(3)]))
    else:
        xml = doc.get("xml", type=XmlFragment)
        xml.children.append(XmlElement("p", {"class": text(rng, 4)}, [XmlText(text(rng))]))


@dataclass(frozen=True)
class Corpus:
    """Valid updates (single transactions, whole states, merges) and state vectors of several documents."""

    updates: tuple[bytes, ...]
    state_vectors: tuple[bytes, ...]
    clients: tuple[int, ...]


def build_corpus(rng: random.Random, docs: int = 6, edits: int = 40) -> Corpus:
    """Documents edited at random; some start from another's state, so their updates depend on clients the
    server has never seen (Yrs parks those until their dependencies arrive)."""
    updates: list[bytes] = []
    vectors: list[bytes] = []
    clients: list[int] = []
    previous: Doc[Any] | None = None
    for _ in range(docs):
        client = rng.randrange(1, 2**32)
        clients.append(client)
        doc: Doc[Any] = Doc(client_id=client)
        if previous is not None and rng.random() < 0.5:
            doc.apply_update(previous.get_update())
        subscription = doc.observe(lambda event: updates.append(event.update))
        for _ in range(edits):
            with doc.transaction():
                for _ in range(rng.choice((1, 1, 1, 2, 5))):
                    random_edit(rng, doc)
        doc.unobserve(subscription)
        updates.append(doc.get_update())
        vectors.append(doc.get_state())
        previous = doc
    for _ in range(docs * 2):
        updates.append(merge_updates(*rng.sample(updates, 3)))
    return Corpus(tuple(u for u in updates if len(u) > 2), tuple(vectors), tuple(clients))


# --- mutations --------------------------------------------------------------------------------------------


def varint_starts(data: bytes) -> list[int]:
    """Offsets where a varUint could begin: the start and every byte after a byte without its high bit."""
    return [0, *(i + 1 for i, b in enumerate(data[:-1]) if b < 0x80)]


def _varint_end(data: bytes | bytearray, pos: int) -> int:
    while pos < len(data) and data[pos] & 0x80:
        pos += 1
    return min(pos + 1, len(data))


def mutate(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    """``data`` with 1-3 random mutations: bit flips, truncation, extension, insertion, deletion, duplication,
    boundary bytes, and integers (lengths, counts, clocks) replaced by huge or off-by-one values."""
    b = bytearray(data)
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 3))):
        op = rng.randrange(10)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[i] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            del b[rng.randrange(len(b) + 1) :]
        elif op == 3:
            b += rng.randbytes(rng.randint(1, 24))
        elif op == 4:
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 5 and b:
            del b[i : i + rng.randint(1, 8)]
        elif op == 6 and b:
            j = rng.randrange(len(b))
            b[j:j] = b[i : i + rng.randint(1, 16)]
        else:  # an integer field: where a varUint may start, put another value, often absurd
            starts = varint_starts(bytes(b))
            at = rng.choice(starts) if starts else 0
            end = _varint_end(b, at)
            old, _ = read_var_uint(bytes(b[at:end]) + b"\x00", 0)
            value = rng.choice((*HUGE_VALUES, 0, 1, old + 1, max(0, old - 1), old * 2 + 1))
            encoded = var_uint(value) if rng.random() < 0.9 else var_uint(value)[:-1] + b"\x80\x00"  # overlong
            b[at:end] = encoded
    return bytes(b)


# --- awareness states of odd shapes -------------------------------------------------------------------------

# Presence states a stock client sends (y-protocols awareness with y-codemirror.next's cursor, or none): objects
# whose cursor is null or a pair of Yjs relative positions, with whatever else a client keeps in its state. The
# server must take these (relay them, or drop the fields it does not relay); never close the connection.
STOCK_STATES: tuple[bytes, ...] = (
    b"{}", b"null", b'{"cursor":null}',
    b'{"user":"Ada"}',
    b'{"user":["name","color"]}',
    b'{"user":{"name":{"toString":1},"color":"red;background:url(//x)","colorLight":"<script>"}}',
    b'{"__proto__":{"polluted":true},"constructor":{"prototype":{}}}',
    '{"x":"\\u0000\\u001f\u2028\u2029\U0001f600\u202e"}'.encode(),
    b'{"cursor":{"anchor":{"type":null,"tname":"code","item":null,"assoc":0},'
    b'"head":{"type":null,"tname":"code","item":null,"assoc":-1}}}',
)
# Shapes some parsers or some clients produce that the server may refuse: cursors that are not relative positions
# (editor bindings throw on them), lone surrogates (valid JSON escapes, not text), states that are not objects,
# JSON extensions (NaN, Infinity), numbers no double holds, duplicate keys, other encodings than UTF-8.
ODD_STATES: tuple[bytes, ...] = (
    b'{"cursor":{"anchor":{},"head":{}}}',
    b'{"cursor":{"anchor":null,"head":[]}}',
    b'{"cursor":{"anchor":{"type":{"client":1,"clock":-1},"item":{"client":"x"},"assoc":1e300}}}',
    b'{"cursor":{"anchor":{"tname":"__proto__"},"head":{"item":{"client":1,"clock":2},"assoc":true}}}',
    b'{"cursor":"\\ud800"}', b'{"name":"\\udfff\\ud800"}', b'{"user":{"name":"\\ud800"}}', b'{"\\udc00":1}',
    b"[]", b'""', b"0", b"true", b'"null"', b"-0", b"  null  ",
    b'{"x":NaN}', b'{"x":Infinity}', b'{"x":-Infinity}', b"NaN", b"Infinity",
    b'{"x":1e999}', b'{"x":-1e999}', b'{"x":123456789012345678901234567890}', b'{"x":' + b"9" * 5000 + b"}",
    b'{"user":null,"user":{"name":"dup"}}', b"\xef\xbb\xbf{}",
    '{"x":"\u00e9"}'.encode("utf-16"), '"\u00e9"'.encode("utf-16-le"), '{"a":1}'.encode("utf-32"),
)
STOCK_DEPTH = 32  # nesting any server should take; deeper may be refused


def _position(rng: random.Random) -> dict[str, Any]:
    item = {"client": rng.randrange(2**32), "clock": rng.randrange(2**20)}
    return {"type": None, "tname": None, "item": item, "assoc": rng.choice((0, -1))}


def stock_state(rng: random.Random, max_bytes: int) -> bytes:
    """A presence state a stock client may send: the server must take it."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice(STOCK_STATES)
    if kind == 1:  # a cursor as y-codemirror.next sends it, with other fields a client may keep
        state = {"cursor": {"anchor": _position(rng), "head": _position(rng)}, "extra": _json_value(rng)}
        return json.dumps(state, ensure_ascii=rng.random() < 0.5).encode("utf-8")
    if kind == 2:  # a long field, well within the per-state limit
        return b'{"note":"' + b"x" * rng.choice((100, 1000, max_bytes // 4)) + b'"}'
    opener, closer = (b'{"a":', b"}") if rng.random() < 0.5 else (b"[", b"]")
    depth = rng.randint(1, STOCK_DEPTH)
    return b'{"deep":' + opener * depth + b"1" + closer * depth + b"}"


def odd_state(rng: random.Random, max_bytes: int) -> bytes:
    """A presence state no stock client sends (over the size limit, deeply nested, not an object, not UTF-8, not
    JSON, a cursor that is no relative position...): the server may refuse it."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(ODD_STATES)
    if kind == 1:  # a long string, up to past the per-state limit
        return b'{"cursor":"' + b"x" * rng.choice((max_bytes - 32, max_bytes + 1, 2 * max_bytes)) + b'"}'
    if kind == 2:  # nesting, up to past what a recursive JSON parser survives
        depth = rng.choice((100, 500, 900, 970, 990, 1200, 5000))
        opener, closer = (b'{"a":', b"}") if rng.random() < 0.5 else (b"[", b"]")
        return b'{"cursor":' + opener * depth + b"1" + closer * depth + b"}"
    if kind == 3:  # any JSON in the fields the server relays (user, cursor)
        state = {"user": _json_value(rng), "cursor": {"anchor": _json_value(rng), "head": _json_value(rng)}}
        return json.dumps(state, ensure_ascii=rng.random() < 0.5).encode("utf-8")
    if kind == 4:  # lone surrogates in keys and values, escaped (valid JSON, not text) or raw (not UTF-8)
        s = rng.choice(("\\ud800", "\\udc00", "\\udbff\\udfff", "\\ud83d\\ude00", "x\\ud800y"))
        raw = ('{"' + s + '":"' + s + '","cursor":{"anchor":"' + s + '"}}').encode()
        if rng.random() < 0.3:
            raw = raw.replace(b"\\ud800", "\ud800".encode("utf-8", "surrogatepass"))
        return raw
    return mutate(rng, rng.choice(STOCK_STATES + ODD_STATES))
