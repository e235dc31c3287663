"""A session's history replayed: what each change did, and the document at any change. No I/O here.

A :class:`Timeline` is built once from the session's base (what its history starts from) and its changes in
order, then extended with the changes stored since. Replaying a change once gives everything a timeline needs:
the characters it inserted and deleted, its kind (a run, a language or title switch, an edit) and who wrote
each character of the text. Every ``every`` changes it keeps a checkpoint (the encoded document and the author
of each byte of the text), so reading the document at any change applies at most ``every`` updates.

**Authorship.** Yrs reports a text change as a delta in UTF-8 bytes; the timeline keeps, beside the text, the
author of each of its bytes, moved with every delta. Inserted characters belong to the participant owning the
Yjs client id that wrote them: an update whose structs are all under one client id is that client's, whose
owner is the first author seen sending under it; an update mixing several client ids (a client restoring
structs the server lost in a crash) is its sender's as a whole. The server's own edits (REST writes, run output,
restores) have no author.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pycrdt import Doc, merge_updates

from codeconnect.collab.document import SharedDoc
from codeconnect.collab.updates import inspect_update

Kind = Literal["edit", "language", "title", "run", "restore"]
_MAX_AUTHORS = 65_535  # the width of the per-byte author array ("H"); past it, authors count as unknown
_NOBODY = 0  # the author index of the server and of text from before the history


@dataclass(frozen=True, slots=True)
class StoredChange:
    """A change as stored: its sequence number (the log row's id), time, author, tag and update."""

    seq: int
    at: datetime
    author: str | None
    tag: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Change:
    """A change as the timeline shows it."""

    seq: int
    at: datetime
    author: str | None
    inserted: int  # characters (code points) of the code inserted
    deleted: int  # characters of the code deleted
    kind: Kind


@dataclass(frozen=True, slots=True)
class Point:
    """The document right after one change."""

    index: int
    at: datetime
    code: str
    language: str | None
    title: str | None
    runs: list[Any]
    authors: list[tuple[int, int, str | None]]  # (start, end, author) in UTF-16 code units of ``code``


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    state: bytes  # the document after ``position`` changes
    authors: array[int]  # the author index of each byte of the text


@dataclass(slots=True)
class _Effect:
    """What one applied update did, collected by the observers."""

    deltas: list[list[dict[str, Any]]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    run_added: bool = False


class _Observed:
    """A document with observers on its root types, reporting each applied update's effect."""

    def __init__(self, state: list[bytes]) -> None:
        self.shared = SharedDoc(Doc())
        for update in state:
            self.shared.doc.apply_update(update)
        self.effect = _Effect()
        self.shared.code.observe(lambda event: self.effect.deltas.append(event.delta))
        self.shared.meta.observe(lambda event: self.effect.keys.update(event.keys))
        self.shared.runs.observe(self._runs)

    def _runs(self, event: Any) -> None:
        if any("insert" in op for op in event.delta):
            self.effect.run_added = True

    def apply(self, update: bytes) -> _Effect:
        self.effect = _Effect()
        self.shared.doc.apply_update(update)
        return self.effect


def _chars(data: bytes | bytearray) -> int:
    """Code points in UTF-8 ``data``: the bytes that do not continue a character."""
    return len(data) - sum(1 for b in data if b & 0xC0 == 0x80)


class Timeline:
    """Every change of one session, replayed. Not thread-safe: one caller at a time (``HistoryCache`` locks)."""

    def __init__(self, base: list[bytes], base_key: tuple[int, int], every: int) -> None:
        self.base_key = base_key  # what the base was built from: a new base means a new timeline
        self.every = max(1, every)
        self.changes: list[Change] = []
        self._at: list[datetime] = []
        self._updates: list[bytes] = []
        # Per change, what it did to the text's bytes: (position, bytes deleted, bytes inserted, author index)
        # each; a seek moves the per-byte authors through these instead of observing a replay.
        self._edits: list[tuple[tuple[int, int, int, int], ...]] = []
        self._head = _Observed(base)
        self._people: list[str | None] = [None]
        self._index_of: dict[str | None, int] = {None: _NOBODY}
        self._owner_of_client: dict[int, int] = {}
        code = self._head.shared.text().encode("utf-8", "surrogatepass")
        self._text = bytearray(code)
        self._authors = array("H", bytes(2 * len(code)))
        self._checkpoints = [_Checkpoint(self._head.shared.doc.get_update(), array("H", self._authors))]
        self.size = sum(len(u) for u in base) + 3 * len(code)

    @property
    def last_seq(self) -> int:
        return self.changes[-1].seq if self.changes else 0

    def extend(self, stored: list[StoredChange]) -> None:
        """Replay changes stored after the last one (in order)."""
        for change in stored:
            self._extend_one(change)

    def _person(self, author: str | None) -> int:
        index = self._index_of.get(author)
        if index is None:
            if len(self._people) >= _MAX_AUTHORS:
                return _NOBODY
            index = self._index_of[author] = len(self._people)
            self._people.append(author)
        return index

    def _writer(self, change: StoredChange) -> int:
        """Who wrote the text ``change`` inserts (see the module docstring)."""
        sender = self._person(change.author)
        try:
            clients = {client for client, _first, _end in inspect_update(change.data).blocks}
        except Exception:
            return sender
        if len(clients) != 1:
            return sender
        [client] = clients
        owner = self._owner_of_client.get(client)
        if owner is None:
            if change.author is None:
                return sender
            owner = self._owner_of_client[client] = sender
        return owner

    def _extend_one(self, change: StoredChange) -> None:
        writer = self._writer(change)
        effect = self._head.apply(change.data)
        inserted = deleted = 0
        edits: list[tuple[int, int, int, int]] = []
        for delta in effect.deltas:
            i, d = _apply_delta(delta, self._authors, writer, self._text, edits)
            inserted += i
            deleted += d
        kind: Kind
        if change.tag == "restore":
            kind = "restore"
        elif effect.run_added:
            kind = "run"
        elif inserted or deleted:
            kind = "edit"  # the code changed (a session's creation sets its language and title too)
        elif "language" in effect.keys:
            kind = "language"
        elif "title" in effect.keys:
            kind = "title"
        else:
            kind = "edit"
        self.changes.append(Change(change.seq, change.at, change.author, inserted, deleted, kind))
        self._at.append(change.at)
        self._updates.append(change.data)
        self._edits.append(tuple(edits))
        self.size += len(change.data) + 200
        if len(self.changes) % self.every == 0:
            state = self._head.shared.doc.get_update()
            self._checkpoints.append(_Checkpoint(state, array("H", self._authors)))
            self.size += len(state) + 2 * len(self._authors)

    def index_at(self, when: datetime) -> int | None:
        """The index of the last change at or before ``when`` (None: the history starts after it)."""
        position = bisect.bisect_right(self._at, when)
        return position - 1 if position else None

    def point(self, index: int) -> Point:
        """The document right after change ``index`` (0 <= index < len(changes))."""
        position = index + 1  # changes applied
        checkpoint = self._checkpoints[position // self.every]
        first = position - position % self.every
        shared = SharedDoc(Doc())
        # One apply of the checkpoint and the updates after it merged (Yrs, unobserved): far cheaper than
        # applying them one by one.
        updates = self._updates[first:position]
        shared.doc.apply_update(merge_updates(checkpoint.state, *updates) if updates else checkpoint.state)
        authors = array("H", checkpoint.authors)
        for edits in self._edits[first:position]:
            for at, removed, added, writer in edits:
                if removed:
                    del authors[at : at + removed]
                if added:
                    authors[at:at] = array("H", [writer]) * added
        code = shared.text()
        language = shared.meta.get("language")
        title = shared.meta.get("title")
        return Point(
            index=index,
            at=self.changes[index].at,
            code=code,
            language=language if isinstance(language, str) else None,
            title=title if isinstance(title, str) else None,
            runs=list(shared.runs.to_py() or []),
            authors=self._ranges(code, authors),
        )

    def _ranges(self, code: str, authors: array[int]) -> list[tuple[int, int, str | None]]:
        """Author ranges over ``code`` in UTF-16 code units, covering it, neighbours by one author merged."""
        ranges: list[tuple[int, int, str | None]] = []
        if not code:
            return ranges
        people = self._people
        start = utf16 = byte = 0
        current = authors[0] if authors else _NOBODY
        ascii_only = code.isascii()
        for ch in code:
            author = authors[byte] if byte < len(authors) else _NOBODY
            if author != current:
                ranges.append((start, utf16, people[current]))
                start, current = utf16, author
            if ascii_only:
                byte += 1
                utf16 += 1
                continue
            cp = ord(ch)
            byte += 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
            utf16 += 2 if cp >= 0x10000 else 1
        ranges.append((start, utf16, people[current]))
        return ranges


def _apply_delta(
    delta: list[dict[str, Any]], authors: array[int], writer: int, text: bytearray,
    edits: list[tuple[int, int, int, int]],
) -> tuple[int, int]:
    """Move the per-byte authors and ``text`` through one Yrs text delta (offsets in UTF-8 bytes), noting each
    edit in ``edits``; returns the characters inserted and deleted."""
    position = inserted = deleted = 0
    for op in delta:
        if "retain" in op:
            position += int(op["retain"])
        elif "delete" in op:
            count = int(op["delete"])
            deleted += _chars(text[position : position + count])
            del text[position : position + count]
            del authors[position : position + count]
            edits.append((position, count, 0, writer))
        elif "insert" in op:
            value = op["insert"]
            piece = (value if isinstance(value, str) else "").encode("utf-8", "surrogatepass")
            text[position:position] = piece
            authors[position:position] = array("H", [writer]) * len(piece)
            edits.append((position, 0, len(piece), writer))
            inserted += len(value) if isinstance(value, str) else 0
            position += len(piece)
    return inserted, deleted
