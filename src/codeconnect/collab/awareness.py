"""Server-side awareness (presence, cursors) of one room, as y-protocols ``awareness.js`` encodes it.

An awareness update is ``varUint(n)`` then n entries ``(clientID, clock, JSON state)``; the state ``null``
means the client went away. The server keeps the latest state per client and relays changes, with rules
stock servers do not have:

- a connection may only speak for its own Yjs clientID (the first one it announces that no other connection
  holds);
- a state must be a JSON object (or ``null``) of valid UTF-8 without lone surrogates, else its sender is
  closed (4400);
- only the fields the page and its editor binding use are relayed, rebuilt by the server: ``user`` is the
  participant's real name, colour and id, whatever the client claimed; ``cursor`` is ``null`` or
  ``{anchor, head}``, each a Yjs relative position (``{type, tname, item, assoc}``: ids of safe non-negative
  integers, a root type name of the document schema, an integer ``assoc``, and something to resolve), and
  is refused otherwise. y-codemirror.next reads a remote position as it arrives and throws on ``{}``, on a
  missing ``item`` and on one with nothing to resolve, which broke the editor of everyone else; it is relayed
  in full form (absent keys as ``null``, ``assoc`` 0) so positions in y-protocols' short JSON form work too.
  Other fields are dropped, not refused: a client may carry more state than this page shows, and dropping it
  keeps such clients connected while nothing unchecked reaches anyone.
- ``run`` is the live output of the run the client is doing (``null`` or ``{id, language, startedAt, phase,
  offset, output}``): ephemeral, it never enters the document. ``output`` holds only what is new since the
  sender's previous state, as ``[stream, text]`` pieces, and ``offset`` says where it starts in the run's
  output, so the others append it and notice a gap. It is bounded here, strictly (a wrong key, type or size is
  refused), because every other page renders it: at most ``live_output_max_pieces`` pieces and
  ``live_output_max_bytes`` of UTF-8 per state (settings; defaults below). A viewer's is checked, then dropped:
  viewers cannot run code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from codeconnect.collab.document import CODE, META, RUNS
from codeconnect.collab.protocol import MAX_SAFE_INTEGER, MalformedMessage, Reader, write_var_uint
from codeconnect.languages import LANGUAGES

_ROOT_TYPES = frozenset({CODE, META, RUNS})
_POSITION_KEYS = frozenset({"type", "tname", "item", "assoc"})
_CURSOR_KEYS = {"anchor", "head"}
_ID_KEYS = {"client", "clock"}
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

# The live output a state may carry, by default (the settings ``live_output_max_bytes`` and
# ``live_output_max_pieces``). The page publishes at most 4 KiB of new output four times a second
# (16 KiB/s, 64 KiB per run); the bounds leave room for a slow tick without letting one state flood anyone.
LIVE_OUTPUT_MAX_BYTES = 8192
LIVE_OUTPUT_MAX_PIECES = 64
# Where a piece starts in the run's output (UTF-16 units, as the page counts): well past any real run's total.
LIVE_OUTPUT_MAX_OFFSET = 1 << 24
_RUN_KEYS = frozenset({"id", "language", "startedAt", "phase", "offset", "output"})
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_RUN_PHASES = frozenset({"loading", "running", "stopping"})
_STARTED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_STREAMS = frozenset({"stdout", "stderr"})


class AwarenessOwner(Protocol):
    """The connection side of an awareness entry."""

    client_id: int | None
    readonly: bool

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

    __slots__ = ("_entries", "_remote", "max_state_bytes", "_output_bounds")

    def __init__(
        self,
        max_state_bytes: int,
        *,
        live_output_max_bytes: int = LIVE_OUTPUT_MAX_BYTES,
        live_output_max_pieces: int = LIVE_OUTPUT_MAX_PIECES,
    ) -> None:
        self._entries: dict[int, _Entry] = {}
        # The states of other processes' peers (clock, state, origin process, participant), as their servers
        # relayed them: checked and rebuilt there, kept here for this process's peers that join later.
        self._remote: dict[int, tuple[int, bytes, str, str]] = {}
        self.max_state_bytes = max_state_bytes
        self._output_bounds = (live_output_max_bytes, live_output_max_pieces)

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> bytes | None:
        """Every known state, as one awareness payload (None when there is none)."""
        if not self._entries and not self._remote:
            return None
        entries = [(cid, e.clock, e.state) for cid, e in self._entries.items()]
        entries += [(cid, r[0], r[1]) for cid, r in self._remote.items() if cid not in self._entries]
        return encode_entries(entries)

    def apply_remote(
        self, origin: str, payload: bytes, owner_of: Callable[[int], str | None]
    ) -> tuple[bytes | None, list[tuple[int, str]]]:
        """Keep the states another process relayed (``payload`` as its peers received it). Returns what to relay
        here, and the client ids announced with the participant each speaks for (the origin wrote ``user``).

        A state for a client id that belongs to someone else here (``owner_of``: by this process's connections
        or what it learned before) is dropped: two processes may each have let a different participant claim
        the same id within the moment their claims took to cross; the first one each heard of keeps it."""
        r = Reader(payload)
        kept: list[tuple[int, int, bytes]] = []
        announced: list[tuple[int, str]] = []
        for _ in range(r.count(3)):
            client_id = r.var_uint()
            clock = r.var_uint()
            state = r.var_bytes()
            current = self._remote.get(client_id)
            if current is not None and clock < current[0]:
                continue
            if state == b"null":
                if current is None or current[2] != origin:
                    continue  # only the process that relayed a state may take it away
                del self._remote[client_id]
            else:
                participant = json.loads(state).get("user", {}).get("participantId")
                if not isinstance(participant, str):
                    continue
                owner = owner_of(client_id)
                held = self._entries.get(client_id)
                if (owner is not None and owner != participant) or (
                    held is not None and held.owner.user["participantId"] != participant
                ):
                    continue
                self._remote[client_id] = (clock, state, origin, participant)
                announced.append((client_id, participant))
            kept.append((client_id, clock, state))
        return (encode_entries(kept) if kept else None), announced

    def drop_origin(self, origin: str) -> bytes | None:
        """Forget every state ``origin`` relayed; return the payload telling this process's peers they went."""
        gone = [(cid, r[0] + 1, b"null") for cid, r in self._remote.items() if r[2] == origin]
        for cid, _, _ in gone:
            del self._remote[cid]
        return encode_entries(gone) if gone else None

    def apply(
        self, conn: AwarenessOwner, payload: bytes, owner_of: Callable[[int], str | None] | None = None
    ) -> bytes | None:
        """Apply a client's awareness update; return the payload to relay (None: nothing changed).

        Entries for other clients (stock clients re-send what they receive) are ignored, not errors. A client id
        that ``owner_of`` (the room's record of who writes under which id) or another process's state gives to
        someone else is not this connection's to announce."""
        r = Reader(payload)
        changed: list[tuple[int, int, bytes]] = []
        for _ in range(r.count(3)):
            client_id = r.var_uint()
            clock = r.var_uint()
            raw = r.var_bytes()
            if client_id != conn.client_id:
                if conn.client_id is not None:
                    continue
                me = conn.user["participantId"]
                held = self._entries.get(client_id)
                if held is not None and held.owner.user["participantId"] != me:
                    continue
                remote = self._remote.get(client_id)
                owner = owner_of(client_id) if owner_of is not None else None
                if (remote is not None and remote[3] != me) or (owner is not None and owner != me):
                    continue
                # The connection's own client: the first id it announces that no one else holds. One the same
                # participant holds is a reconnect whose old socket is not gone yet: the new one takes it over,
                # so the old one's end does not tell everyone the person left.
                conn.client_id = client_id
                if held is not None:
                    held.owner = conn
            if len(raw) > self.max_state_bytes:
                raise MalformedMessage("awareness state too large")
            state = _relayed_state(raw, conn.user, self._output_bounds, runs=not conn.readonly)
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


def _relayed_state(
    raw: bytes, user: dict[str, str], output_bounds: tuple[int, int], *, runs: bool = True
) -> bytes:
    """The state to relay for ``raw``, rebuilt from its known fields; raises MalformedMessage."""
    try:
        state: Any = json.loads(raw.decode("utf-8"))  # strict UTF-8: no surrogates encoded as bytes
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage("awareness state is not JSON") from exc
    if state is None:
        return b"null"
    if not isinstance(state, dict):
        raise MalformedMessage("awareness state is not an object")
    if _SURROGATE_ESCAPE.search(raw) is not None:
        # "\ud800" is valid JSON but not text: it cannot be encoded again, for this server or for anyone.
        try:
            json.dumps(state, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedMessage("lone surrogate in the awareness state") from exc
    # Editor bindings paint remote selections with `colorLight` in a style attribute: derive it from the
    # participant's colour instead of relaying whatever a client wrote there.
    relayed: dict[str, Any] = {"user": {**user, "colorLight": user["color"] + "33"}}
    if "cursor" in state:
        relayed["cursor"] = _cursor(state["cursor"])
    if "run" in state:
        run = _live_run(state["run"], *output_bounds)
        if runs:  # a viewer cannot run code: a live card of theirs would be made up (checked all the same)
            relayed["run"] = run
    return json.dumps(relayed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _live_run(value: Any, max_bytes: int, max_pieces: int) -> dict[str, Any] | None:
    """The live output of a run in progress, relayed as sent once every part of it is checked."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.keys() != _RUN_KEYS:
        raise MalformedMessage("awareness run is not {id, language, startedAt, phase, offset, output}")
    run_id, language, started_at = value["id"], value["language"], value["startedAt"]
    if not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
        raise MalformedMessage("awareness run has an invalid id")
    if not (isinstance(language, str) and language in LANGUAGES):
        raise MalformedMessage("awareness run has an unknown language")
    if not (isinstance(started_at, str) and _STARTED_AT.fullmatch(started_at)):
        raise MalformedMessage("awareness run has an invalid startedAt")
    if not (isinstance(value["phase"], str) and value["phase"] in _RUN_PHASES):
        raise MalformedMessage("awareness run has an unknown phase")
    offset = value["offset"]
    if not (_is_int(offset) and 0 <= offset <= LIVE_OUTPUT_MAX_OFFSET):
        raise MalformedMessage("awareness run has an invalid offset")
    output = value["output"]
    if not isinstance(output, list) or len(output) > max_pieces:
        raise MalformedMessage("awareness run output is not a short list")
    size = 0
    for piece in output:
        if not (
            isinstance(piece, list)
            and len(piece) == 2
            and isinstance(piece[0], str)
            and piece[0] in _STREAMS
            and isinstance(piece[1], str)
        ):
            raise MalformedMessage("awareness run output piece is not [stream, text]")
        size += len(piece[1].encode("utf-8"))  # lone surrogates were refused with the whole state
        if size > max_bytes:
            raise MalformedMessage("awareness run output is too large")
    return {
        "id": run_id,
        "language": language,
        "startedAt": started_at,
        "phase": value["phase"],
        "offset": offset,
        "output": [[stream, text] for stream, text in output],
    }


def _cursor(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.keys() != _CURSOR_KEYS:
        raise MalformedMessage("awareness cursor is not {anchor, head}")
    return {"anchor": _position(value["anchor"]), "head": _position(value["head"])}


def _position(value: Any) -> dict[str, Any]:
    """A Yjs relative position in the full form ``Y.RelativePosition`` serialises to."""
    if not isinstance(value, dict) or not value.keys() <= _POSITION_KEYS:
        raise MalformedMessage("awareness cursor position is not a relative position")
    type_id, item = _id(value.get("type")), _id(value.get("item"))
    tname = value.get("tname")
    if tname is not None and not (isinstance(tname, str) and tname in _ROOT_TYPES):
        raise MalformedMessage("awareness cursor position names an unknown type")
    assoc = value.get("assoc")
    if assoc is None:
        assoc = 0
    elif not _is_int(assoc) or abs(assoc) > MAX_SAFE_INTEGER:
        raise MalformedMessage("awareness cursor position has an invalid assoc")
    if item is None and tname is None and type_id is None:
        raise MalformedMessage("awareness cursor position points nowhere")
    return {"type": type_id, "tname": tname, "item": item, "assoc": assoc}


def _id(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.keys() != _ID_KEYS:
        raise MalformedMessage("awareness cursor id is not {client, clock}")
    client, clock = value["client"], value["clock"]
    if not (_is_int(client) and _is_int(clock) and 0 <= client <= MAX_SAFE_INTEGER and 0 <= clock <= MAX_SAFE_INTEGER):
        raise MalformedMessage("awareness cursor id is out of range")
    return {"client": client, "clock": clock}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
