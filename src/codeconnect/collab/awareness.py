"""Server-side awareness (presence, cursors) of one room, as y-protocols ``awareness.js`` encodes it.

An awareness update is ``varUint(n)`` then n entries ``(clientID, clock, JSON state)``; the state ``null``
means the client went away. The server keeps the latest state per client and relays changes, with two
rules stock servers do not have: a connection may only speak for its own Yjs clientID (the first one it
announces that no other connection holds), and the ``user`` of every state it relays carries the
participant's real name, colour and id, whatever the client claimed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from codeconnect.collab.protocol import MalformedMessage, Reader, write_var_uint


class AwarenessOwner(Protocol):
    """The connection side of an awareness entry."""

    client_id: int | None

    @property
    def user(self) -> dict[str, str]: ...


@dataclass(slots=True)
class _Entry:
    clock: int
    state: bytes  # JSON, as sent on the wire
    owner: AwarenessOwner


def encode_entries(entries: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray()
    write_var_uint(out, len(entries))
    for client_id, clock, state in entries:
        write_var_uint(out, client_id)
        write_var_uint(out, clock)
        write_var_uint(out, len(state))
        out += state
    return bytes(out)


class RoomAwareness:
    """The awareness states of one room's connections."""

    __slots__ = ("_entries", "max_state_bytes")

    def __init__(self, max_state_bytes: int) -> None:
        self._entries: dict[int, _Entry] = {}
        self.max_state_bytes = max_state_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> bytes | None:
        """Every known state, as one awareness payload (None when there is none)."""
        if not self._entries:
            return None
        return encode_entries([(cid, e.clock, e.state) for cid, e in self._entries.items()])

    def apply(self, conn: AwarenessOwner, payload: bytes) -> bytes | None:
        """Apply a client's awareness update; return the payload to relay (None: nothing changed).

        Entries for other clients (stock clients re-send what they receive) are ignored, not errors."""
        r = Reader(payload)
        changed: list[tuple[int, int, bytes]] = []
        for _ in range(r.count(3)):
            client_id = r.var_uint()
            clock = r.var_uint()
            raw = r.var_bytes()
            if client_id != conn.client_id:
                if conn.client_id is not None or client_id in self._entries:
                    continue
                conn.client_id = client_id  # the connection's own client: first unclaimed id it announces
            if len(raw) > self.max_state_bytes:
                raise MalformedMessage("awareness state too large")
            state = self._stamp(raw, conn.user)
            current = self._entries.get(client_id)
            if state == b"null":
                if current is None or clock < current.clock:
                    continue
                del self._entries[client_id]
            else:
                if current is not None and clock <= current.clock:
                    continue
                self._entries[client_id] = _Entry(clock, state, conn)
            changed.append((client_id, clock, state))
        if not r.done():
            raise MalformedMessage("trailing bytes after the awareness update")
        return encode_entries(changed) if changed else None

    def remove(self, conn: AwarenessOwner) -> bytes | None:
        """Drop the connection's state; return the payload telling the others it went away."""
        client_id = conn.client_id
        if client_id is None:
            return None
        entry = self._entries.get(client_id)
        if entry is None or entry.owner is not conn:
            return None
        del self._entries[client_id]
        return encode_entries([(client_id, entry.clock + 1, b"null")])

    @staticmethod
    def _stamp(raw: bytes, user: dict[str, str]) -> bytes:
        try:
            state: Any = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise MalformedMessage("awareness state is not JSON") from exc
        if state is None:
            return b"null"
        if not isinstance(state, dict):
            return raw
        claimed = state.get("user")
        stamped = {**claimed, **user} if isinstance(claimed, dict) else dict(user)
        # Editor bindings paint remote selections with `colorLight` in a style attribute: derive it from the
        # participant's colour instead of relaying whatever a client wrote there.
        stamped["colorLight"] = user["color"] + "33"
        if claimed == stamped:
            return raw
        state["user"] = stamped
        return json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
