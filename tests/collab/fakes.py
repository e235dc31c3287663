"""In-memory stand-ins for a room's collaborators, and a Yjs peer driven by hand: Room tests without a server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pycrdt import Doc, Map, Text

from codeconnect.collab import protocol as p
from codeconnect.collab.awareness import encode_entries
from codeconnect.collab.document import SharedDoc, initial_update
from codeconnect.collab.room import Peer, Room, RoomLimits

LIMITS = RoomLimits(
    max_code_bytes=1 << 20,
    max_document_bytes=64 << 20,
    max_awareness_state_bytes=16 << 10,
    max_title_length=200,
    compact_after_updates=500,
    slow_update_seconds=2.0,
    max_client_ids_per_participant=32,
)


class FakeChannel:
    """Keeps what the room sends, by reference (as a transport's queue does)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.charged = 0.0
        self.closed: tuple[int, str] | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def charge(self, messages: float) -> None:
        self.charged += messages

    def take(self) -> list[bytes]:
        sent, self.sent = self.sent, []
        return sent


class MemoryLog:
    """The update log's append/flush surface, in memory."""

    def __init__(self) -> None:
        self.updates: list[bytes] = []
        self.authors: list[str | None] = []

    def append(
        self, session_id: str, update: bytes, author: str | None = None, tag: str | None = None
    ) -> asyncio.Future[None] | None:
        self.updates.append(update)
        self.authors.append(author)
        return None

    async def flush(self) -> None:
        return None


def make_room(
    state: bytes | None = None, limits: RoomLimits = LIMITS, *, title: str = "Untitled", language: str = "python"
) -> tuple[Room, MemoryLog]:
    """A room over a document holding ``state`` (default: a new session's first update)."""
    shared = SharedDoc()
    first = initial_update("print(1)\n", language, title) if state is None else state
    shared.doc.apply_update(first)
    log = MemoryLog()
    room = Room(
        "s1", shared, log, limits, stored_rows=1, stored_bytes=len(first),  # type: ignore[arg-type]
        fallback_language=language, fallback_title=title,
    )
    return room, log


class HandPeer:
    """A Yjs client whose messages the test hands to the room itself: a pycrdt Doc plus its connection."""

    def __init__(self, room: Room, participant: str, *, doc: Doc[Any] | None = None, readonly: bool = False) -> None:
        self.room = room
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.code = self.doc.get("code", type=Text)
        self.meta = self.doc.get("meta", type=Map)
        self.channel = FakeChannel()
        self.peer = Peer(self.channel, participant, participant.title(), "#123456", readonly)
        self.awareness_clock = 0

    @property
    def client_id(self) -> int:
        return int(self.doc.client_id)

    def join(self) -> HandPeer:
        """Join and sync both ways, as a provider does on connect (step 1 each way, each answered by step 2)."""
        self.room.join(self.peer)
        self.deliver()
        self.room.receive(self.peer, p.sync_step1(self.doc.get_state()))
        self.deliver()
        return self

    def deliver(self) -> None:
        """Apply what the room sent: updates to the doc, step 1 answered with step 2 (sent to the room)."""
        for data in self.channel.take():
            msg = p.parse_message(data)
            if msg.type != p.MessageType.SYNC:
                continue
            if msg.sync_type == p.SyncType.STEP1:
                self.room.receive(self.peer, p.sync_step2(self.doc.get_update(msg.payload)))
            else:
                self.doc.apply_update(msg.payload)

    def edit(self, text: str) -> bytes:
        """Append ``text`` to the code locally and send the update; returns the update."""
        before = self.doc.get_state()
        self.code += text
        update = self.doc.get_update(before)
        self.room.receive(self.peer, p.sync_update(update))
        return update

    def announce(self, state: Any, client_id: int | None = None) -> None:
        self.awareness_clock += 1
        cid = self.client_id if client_id is None else client_id
        payload = encode_entries([(cid, self.awareness_clock, json.dumps(state).encode())])
        self.room.receive(self.peer, p.awareness_message(payload))

    def leave(self) -> None:
        self.room.leave(self.peer)

    @property
    def text(self) -> str:
        return str(self.code)


def awareness_states(messages: list[bytes]) -> list[tuple[int, int, Any]]:
    """Every (client, clock, state) in the awareness messages among ``messages``."""
    out = []
    for data in messages:
        msg = p.parse_message(data)
        if msg.type != p.MessageType.AWARENESS:
            continue
        r = p.Reader(msg.payload)
        for _ in range(r.var_uint()):
            cid, clock = r.var_uint(), r.var_uint()
            out.append((cid, clock, json.loads(r.var_string())))
    return out


def gc_update(client: int, clock: int, length: int) -> bytes:
    """An update of one GC struct: ``length`` clocks of ``client`` from ``clock`` marked as garbage-collected.

    Applied by a server, it moves that client's clock past ``clock + length``: the client's own structs in that
    range are then taken for duplicates and dropped, everywhere."""
    out = bytearray()
    p.write_var_uint(out, 1)  # one client block
    p.write_var_uint(out, 1)  # of one struct
    p.write_var_uint(out, client)
    p.write_var_uint(out, clock)
    out.append(0)  # GC
    p.write_var_uint(out, length)
    p.write_var_uint(out, 0)  # empty delete set
    return bytes(out)


def clock_of(doc: Doc[Any], client: int) -> int:
    return p.parse_state_vector(doc.get_state()).get(client, 0)
