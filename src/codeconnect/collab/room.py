"""A room: one session's live document, its connected peers and their awareness.

The room speaks the sync protocol with each peer over a :class:`Channel` (bytes in, bytes out); it knows
nothing about HTTP or WebSockets. Every change of the document, whoever made it (a peer, a REST call, a run
result), goes through one observer that relays the change to the other peers and appends it to the update
log, so nothing is relayed or stored twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pycrdt import TransactionEvent

from codeconnect.collab import protocol as p
from codeconnect.collab.awareness import RoomAwareness
from codeconnect.collab.document import SharedDoc
from codeconnect.collab.protocol import CloseCode, MalformedMessage, MessageType, SyncType
from codeconnect.collab.store import Mirror, UpdateLog
from codeconnect.collab.updates import inspect_update

log = logging.getLogger(__name__)


class Channel(Protocol):
    """A peer's outgoing side. ``send`` never blocks: a channel that cannot keep up drops its peer."""

    def send(self, data: bytes) -> None: ...


class ProtocolViolation(Exception):
    """The peer broke a rule; its connection is closed with ``code``. Other peers are unaffected."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RoomLimits:
    max_code_bytes: int
    max_document_bytes: int
    max_awareness_state_bytes: int
    max_title_length: int
    compact_after_updates: int
    slow_update_seconds: float


class Peer:
    """One live connection in a room."""

    __slots__ = ("channel", "participant_id", "readonly", "client_id", "name", "color")

    def __init__(self, channel: Channel, participant_id: str, name: str, color: str, readonly: bool) -> None:
        self.channel = channel
        self.participant_id = participant_id
        self.readonly = readonly
        self.client_id: int | None = None
        self.name = name
        self.color = color

    @property
    def user(self) -> dict[str, str]:
        """What the awareness ``user`` field says about this peer (built on use: most peers idle)."""
        return {"name": self.name, "color": self.color, "participantId": self.participant_id}


class Room:
    """The live state of one session; lives in exactly one process."""

    def __init__(
        self, session_id: str, shared: SharedDoc, log_: UpdateLog, limits: RoomLimits, *, stored_rows: int,
        stored_bytes: int, fallback_language: str, fallback_title: str,
    ) -> None:
        self.session_id = session_id
        self.shared = shared
        self.limits = limits
        self.peers: dict[Peer, None] = {}
        self.awareness = RoomAwareness(limits.max_awareness_state_bytes)
        self.leases = 0  # peers plus REST calls using the room; at 0 the room may unload
        self.unloading: asyncio.Task[None] | None = None
        self.unload_timer: asyncio.TimerHandle | None = None
        self.rows_since_snapshot = stored_rows
        self.doc_bytes = stored_bytes
        self.compacting = False
        self.dirty = False  # changed since the sessions row was last mirrored
        self.updated_at: datetime | None = None
        self.fallback_language = fallback_language
        self.fallback_title = fallback_title
        self._log = log_
        self._origin: Peer | None = None
        self._last_commit: asyncio.Future[None] | None = None
        self._subscription = shared.doc.observe(self._on_change)

    # --- peers ----------------------------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        self.peers[peer] = None
        peer.channel.send(p.sync_step1(self.shared.doc.get_state()))
        states = self.awareness.snapshot()
        if states is not None:
            peer.channel.send(p.awareness_message(states))

    def leave(self, peer: Peer) -> None:
        if self.peers.pop(peer, 0) is None:
            gone = self.awareness.remove(peer)
            if gone is not None:
                self._broadcast(p.awareness_message(gone), None)

    def online_participants(self) -> frozenset[str]:
        return frozenset(peer.participant_id for peer in self.peers)

    # --- messages from peers ------------------------------------------------------------------------------

    def receive(self, peer: Peer, data: bytes) -> None:
        """Handle one message; raises :class:`ProtocolViolation` when the peer must be disconnected."""
        try:
            msg = p.parse_message(data)
            if msg.type == MessageType.SYNC:
                if msg.sync_type == SyncType.STEP1:
                    p.parse_state_vector(msg.payload)  # validated before Yrs decodes it
                    peer.channel.send(p.sync_step2(self.shared.doc.get_update(msg.payload)))
                elif not peer.readonly:
                    self._apply_from(peer, msg.payload)
                # A viewer's updates are dropped: it may watch, not edit.
            elif msg.type == MessageType.AWARENESS:
                relay = self.awareness.apply(peer, msg.payload)
                if relay is not None:
                    # Relayed to the sender too: a lone stock client needs traffic to stay connected.
                    self._broadcast(p.awareness_message(relay), None)
            elif msg.type == MessageType.QUERY_AWARENESS:
                states = self.awareness.snapshot()
                if states is not None:
                    peer.channel.send(p.awareness_message(states))
        except MalformedMessage as exc:
            raise ProtocolViolation(CloseCode.BAD_MESSAGE, f"malformed message: {exc}") from exc

    def _apply_from(self, peer: Peer, update: bytes) -> None:
        info = inspect_update(update)
        if info.is_empty:
            return
        if info.string_bytes and self.shared.text_bytes() + info.string_bytes > self.limits.max_code_bytes:
            raise ProtocolViolation(
                CloseCode.TOO_LARGE, f"the code would exceed its limit of {self.limits.max_code_bytes} bytes"
            )
        if self.doc_bytes + len(update) > self.limits.max_document_bytes:
            raise ProtocolViolation(
                CloseCode.TOO_LARGE, f"the document would exceed {self.limits.max_document_bytes} bytes"
            )
        # Counted before applying: an update whose dependencies are missing changes nothing visible (Yrs
        # parks it), yet it occupies memory; counting every peer update keeps that bounded too.
        self.doc_bytes += len(update)
        started = time.perf_counter()
        self._origin = peer
        try:
            self.shared.doc.apply_update(update)
        except Exception as exc:
            raise ProtocolViolation(CloseCode.BAD_MESSAGE, "the update could not be applied") from exc
        finally:
            self._origin = None
        elapsed = time.perf_counter() - started
        if elapsed > self.limits.slow_update_seconds:
            # Validation should make this impossible; if it happens, cut the sender off and say so.
            log.warning("an update of %d bytes took %.2f s to apply; closing its connection", len(update), elapsed)
            raise ProtocolViolation(CloseCode.BAD_MESSAGE, "the update took too long to apply")

    # --- every change, from anywhere -----------------------------------------------------------------------

    def _on_change(self, event: TransactionEvent) -> None:
        update: bytes = event.update
        if len(update) <= 2:  # b"\x00\x00": a transaction that changed nothing
            return
        self._broadcast(p.sync_update(update), self._origin)
        self._last_commit = self._log.append(self.session_id, update)
        self.rows_since_snapshot += 1
        if self._origin is None:  # peers' updates were counted when they arrived
            self.doc_bytes += len(update)
        self.dirty = True
        self.updated_at = datetime.now(UTC)

    def _broadcast(self, message: bytes, skip: Peer | None) -> None:
        for peer in self.peers:
            if peer is not skip:
                peer.channel.send(message)

    async def committed(self) -> None:
        """Wait until every change made so far is in the update log."""
        if self._last_commit is not None:
            await asyncio.shield(self._last_commit)

    def needs_compaction(self) -> bool:
        return not self.compacting and self.rows_since_snapshot >= self.limits.compact_after_updates

    # --- reading for REST and the mirror ----------------------------------------------------------------

    # Each read remembers the last valid value (a client may later write nonsense there); reads happen on
    # every REST call and every mirror pass. Not from the change observer: the document is locked there.
    def language(self) -> str:
        language = self.shared.language()
        if language is not None:
            self.fallback_language = language
        return self.fallback_language

    def title(self) -> str:
        title = self.shared.title()
        if title is not None:
            self.fallback_title = title
        return self.fallback_title

    def mirror(self) -> Mirror:
        self.dirty = False
        return Mirror(
            code=self.shared.text(),
            language=self.language(),
            # Clients may write any title into the document; the column holds what REST allows.
            title=self.title()[: self.limits.max_title_length],
            updated_at=self.updated_at or datetime.now(UTC),
        )

    def close(self) -> None:
        self.shared.doc.unobserve(self._subscription)
