"""Sessions nobody has open here, kept in memory as their rows were last read while those held the exact text.

A read of a session whose room is not loaded is answered from the session's row once the row holds the
document's exact text (see ``UpdateLog.seal``). While this process is the only one serving the database, such a
row changes only through it: through the update log (a committed update makes the row inexact, a mirror or a seal
rewrites it), through REST writes of the session's participants and links, and through its end or reopen. Each
of these calls :meth:`KeptSessions.changed`, which drops what was kept of the session and spoils every read of it
in flight, so a read that began before a change never keeps what it read. A read is then answered without a
database round trip until the session changes. With other processes (Redis) nothing is kept: their writes are
not heard here before a read could answer from memory.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from codeconnect.collab.records import StoredSession

# What a kept read costs besides its strings: the records, the dictionary entry, and per participant its record.
_ENTRY_BYTES = 512
_PARTICIPANT_BYTES = 400


def kept_size(stored: StoredSession) -> int:
    """The memory a kept read takes, about (its strings exactly: their in-memory size, not their UTF-8)."""
    card = stored.card
    strings = sys.getsizeof(stored.code) + sys.getsizeof(stored.title) + sys.getsizeof(card.viewer_id)
    return strings + _ENTRY_BYTES + _PARTICIPANT_BYTES * len(card.participants)


class KeptSessions:
    """Exact reads of session rows, least recently read first out past ``max_bytes`` (0: nothing is kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[str, tuple[StoredSession, int]] = OrderedDict()
        self._bytes = 0
        # Per session with reads in flight: [how many, changes heard since the first of them began].
        self._reading: dict[str, list[int]] = {}

    async def read(
        self, session_id: str, read: Callable[[str], Awaitable[StoredSession | None]]
    ) -> StoredSession | None:
        """What is kept of the session, else ``read(session_id)``, kept if exact and nothing changed meanwhile."""
        kept = self._kept.get(session_id)
        if kept is not None:
            self._kept.move_to_end(session_id)
            return kept[0]
        if self.max_bytes == 0:
            return await read(session_id)
        flight = self._reading.get(session_id)
        if flight is None:
            flight = self._reading[session_id] = [0, 0]
        flight[0] += 1
        heard = flight[1]
        try:
            stored = await read(session_id)
        finally:
            flight[0] -= 1
            if flight[0] == 0:
                del self._reading[session_id]
        if stored is not None and stored.exact and flight[1] == heard:
            self._keep(session_id, stored)
        return stored

    def _keep(self, session_id: str, stored: StoredSession) -> None:
        size = kept_size(stored)
        if size > self.max_bytes:
            return
        self._drop(session_id)
        self._kept[session_id] = (stored, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._kept.popitem(last=False)
            self._bytes -= dropped

    def _drop(self, session_id: str) -> None:
        kept = self._kept.pop(session_id, None)
        if kept is not None:
            self._bytes -= kept[1]

    def changed(self, session_id: str) -> None:
        """Something the read of the session answers may have changed (or is about to): forget it, and let no read
        of it in flight keep what it read."""
        if self._kept:
            self._drop(session_id)
        flight = self._reading.get(session_id)
        if flight is not None:
            flight[1] += 1

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._kept
