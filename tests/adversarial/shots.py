"""What the fuzzer writes to a socket: :class:`Shot` s drawn from :mod:`tests.adversarial.fuzzing`'s pieces.

A shot is usually one message in one masked binary frame; sometimes a text frame, a fragmented message, a ping,
or frame-level nonsense. Shots are either *benign* (what a stock client may send, however odd: the connection
must survive them) or *risky* (malformed, mutated, or outside what stock clients send: the server may close the
connection, with one of the codes of ``EXPECTED_CLOSES``).

Each connection edits a pycrdt document of its own under the Yjs client id it announced in its awareness, so
its valid updates write only under its own id, as a stock client's do (the server refuses updates that write
under a client id another participant owns). Updates of the shared corpus, written under ids other connections
may own, are risky.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text

from tests.adversarial.fuzzing import (
    MAX_CLOCK,
    ODD_STATES,
    QUERY_AWARENESS,
    STOCK_STATES,
    Corpus,
    awareness,
    frame,
    is_valid_step1,
    mutate,
    odd_state,
    random_edit,
    state_vector,
    stock_state,
    sync_step1,
    sync_step2,
    sync_update,
    text,
    var_bytes,
)


@dataclass(slots=True)
class Shot:
    """What the attacker writes at once: ``wire`` is the frame(s) as sent, ``message`` the message inside (for
    a report), ``kind`` its category. ``risky`` shots may end the connection; ``terminal`` ones always do (the
    attacker stops writing after them). ``step1`` says the server must answer it with a step 2."""

    kind: str
    wire: bytes
    message: bytes
    risky: bool = False
    terminal: bool = False
    step1: bool = False
    framing: str = "binary"
    closes: frozenset[int] | None = None  # the close codes this shot may get, when not the usual ones

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "framing": self.framing, "hex": self.message.hex()}


class ShotFactory:
    """Draws shots for one connection at a time from ``rng``; :meth:`start` begins a new connection."""

    def __init__(self, rng: random.Random, corpus: Corpus, *, max_message_bytes: int, max_state_bytes: int) -> None:
        self.rng = rng
        self.corpus = corpus
        self.max_message_bytes = max_message_bytes
        self.max_state_bytes = max_state_bytes
        self.mask = rng.randbytes(4)
        self.own_id = 0
        self.clock = 0
        self.doc: Doc[Any] = Doc()
        benign: list[tuple[int, Callable[[], Shot]]] = [
            (30, self._stock_awareness), (20, self._own_update), (10, self._auth), (6, self._query_awareness),
            (6, self._foreign_awareness), (8, self._fragmented), (4, self._ping), (6, self._empty_update),
        ]
        risky: list[tuple[int, Callable[[], Shot]]] = [
            (30, self._mutated_update), (20, self._mutated_message), (12, self._random_bytes),
            (12, self._odd_awareness), (8, self._mutated_awareness), (6, self._valid_step1), (5, self._text),
            (8, self._bad_frame),
            (5, self._foreign_update), (2, self._nul_update), (3, self._abrupt), (1, self._oversized),
        ]
        self._benign = [f for weight, f in benign for _ in range(weight)]
        self._risky = [f for weight, f in risky for _ in range(weight)]

    def start(self, own_id: int) -> Shot:
        """The first shot on a new connection: announce ``own_id`` (a Yjs client id) with a plain presence."""
        self.own_id = own_id
        self.clock = 1
        self.doc = Doc(client_id=own_id)
        message = awareness([(own_id, 1, b'{"user":{"name":"fuzz"},"cursor":null}')])
        return Shot("hello", frame(message, mask=self.mask), message)

    def sentinel(self, vector: bytes) -> Shot:
        """A sync step 1 the server answers with a step 2 once it has handled everything written before it."""
        message = sync_step1(vector)
        return Shot("sentinel", frame(message, mask=self.mask), message, step1=True)

    def batch(self, size: int, first: list[Shot] | None = None) -> list[Shot]:
        """``size`` shots: benign ones, then one risky one."""
        shots = list(first or [])
        shots += [self.benign() for _ in range(size - 1 - len(shots))]
        shots.append(self.rng.choice(self._risky)())
        # The risky shot may be a mutation of this document's latest edit that the server took as it came: the
        # server's history under this client id and ours may differ from here on, and a stock client's next edit
        # would then rightly fail. Later edits come from a new document under a new client id (claimed by its
        # first update).
        self.doc = Doc(client_id=self.rng.randrange(1, 2**32))
        return shots

    def benign(self) -> Shot:
        return self.rng.choice(self._benign)()

    def _binary(self, kind: str, message: bytes, *, risky: bool = False) -> Shot:
        return Shot(kind, frame(message, mask=self.mask), message, risky=risky, step1=is_valid_step1(message))

    def _next_clock(self) -> int:
        self.clock += 1
        return self.clock

    def _fresh_update(self) -> bytes:
        """A new edit of this connection's own document, under its own client id: mostly typing at either end of
        the text (cheap: no index to convert), sometimes any edit of the session schema."""
        before = self.doc.get_state()
        if self.rng.random() < 0.75:
            code = self.doc.get("code", type=Text)
            code.insert(self.rng.choice((0, len(code))), text(self.rng))  # both ends are character boundaries
        else:
            with self.doc.transaction():
                random_edit(self.rng, self.doc)
        return self.doc.get_update(before)

    # --- benign: what a stock client may send, however odd --------------------------------------------------

    def _stock_awareness(self) -> Shot:
        state = stock_state(self.rng, self.max_state_bytes)
        return self._binary("awareness-stock", awareness([(self.own_id, self._next_clock(), state)]))

    def _foreign_awareness(self) -> Shot:
        # Entries for other clients, as stock clients echo what they receive: ignored by the server.
        entries = [
            (self.rng.randrange(2**32), self.rng.randrange(2**20), self.rng.choice((b"null", b"{}", b'{"user":1}')))
            for _ in range(self.rng.randint(1, 20))
        ]
        return self._binary("awareness-foreign", awareness(entries))

    def _own_update(self) -> Shot:
        make = sync_update if self.rng.random() < 0.8 else sync_step2
        return self._binary("update-own", make(self._fresh_update()))

    def _empty_update(self) -> Shot:
        return self._binary("update-empty", self.rng.choice((sync_update, sync_step2))(b"\x00\x00"))

    def _auth(self) -> Shot:
        # Clients have nothing to say in an auth message; the server ignores its payload, whatever it is.
        return self._binary("auth", b"\x02" + self.rng.randbytes(self.rng.randrange(40)))

    def _query_awareness(self) -> Shot:
        return self._binary("query-awareness", QUERY_AWARENESS)

    def _fragmented(self) -> Shot:
        """A valid message in 2-4 fragments, a ping between them: the path of fragmented messages."""
        choice = self.rng.randrange(3)  # only the message sent is made: an edit made and not sent leaves a gap
        if choice == 0:
            message = QUERY_AWARENESS
        elif choice == 1:
            message = sync_update(self._fresh_update())
        else:
            message = awareness([(self.own_id, self._next_clock(), stock_state(self.rng, self.max_state_bytes))])
        cuts = sorted(self.rng.sample(range(1, len(message)), min(len(message) - 1, self.rng.randint(1, 3))))
        parts = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)], strict=True)]
        wire = bytearray()
        for n, part in enumerate(parts):
            wire += frame(part, 2 if n == 0 else 0, mask=self.mask, fin=n == len(parts) - 1)
            if n == 0 and self.rng.random() < 0.5:
                wire += frame(b"mid", 0x9, mask=self.mask)  # control frames may come between fragments
        return Shot("fragmented", bytes(wire), message, framing="fragments")

    def _ping(self) -> Shot:
        payload = self.rng.randbytes(self.rng.randrange(126))
        return Shot("ping", frame(payload, 0x9, mask=self.mask), payload, framing="ping")

    # --- risky: malformed, mutated, or nothing a stock client sends ---------------------------------------------

    def _valid_step1(self) -> Shot:
        pairs = [
            (self.rng.choice((*self.corpus.clients, self.rng.randrange(2**53))), self.rng.randrange(MAX_CLOCK + 1))
            for _ in range(self.rng.randrange(6))
        ]
        vector = state_vector(pairs) if self.rng.random() < 0.7 else self.rng.choice(self.corpus.state_vectors)
        return self._binary("step1-random", sync_step1(vector), risky=True)

    def _foreign_update(self) -> Shot:
        """A valid update under client ids this connection does not own (someone else's, or nobody's yet)."""
        make = sync_update if self.rng.random() < 0.8 else sync_step2
        return self._binary("update-foreign", make(self.rng.choice(self.corpus.updates)), risky=True)

    def _nul_update(self) -> Shot:
        before = self.doc.get_state()
        code = self.doc.get("code", type=Text)
        code.insert(0, "a\x00b")
        return self._binary("update-nul", sync_update(self.doc.get_update(before)), risky=True)

    def _mutated_update(self) -> Shot:
        """A real update, mutated, in a correct sync envelope: it reaches the update validator and the CRDT."""
        update = self._fresh_update() if self.rng.random() < 0.5 else self.rng.choice(self.corpus.updates)
        if self.rng.random() < 0.1:
            update = update[: self.rng.randrange(len(update))] + self.rng.choice(self.corpus.updates)
        make = sync_update if self.rng.random() < 0.8 else sync_step2
        return self._binary("update-mutated", make(mutate(self.rng, update)), risky=True)

    def _template(self) -> bytes:
        rng = self.rng
        choice = rng.randrange(6)
        if choice == 0:
            return sync_step1(rng.choice(self.corpus.state_vectors))
        if choice == 1:
            return rng.choice((sync_update, sync_step2))(self._fresh_update())
        if choice == 2:
            return rng.choice((sync_update, sync_step2))(rng.choice(self.corpus.updates))
        if choice == 3:
            return awareness([(self.own_id, self.clock + 1, rng.choice(STOCK_STATES + ODD_STATES))])
        if choice == 4:
            return QUERY_AWARENESS
        return b"\x02\x00" + var_bytes(b"permission denied")

    def _mutated_message(self) -> Shot:
        """A valid message mutated anywhere, envelope included (types, lengths, trailing bytes)."""
        return self._binary("message-mutated", mutate(self.rng, self._template()), risky=True)

    def _odd_awareness(self) -> Shot:
        message = awareness([(self.own_id, self._next_clock(), odd_state(self.rng, self.max_state_bytes))])
        return self._binary("awareness-odd", message, risky=True)

    def _mutated_awareness(self) -> Shot:
        state = odd_state(self.rng, self.max_state_bytes)
        message = awareness([(self.own_id, self._next_clock(), state)] * self.rng.randint(1, 3))
        return self._binary("awareness-mutated", mutate(self.rng, message), risky=True)

    def _random_bytes(self) -> Shot:
        rng = self.rng
        data = rng.randbytes(rng.choice((0, 1, 2, 3, 8, 28, 39, 64, 300)))
        if data and rng.random() < 0.5:
            data = bytes((rng.randrange(4),)) + data[1:]  # a known message type, then garbage
        return self._binary("random", data, risky=True)

    def _text(self) -> Shot:
        rng = self.rng
        if rng.random() < 0.3:
            data = b"\xff\xfe\xed\xa0\x80" + rng.randbytes(8)  # not UTF-8
        else:
            data = rng.choice(("hello", "{}", '{"type":"sync"}', "\x00\x02\x01x", "é" * 40)).encode()
        return Shot("text", frame(data, 0x1, mask=self.mask), data, risky=True, framing="text")

    def _bad_frame(self) -> Shot:
        """Frame-level nonsense: unmasked, reserved bits or opcodes, lone continuations, long or fragmented
        control frames, lying lengths, odd close frames."""
        rng = self.rng
        body = sync_update(self._fresh_update())
        choice = rng.randrange(10)
        if choice == 0:
            wire, name = frame(body, mask=None), "unmasked"
        elif choice == 1:
            wire, name = frame(body, mask=self.mask, rsv=rng.randint(1, 7)), "rsv"
        elif choice == 2:
            wire, name = frame(body, rng.choice((3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)), mask=self.mask), "opcode"
        elif choice == 3:
            wire, name = frame(body, 0, mask=self.mask), "continuation"
        elif choice == 4:
            wire, name = frame(rng.randbytes(126 + rng.randrange(200)), 0x9, mask=self.mask), "long-ping"
        elif choice == 5:
            wire, name = frame(b"x", 0x9, mask=self.mask, fin=False), "fragmented-ping"
        elif choice == 6:
            wire, name = frame(body, mask=self.mask, length=rng.choice((2**63 - 1, 2**40, 2**31))), "huge-length"
        elif choice == 7:
            wire = frame(body[:2], mask=self.mask, fin=False) + frame(body, 2, mask=self.mask)
            name = "new-message-mid-fragment"
        elif choice == 8:
            payload = rng.choice((
                b"", b"\x03", b"\x03\xe8\xff\xfe", (1005).to_bytes(2, "big"), (999).to_bytes(2, "big"),
                (4400).to_bytes(2, "big") + b"x" * 200, rng.randbytes(4),
            ))
            wire = frame(payload, 0x8, mask=self.mask)
            closes = close_answers(payload)
            return Shot("frame-close", wire, wire, risky=True, terminal=True, framing="raw", closes=closes)
        else:  # a 16-bit length field for a 10-byte payload (RFC 6455 5.2: the minimal encoding MUST be used)
            wire, name = bytes((0x82, 0xFE)) + (10).to_bytes(2, "big") + self.mask + body[:10], "non-minimal-length"
        return Shot(f"frame-{name}", wire, wire, risky=True, terminal=name != "non-minimal-length", framing="raw")

    def _abrupt(self) -> Shot:
        """Half a frame, then the attacker drops the connection."""
        wire = frame(sync_update(self._fresh_update()), mask=self.mask)
        wire = wire[: self.rng.randrange(1, len(wire))]
        return Shot("abrupt", wire, wire, risky=True, terminal=True, framing="raw")

    def _oversized(self) -> Shot:
        message = b"\x00\x02" + var_bytes(b"\x00" * (self.max_message_bytes + 1))
        return Shot("oversized", frame(message, mask=self.mask), message[:16], risky=True, terminal=True)


# Close codes an endpoint may send (RFC 6455 7.4.1-2 and the IANA registry); anything else in a close frame is a
# protocol error.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def close_answers(payload: bytes) -> frozenset[int]:
    """What a server may answer a client's close frame with: the same code (or a plain 1000, or none), or a
    protocol error (1002) or invalid-data error (1007) when the frame itself is invalid (RFC 6455 5.5.1, 7.1.5)."""
    if not payload:
        return frozenset({1000, 1005})
    if len(payload) == 1 or len(payload) > 125:
        return frozenset({1002})
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        return frozenset({1002})
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return frozenset({1007, 1002})
    return frozenset({code, 1000})
