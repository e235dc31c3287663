"""The distribution boundary: how the rooms of one process reach the rooms of the same sessions elsewhere.

A room tells its :class:`Fanout` what it accepted (an update, an awareness change, who is online here) and
is told by the cluster what other processes accepted (:class:`RemoteRoom`). Neither side knows how the bytes
travel: :class:`LocalCluster` (one process, nothing to do) or ``redis_cluster.RedisCluster`` (a Redis stream
per session), chosen when the app is wired.

The contract a cluster keeps:

- every update published is delivered to every process holding the session's room, in order per publisher,
  or, after a gap (the cluster's transport down, a stream trimmed past what a process read), the room is healed
  from the update log (:meth:`RemoteRoom.heal`);
- a process publishes an update *before* it is committed (relaying waits for nothing), so a process loading a
  room replays the recent part of the stream on top of the database: what others accepted but had not committed
  yet when it read the log;
- relayed updates are never stored again: each update reaches the log once, from the process that accepted it.
  If that process dies before committing, a process that holds the room stores what the log misses
  (:meth:`RemoteRoom.rescue`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol


class Fanout(Protocol):
    """What a room publishes to the other processes holding the same session."""

    def update(self, session_id: str, update: bytes, author: str | None, claims: tuple[int, ...]) -> None:
        """A document update this process accepted, before its commit: from participant ``author``'s
        connection (``claims``: the client ids it made the author's), or the server's own change (None)."""
        ...

    def awareness(self, session_id: str, payload: bytes) -> None:
        """An awareness update (y-protocols' entries) of this process's peers, as relayed to them."""
        ...

    def presence(self, session_id: str, seats: tuple[tuple[str, bool], ...]) -> None:
        """The connections to the session here changed: (participant id, read-only) each (empty: none left)."""
        ...


class RemoteRoom(Protocol):
    """What the cluster calls on a loaded room."""

    session_id: str

    def local_seats(self) -> tuple[tuple[str, bool], ...]:
        """The room's connections in this process (renewed to the others as presence)."""
        ...

    def apply_remote(self, update: bytes, author: str | None, claims: tuple[int, ...]) -> None:
        """An update another process accepted: apply and relay to this process's peers, never store."""
        ...

    def remote_awareness(self, origin: str, payload: bytes) -> None: ...

    def remote_presence(self, origin: str, seats: tuple[tuple[str, bool], ...]) -> None: ...

    def origin_gone(self, origin: str) -> None:
        """``origin`` stopped renewing its presence here: forget its peers' awareness and online flags."""
        ...

    async def heal(self) -> None:
        """Read the update log again and apply whatever this room misses (after a gap in delivery)."""
        ...

    async def rescue(self) -> None:
        """Store what this room holds that the update log misses (an origin died before committing it)."""
        ...


class Cluster(Fanout, Protocol):
    """The processes serving the same sessions. Entered and exited by the registry that owns it."""

    #: Whether other processes may hold the same sessions' rooms (changes how the log is compacted).
    shared: bool

    async def __aenter__(self) -> Cluster: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def mark(self) -> object | None:
        """A position in every session's stream, taken before a room's log is read (see :meth:`attach`)."""
        ...

    async def attach(self, room: RemoteRoom, mark: object | None) -> None:
        """Deliver to ``room`` what other processes published since ``mark``, then everything they publish."""
        ...

    def detach(self, session_id: str) -> None: ...

    def status(self) -> str | None:
        """``"up"`` or ``"down"`` for a cluster with a transport of its own; None for one process."""
        ...

    def share(self, topic: str, event: bytes) -> None:
        """Tell every other process of ``event`` (admission events, run stops), as soon as possible."""
        ...

    def listen(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Hand the other processes' events of ``topic`` to ``handler``."""
        ...

    def on_gap(self, handler: Callable[[], None]) -> None:
        """Call ``handler`` after a gap in which events of other processes may have been lost (the transport came
        back after being down): whatever was learnt from events must be read again from the database."""
        ...

    async def online(self, session_id: str) -> frozenset[str]:
        """Who is connected to the session on any process (asked when this process does not hold its room)."""
        ...

    async def forget(self, session_ids: Sequence[str]) -> None:
        """Remove what the cluster keeps of these deleted sessions (their streams, members, connections)."""
        ...

    async def take_rate(self, key: str, per_minute: int) -> float | None:
        """Count one event under ``key`` in a one-minute window shared by every process: 0 when taken, else the
        seconds until one would be; None when there is nothing shared to count in (count locally then)."""
        ...


class LocalCluster:
    """One process: nothing to share."""

    shared = False

    async def __aenter__(self) -> LocalCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def update(self, session_id: str, update: bytes, author: str | None, claims: tuple[int, ...]) -> None:
        return None

    def awareness(self, session_id: str, payload: bytes) -> None:
        return None

    def presence(self, session_id: str, seats: tuple[tuple[str, bool], ...]) -> None:
        return None

    async def mark(self) -> object | None:
        return None

    async def attach(self, room: RemoteRoom, mark: object | None) -> None:
        return None

    def detach(self, session_id: str) -> None:
        return None

    def status(self) -> str | None:
        return None

    def share(self, topic: str, event: bytes) -> None:
        return None

    def listen(self, topic: str, handler: Callable[[bytes], None]) -> None:
        return None

    def on_gap(self, handler: Callable[[], None]) -> None:
        return None  # nothing to lose

    async def online(self, session_id: str) -> frozenset[str]:
        return frozenset()  # no room here: nobody is connected

    async def forget(self, session_ids: Sequence[str]) -> None:
        return None

    async def take_rate(self, key: str, per_minute: int) -> float | None:
        return None

