"""What a session read answers besides the document, kept in memory so that reading a loaded session needs no
database round trip.

A session's id, creation time, read-only link and participants change only through this process's REST writes
(a join today); the code, language, title and latest change come from the live document while its room is loaded.
A card is taken from the database on a read while the room is loaded, belongs to that loading of the room (the
row's ``updated_at`` is only exact up to the load), and is dropped by every write that changes what it holds.
With several processes, a committed write is told to the others (``share``), which drop their card of the session
too: a read there within the few milliseconds the news takes to cross may still answer from the card.

A read that started before a write and finishes after it must not store what it read: every write moves an
epoch forward, and a card is kept only if the epoch did not move while it was read. Writes are rare next to
reads, so a read losing its card now and then to an unrelated write costs nothing that matters.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from codeconnect.collab.records import ParticipantCardRecord, SessionCardRecord

if TYPE_CHECKING:
    from codeconnect.collab.room import Room


@dataclass(frozen=True, slots=True)
class SessionCard:
    id: str
    created_at: datetime
    updated_at: datetime
    viewer_id: str
    participants: tuple[ParticipantCardRecord, ...]
    room: weakref.ref[Room]  # the loading of the room the row was read under

    @classmethod
    def of(cls, session_id: str, record: SessionCardRecord, room: Room) -> SessionCard:
        return cls(
            session_id, record.created_at, record.updated_at, record.viewer_id,
            tuple(record.participants), weakref.ref(room),
        )  # fmt: skip


class SessionCards:
    """A bounded, least-recently-used set of cards."""

    def __init__(
        self,
        capacity: int,
        share: Callable[[bytes], None] | None = None,
        *,
        also_forget: Callable[[str], None] | None = None,
    ) -> None:
        """``share`` tells the other processes of a committed write; ``also_forget`` is told of every write here
        (the update log's reads of sessions nobody has open, kept in memory: see ``collab/kept.py``)."""
        self.capacity = capacity
        self._cards: OrderedDict[str, SessionCard] = OrderedDict()
        self._epoch = 0
        self._share = share
        self._also_forget = also_forget

    def get(self, session_id: str, room: Room) -> SessionCard | None:
        """The card of ``session_id`` read under this loading of its room, if there is one."""
        card = self._cards.get(session_id)
        if card is None or card.room() is not room:
            return None
        self._cards.move_to_end(session_id)
        return card

    def epoch(self) -> int:
        """Taken before reading a session from the database; handed back to :meth:`keep`."""
        return self._epoch

    def keep(self, card: SessionCard, epoch: int) -> None:
        if epoch != self._epoch or self.capacity == 0:
            return  # a write happened meanwhile: what was read may be older than it
        self._cards[card.id] = card
        self._cards.move_to_end(card.id)
        while len(self._cards) > self.capacity:
            self._cards.popitem(last=False)

    def forget(self, session_id: str, *, committed: bool = False) -> None:
        """Called before a write that changes a session's card is committed, and again after it (``committed``:
        then the other processes are told too)."""
        self._epoch += 1
        self._cards.pop(session_id, None)
        if self._also_forget is not None:
            self._also_forget(session_id)
        if committed and self._share is not None:
            self._share(session_id.encode())

    def apply_shared(self, event: bytes) -> None:
        """Another process committed a write to the session named by ``event``."""
        self.forget(event.decode())

    def clear(self) -> None:
        """Forget every card (news of the other processes' writes may have been lost)."""
        self._epoch += 1
        self._cards.clear()

    def __len__(self) -> int:
        return len(self._cards)


def forget_card_on_commit(db: AsyncSession, cards: SessionCards, session_id: str) -> None:
    """Drop the session's in-memory card now and once ``db`` commits: a read between the two cannot keep what
    it read (see above)."""
    cards.forget(session_id)
    event.listen(db.sync_session, "after_commit", lambda _: cards.forget(session_id, committed=True), once=True)
