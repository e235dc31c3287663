"""A room: one session's live document, its connected peers and their awareness.

The room speaks the sync protocol with each peer over a :class:`Channel` (bytes in, bytes out); it knows
nothing about HTTP or WebSockets. Every change of the document, whoever made it (a peer, a REST call, a run
result), goes through one recording step of the room, which relays it to the other peers and appends it to the update
log, once.

A peer's update is relayed and stored as the peer sent it, once it has been validated and applied: the
document has no permanent observer, because pycrdt builds a full transaction event (the update re-encoded,
state vectors before and after) for every transaction of an observed document, which cost more than the
apply itself. The server's own edits (:meth:`Room.change`) observe just their one transaction.

Peers joining with the same state vector (new peers: an empty one) share one encoded sync reply, kept until the
document changes: a large document is encoded once, not once per peer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pycrdt import ArrayEvent, Doc, TransactionEvent

from codeconnect.collab import protocol as p
from codeconnect.collab.awareness import LIVE_OUTPUT_MAX_BYTES, LIVE_OUTPUT_MAX_PIECES, RoomAwareness
from codeconnect.collab.cluster import Fanout
from codeconnect.collab.document import SharedDoc
from codeconnect.collab.protocol import CloseCode, MalformedMessage, MessageType, SyncType
from codeconnect.collab.records import Mirror, StoredDoc
from codeconnect.collab.tally import TALLY
from codeconnect.collab.updates import inspect_update
from codeconnect.titles import is_valid_title

log = logging.getLogger(__name__)


class Channel(Protocol):
    """A peer's outgoing side. ``send`` never blocks: a channel that cannot keep up drops its peer."""

    def send(self, data: bytes) -> None: ...

    def charge(self, messages: float) -> None:
        """Count ``messages`` more toward the peer's message rate: work one of its messages caused beyond its own
        handling (the peer's reads pause until the rate has paid for it, as for any flood)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code``; the room hears of it as for any close (the peer leaves)."""
        ...


class UpdateStore(Protocol):
    """The update log as a room uses it (``store.UpdateLog``, chosen when the app is wired)."""

    def append(
        self, session_id: str, data: bytes, author: str | None = None, tag: str | None = None
    ) -> asyncio.Future[None]:
        """Queue ``data`` for the session's log, with its author (a participant id; None: the server) and the time
        it arrived; the future settles once it is committed."""
        ...

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        ...

    async def load(self, session_id: str) -> StoredDoc: ...


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
    max_client_ids_per_participant: int
    sync_bytes_per_message: int = 16 * 1024
    greeting_document_bytes: int = 64 * 1024
    update_bytes_per_message: int = 16 * 1024
    awareness_bytes_per_message: int = 1024
    live_output_max_bytes: int = LIVE_OUTPUT_MAX_BYTES
    live_output_max_pieces: int = LIVE_OUTPUT_MAX_PIECES


class Peer:
    """One live connection in a room."""

    __slots__ = (
        "channel", "participant_id", "readonly", "client_id", "doc_client_id", "name", "color", "synced", "answered",
    )  # fmt: skip

    def __init__(self, channel: Channel, participant_id: str, name: str, color: str, readonly: bool) -> None:
        self.channel = channel
        self.participant_id = participant_id
        self.readonly = readonly
        self.client_id: int | None = None  # the Yjs client id its awareness speaks for
        self.doc_client_id: int | None = None  # the first client id it claimed by writing under it
        self.name = name
        self.color = color
        self.synced = False  # answered a sync request once (the first one is free)
        self.answered = False  # sent its answer to the server's sync request (its whole state; the first is free)

    @property
    def user(self) -> dict[str, str]:
        """What the awareness ``user`` field says about this peer (built on use: most peers idle)."""
        return {"name": self.name, "color": self.color, "participantId": self.participant_id}


_SERVER = ""  # owner of the room's own client id (no participant id is empty)
_ENDED = p.auth_message(p.AuthType.PERMISSION_DENIED, p.SESSION_ENDED)
_REOPENED = p.auth_message(p.AuthType.PERMISSION_GRANTED, p.SESSION_REOPENED)


@contextmanager
def _changes(doc: Doc[Any]) -> Iterator[list[bytes]]:
    """The updates of the transactions made on ``doc`` inside the block that changed it (an applied update the
    document already held makes an empty one, ``b"\\x00\\x00"``). Observed only for the block: a permanent
    observer would have pycrdt encode every transaction of the room."""
    updates: list[bytes] = []

    def collect(event: TransactionEvent) -> None:
        if len(event.update) > 2:
            updates.append(event.update)

    subscription = doc.observe(collect)
    try:
        yield updates
    finally:
        doc.unobserve(subscription)


class Room:
    """The live state of one session in this process. With several processes (see ``cluster.py``) each holds a
    room of the session: what one accepts it publishes through its ``Fanout`` and the others apply
    (:meth:`apply_remote`, never storing it); awareness, seats and client-id ownership cross the same way.

    **Who may write under a Yjs client id.** Yrs takes any struct at face value: a GC struct a million clocks
    long under someone's client id moves that client's clock past everything it will type, and its next edits
    are dropped everywhere as duplicates (it is muted, silently). So the room remembers, while it is loaded,
    which participant each client id belongs to (at most ``max_client_ids_per_participant`` per participant,
    least recently used forgotten first; the room's own id belongs to the server), and an update that *adds*
    structs under an id belonging to another participant is refused (4400) before it is applied, stored or
    relayed. Structs the document already holds (the block ends at or below its state vector) are harmless
    duplicates and always pass; delete sets belong to nobody (anyone may delete). Ownership is per participant,
    not per connection: a reconnecting client may overlap with its old socket, and one person's tabs cannot
    harm each other.

    An id nobody owns is claimed (it has not been seen since the room was loaded, or it was forgotten):

    - by the connection's awareness, the first id it announces that no other connection holds, so an id is
      protected as soon as it is public, before its client has typed (viewers claim nothing);
    - by an update message: clients publish only their own edits that way;
    - by a sync step 2 only when the connection has no id yet and the reply adds structs under exactly one
      unowned id: that is the client's own offline work. A step 2 may also carry other people's structs that the
      server lost in a crash (nobody owns anything in a reloaded room), so it is applied but claims nothing
      else; the owners claim their ids when they come back.

    What cannot be told apart: after a reload (crash, or an unload once everyone left) the history's client ids
    belong to nobody, so whoever first announces or extends one of them owns it, a returning client with offline
    edits or someone who copied its id from the history alike. The id's real client is then refused (4400)
    until it reloads its page (a new id); nothing it had stored is lost. Keeping ownership across reloads would
    need it stored with the document.
    """

    def __init__(
        self, session_id: str, shared: SharedDoc, log_: UpdateStore, limits: RoomLimits, *, stored_rows: int,
        stored_bytes: int, fallback_language: str, fallback_title: str, fanout: Fanout | None = None,
    ) -> None:
        self.session_id = session_id
        self.shared = shared
        self.limits = limits
        self.peers: dict[Peer, None] = {}
        self.awareness = RoomAwareness(
            limits.max_awareness_state_bytes,
            live_output_max_bytes=limits.live_output_max_bytes,
            live_output_max_pieces=limits.live_output_max_pieces,
        )
        self.leases = 0  # peers plus REST calls using the room; at 0 the room may unload
        self.unloading: asyncio.Task[None] | None = None
        self.unload_timer: asyncio.TimerHandle | None = None
        self.rows_since_snapshot = stored_rows
        self.doc_bytes = stored_bytes
        self.compacting = False
        self.dirty = False  # changed since the sessions row was last mirrored
        self.changed_at: float | None = None  # time.time() of the last change
        self.fallback_language = fallback_language
        self.fallback_title = fallback_title
        self._log = log_
        self._last_commit: asyncio.Future[None] | None = None
        # An upper bound of the text's UTF-8 size: grown by what each update may insert, measured exactly
        # only near the limit. Measuring it on every update cost a pycrdt transaction per message.
        self._text_bytes_bound = shared.text_bytes()
        self._owners: dict[int, str] = {int(shared.doc.client_id): _SERVER}
        self._ids_of: dict[str, OrderedDict[int, None]] = {}  # per participant, least recently used first
        # Upper bounds of the document's clock per client id (see _clock_bounds), kept up to date per update:
        # parsing a state vector of 10,000 clients took 9 ms, too much to repeat for every update.
        self._clocks: dict[int, int] | None = None
        self._reply: tuple[bytes, bytes] | None = None  # (state vector, the step 2 answering it), until a change
        self._read_view: tuple[str, str, str] | None = None  # see read_view; dropped with _reply
        # The other processes holding this session (None: this is the only one, and nothing is published).
        self._fanout = fanout
        self._remote_seats: dict[str, tuple[tuple[str, bool], ...]] = {}  # per other process, its connections
        # When the owner ended the session (None: open): every connection is read-only meanwhile, whatever its
        # role (see :meth:`set_ended`).
        self.ended_at: datetime | None = None
        # Told of the run records a peer's update added to ``runs`` (after it is applied, relayed and stored), so
        # the registry can take them out again where the session's policy lets no code run. The policy is not
        # known here: the check reads it, and only when a client writes a run record, which is rare.
        self.on_client_runs: Callable[[Room, list[Any]], None] | None = None
        self._peer_applying = False
        self._client_runs: list[Any] = []
        # Fires only for transactions that change ``runs``: a keystroke costs nothing more (measured).
        shared.runs.observe(self._runs_changed)

    # --- peers ----------------------------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        self.peers[peer] = None
        if self._fanout is not None:
            self._fanout.presence(self.session_id, self.local_seats())
        peer.channel.send(p.sync_step1(self.shared.doc.get_state()))
        if self.doc_bytes <= self.limits.greeting_document_bytes:
            # The whole document unasked (a step 2 is an update to apply, whoever asked): the peer is in sync
            # one round trip sooner than by the answer to its own request, which then finds little to send. A
            # large document waits for that request, whose state vector spares a returning client what it has.
            peer.channel.send(self._sync_answer(p.EMPTY_STATE_VECTOR))
        states = self.awareness.snapshot()
        if states is not None:
            peer.channel.send(p.awareness_message(states))
        if self.ended:
            peer.channel.send(_ENDED)

    def leave(self, peer: Peer) -> None:
        if self.peers.pop(peer, 0) is None:
            gone = self.awareness.remove(peer)
            if gone is not None:
                self._broadcast(p.awareness_message(gone), None)
            fanout = self._fanout
            if fanout is not None:
                if gone is not None:
                    fanout.awareness(self.session_id, gone)
                fanout.presence(self.session_id, self.local_seats())

    def retire(self) -> None:
        """The session is being deleted: from now on nothing of this room reaches the other processes (its peers'
        departures included, which would bring the session's Redis keys back)."""
        self._fanout = None

    def local_seats(self) -> tuple[tuple[str, bool], ...]:
        """This process's connections to the room: (participant id, read-only) each."""
        return tuple((peer.participant_id, peer.readonly) for peer in self.peers)

    def seats(self) -> list[tuple[str, bool]]:
        """Every connection to the session, in any process (the others' as they last renewed them)."""
        seats = [(peer.participant_id, peer.readonly) for peer in self.peers]
        for remote in self._remote_seats.values():
            seats.extend(remote)
        return seats

    def online_participants(self) -> frozenset[str]:
        """The participants connected to the session in any process."""
        here = frozenset(peer.participant_id for peer in self.peers)
        if not self._remote_seats:
            return here
        return here.union(pid for remote in self._remote_seats.values() for pid, _ in remote)

    # --- the owner's controls --------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def set_ended(self, ended_at: datetime | None) -> bool:
        """End the session (every connection read-only from this call on: no peer update is applied, relayed or
        stored after it) or reopen it (None); the peers are told with an auth message. Returns whether the
        session went from open to ended or back.

        Stock y-websocket clients log the "permission denied" and stay connected (their edits made meanwhile stay
        theirs, as a viewer's do); a close would either stop them for good (44xx) or reconnect them into the same
        state. Awareness goes on: people can still point at the code."""
        was = self.ended
        self.ended_at = ended_at
        if was == self.ended:
            return False
        self._broadcast(_ENDED if was is False else _REOPENED, None)
        return True

    def expel(self, participant_id: str, reason: str) -> int:
        """Close every connection here of a participant the owner removed (4403); each leaves as on any close,
        which removes its awareness for the others. Returns how many were closed."""
        peers = [peer for peer in self.peers if peer.participant_id == participant_id]
        for peer in peers:
            peer.channel.close(CloseCode.FORBIDDEN, reason)
        return len(peers)

    # --- messages from peers ------------------------------------------------------------------------------

    def receive(self, peer: Peer, data: bytes) -> None:
        """Handle one message; raises :class:`ProtocolViolation` when the peer must be disconnected."""
        try:
            msg = p.parse_message(data)
            if msg.type == MessageType.SYNC:
                if msg.sync_type == SyncType.STEP1:
                    peer.channel.send(self._sync_reply(peer, msg.payload))
                elif not peer.readonly and not self.ended:
                    # An update message goes to the others as it came (if encoded as y-protocols encodes it); a
                    # step 2 is passed on as an update.
                    if msg.sync_type == SyncType.UPDATE:
                        self._apply_from(peer, msg.payload, data if p.encoded_as_sent(data, msg.payload) else None)
                    else:
                        self._apply_from(peer, msg.payload, None, reply=True)
                # A viewer's updates are dropped: it may watch, not edit; so is everyone's once the session ended.
            elif msg.type == MessageType.AWARENESS:
                announced = peer.client_id
                relay = self.awareness.apply(peer, msg.payload, self._owners.get)
                if announced is None and peer.client_id is not None and not peer.readonly:
                    self._claim(peer.participant_id, peer.client_id)
                if relay is not None:
                    # What the others receive is charged to the sender's message rate by its size: a state can
                    # be 16 KiB of cursor and live output, and at the plain message rate one client could make
                    # the server send megabytes a second to everyone in the room. A cursor move costs a fifth of
                    # a message more; the page's live output (4 KiB four times a second) 16 messages a second.
                    peer.channel.charge(len(relay) / self.limits.awareness_bytes_per_message)
                    # Relayed to the sender too: a lone stock client needs traffic to stay connected.
                    self._broadcast(p.awareness_message(relay), None)
                    if self._fanout is not None:
                        self._fanout.awareness(self.session_id, relay)
            elif msg.type == MessageType.QUERY_AWARENESS:
                states = self.awareness.snapshot()
                if states is not None:
                    # A one-byte question answered with every state of the room (up to 100 x 16 KiB): charged
                    # like a relayed state, by size.
                    peer.channel.charge(len(states) / self.limits.awareness_bytes_per_message)
                    peer.channel.send(p.awareness_message(states))
        except MalformedMessage as exc:
            raise ProtocolViolation(CloseCode.BAD_MESSAGE, f"malformed message: {exc}") from exc

    def _sync_reply(self, peer: Peer, state_vector: bytes) -> bytes:
        """The step 2 answering ``state_vector``; the last one is kept (by reference) until the document changes.

        A four-byte request can make the room encode the whole document (up to ``max_document_bytes``), so
        past a peer's first, an answer that had to be encoded is charged to its message rate by its size: a
        peer asking again and again for a large document (with a new state vector each time, so the cache never
        answers) is slowed down, then closed with 4429 like any flood. Stock clients ask once a connection."""
        reply = self._reply
        if reply is not None and reply[0] == state_vector:
            return reply[1]
        p.parse_state_vector(state_vector)  # validated before Yrs decodes it
        message = self._sync_answer(state_vector)
        if peer.synced:
            # The request is parsed and the answer encoded: both cost in proportion to their size.
            peer.channel.charge((len(message) + len(state_vector)) / self.limits.sync_bytes_per_message)
        peer.synced = True
        return message

    def _sync_answer(self, state_vector: bytes) -> bytes:
        """The step 2 answering a valid ``state_vector``, kept (by reference) until the document changes."""
        reply = self._reply
        if reply is not None and reply[0] == state_vector:
            return reply[1]
        message = p.sync_step2(self.shared.doc.get_update(state_vector))
        self._reply = (state_vector, message)
        return message

    def _apply_from(self, peer: Peer, update: bytes, message: bytes | None, *, reply: bool = False) -> None:
        info = inspect_update(update)
        if info.is_empty:
            return
        claims = self._authorship(peer, info.blocks, reply) if info.blocks else ()
        if info.parents:
            self._require_parents(info.parents, info.blocks)
        if info.string_bytes:
            self._grow_text(info.string_bytes)
        if self.doc_bytes + len(update) > self.limits.max_document_bytes:
            raise ProtocolViolation(
                CloseCode.TOO_LARGE, f"the document would exceed {self.limits.max_document_bytes} bytes"
            )
        # Counted before applying: an update whose dependencies are missing changes nothing visible (Yrs
        # parks it), yet it occupies memory; counting every peer update keeps that bounded too.
        self.doc_bytes += len(update)
        # Applying costs in proportion to the update's size: large updates are charged to the sender's rate,
        # except a connection's first answer to the server's sync request, which may carry a whole document
        # (a client back from offline), as the server's first answer to it is free.
        if reply and not peer.answered:
            peer.answered = True
        else:
            peer.channel.charge(len(update) / self.limits.update_bytes_per_message)
        started = time.perf_counter()
        self._reply = self._read_view = None
        self._peer_applying = True
        try:
            self.shared.doc.apply_update(update)
        except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
            raise
        except BaseException as exc:
            # A panic inside Yrs reaches Python as pyo3's PanicException, which is not an Exception: the
            # validator should make it impossible, and if it happens it is this peer's update that caused it.
            self._clocks = None  # whatever Yrs kept of it: read the clocks afresh
            raise ProtocolViolation(CloseCode.BAD_MESSAGE, "the update could not be applied") from exc
        finally:
            self._peer_applying = False
        clocks = self._clocks
        if clocks is not None:
            for client, _first, end in info.blocks:
                if end > clocks.get(client, 0):
                    clocks[client] = end
        for client in claims:
            self._claim(peer.participant_id, client)
            if peer.doc_client_id is None:
                peer.doc_client_id = client
        elapsed = time.perf_counter() - started
        if elapsed > self.limits.slow_update_seconds:
            # Validation should make this impossible; if it happens, cut the sender off and say so.
            log.warning("an update of %d bytes took %.2f s to apply; closing its connection", len(update), elapsed)
            raise ProtocolViolation(CloseCode.BAD_MESSAGE, "the update took too long to apply")
        # Relayed and stored even if it changed nothing yet (its dependencies missing): Yrs keeps it and
        # applies it once they arrive, and so must the log and the other peers.
        self._record(update, message if message is not None else p.sync_update(update), peer, claims)
        if self._client_runs:
            added, self._client_runs = self._client_runs, []
            if self.on_client_runs is not None:
                self.on_client_runs(self, added)

    def _runs_changed(self, event: ArrayEvent) -> None:
        if self._peer_applying:
            # ``delta`` is documented (the class's attributes) but declared only in ``__slots__``.
            delta: list[dict[str, Any]] = event.delta  # type: ignore[attr-defined]
            for step in delta:
                inserted = step.get("insert")
                if inserted:
                    self._client_runs.extend(inserted)

    def _authorship(self, peer: Peer, blocks: tuple[tuple[int, int, int], ...], reply: bool) -> list[int]:
        """Refuse structs added under another owner's client id; return the unowned ids the sender claims.

        See the class docstring for the rules. The state vector is read only for ids the sender does not own:
        the common case, an owner typing, costs a dictionary lookup per client block."""
        me = peer.participant_id
        unowned: list[int] = []
        clocks: dict[int, int] | None = None
        for client, _first, end in blocks:
            owner = self._owners.get(client)
            if owner == me:
                self._ids_of[me].move_to_end(client)
                continue
            if clocks is None:
                clocks = self._clock_bounds()
            if end <= clocks.get(client, 0):
                continue  # already in the document: a duplicate says nothing about who wrote it
            if owner is not None:
                raise ProtocolViolation(
                    CloseCode.BAD_MESSAGE, "the update writes under a client id that belongs to someone else"
                )
            unowned.append(client)
        if reply and (len(unowned) != 1 or peer.client_id is not None or peer.doc_client_id is not None):
            return []  # restoring history (maybe other people's): claims nothing
        return unowned

    def _claim(self, participant: str, client: int) -> None:
        if client in self._owners:
            return
        ids = self._ids_of.setdefault(participant, OrderedDict())
        ids[client] = None
        self._owners[client] = participant
        if len(ids) > self.limits.max_client_ids_per_participant:
            forgotten, _ = ids.popitem(last=False)
            del self._owners[forgotten]

    def _require_parents(
        self, parents: tuple[tuple[int, int], ...], blocks: tuple[tuple[int, int, int], ...]
    ) -> None:
        """Refuse an item whose parent item is neither in the document nor in the same update.

        Yrs would park it until that item arrives; if the item it waits for is someone else's next keystroke
        (plain text, not a type), that keystroke's update then fails to apply and its author, not this
        sender, would be closed: one parked struct per keystroke would keep any editor out. Stock clients
        name a parent item only for nested types they have (created by them or received from the server).
        """
        bounds = self._clock_bounds()
        for client, clock in parents:
            if clock < bounds.get(client, 0):
                continue
            if any(c == client and first <= clock < end for c, first, end in blocks):
                continue
            raise ProtocolViolation(CloseCode.BAD_MESSAGE, "an item whose parent is not in the document")

    def _clock_bounds(self) -> dict[int, int]:
        """Per client id, the end of the structs the document holds or has been given.

        Read from the state vector, then raised by the end of every client block applied. That is an upper
        bound of the state vector: structs Yrs parks (their dependencies missing) count as held. Under an id
        someone owns, only its owner adds structs, so they can be parked only if its owner's own update was;
        a legitimate client never sends that outside a crash, when nobody owns anything yet. Structs that were
        parked in the stored log when the room loaded are not counted: blocks over them are taken for new.
        """
        if self._clocks is None:
            self._clocks = p.parse_state_vector(self.shared.doc.get_state())
        return self._clocks

    def _grow_text(self, inserted: int) -> None:
        limit = self.limits.max_code_bytes
        bound = self._text_bytes_bound + inserted
        if bound > limit:
            bound = self.shared.text_bytes() + inserted
            if bound > limit:
                raise ProtocolViolation(CloseCode.TOO_LARGE, f"the code would exceed its limit of {limit} bytes")
        self._text_bytes_bound = bound

    # --- every change, from anywhere -----------------------------------------------------------------------

    def change(self, edit: Callable[[SharedDoc], object], tag: str | None = None) -> None:
        """Make the server's own edit of the document, as one transaction relayed and stored like a peer's (with no
        author; ``tag`` names it in the history where the change alone does not, e.g. ``restore``)."""
        doc = self.shared.doc
        try:
            with _changes(doc) as updates, doc.transaction():
                edit(self.shared)
        finally:
            self._reply = self._read_view = None
            self._clocks = None  # rare (REST writes, run output): read afresh when next needed
        for update in updates:
            self.doc_bytes += len(update)
            self._record(update, p.sync_update(update), None, tag=tag)
        self._text_bytes_bound = self.shared.text_bytes()

    def _record(
        self, update: bytes, message: bytes, origin: Peer | None, claims: tuple[int, ...] | list[int] = (),
        tag: str | None = None,
    ) -> None:
        self._broadcast(message, origin)
        if origin is None:
            TALLY.server_updates += 1
            TALLY.relayed_updates += len(self.peers)
        else:
            TALLY.client_updates += 1
            TALLY.relayed_updates += len(self.peers) - 1  # every peer but its sender
        author = None if origin is None else origin.participant_id
        if self._fanout is not None:
            self._fanout.update(self.session_id, update, author, tuple(claims))
        # Stored here, by the process that accepted it, with its author; other processes only apply it.
        self._last_commit = self._log.append(self.session_id, update, author, tag)
        self.rows_since_snapshot += 1
        self.dirty = True
        self.changed_at = time.time()

    def _broadcast(self, message: bytes, skip: Peer | None) -> None:
        for peer in self.peers:
            if peer is not skip:
                peer.channel.send(message)

    async def committed(self) -> None:
        """Wait until every change made so far is in the update log."""
        if self._last_commit is not None:
            await asyncio.shield(self._last_commit)

    # --- what other processes accepted (see cluster.py) ------------------------------------------------------

    def apply_remote(self, update: bytes, author: str | None, claims: tuple[int, ...] = ()) -> None:
        """Apply an update another process accepted (and validated), relay it to the peers here; never store it:
        its origin does. Raises MalformedMessage for bytes that are not an update (the caller heals instead).

        The client ids its origin gave its author by it (``claims``, by the rules of the class docstring) become
        the author's here too, unless someone here holds them already: nobody connected to this process can
        write under them, and the author may reconnect here."""
        info = inspect_update(update)
        if info.is_empty:
            return
        if author is not None:
            for client in claims:
                self._claim(author, client)
        self._reply = self._read_view = None
        clocks = self._clock_bounds()
        # A replayed entry (the stream read on top of the log when the room loaded, or again after a reconnect)
        # holds structs the document has already: not counted again towards its size.
        fresh = not info.blocks or any(end > clocks.get(client, 0) for client, _first, end in info.blocks)
        self.shared.doc.apply_update(update)
        for client, _first, end in info.blocks:
            if end > clocks.get(client, 0):
                clocks[client] = end
        if fresh:
            self._text_bytes_bound += info.string_bytes
            self.doc_bytes += len(update)
        # Not dirty: the session row's copy of the text is its origin's to write (it holds the room too).
        self.changed_at = time.time()
        self._broadcast(p.sync_update(update), None)
        TALLY.cluster_updates += 1
        TALLY.relayed_updates += len(self.peers)

    def remote_awareness(self, origin: str, payload: bytes) -> None:
        relay, announced = self.awareness.apply_remote(origin, payload, self._owners.get)
        for client, participant in announced:
            self._claim(participant, client)
        if relay is not None:
            self._broadcast(p.awareness_message(relay), None)

    def remote_presence(self, origin: str, seats: tuple[tuple[str, bool], ...]) -> None:
        if seats:
            self._remote_seats[origin] = seats
        else:
            self._remote_seats.pop(origin, None)

    def origin_gone(self, origin: str) -> None:
        self._remote_seats.pop(origin, None)
        gone = self.awareness.drop_origin(origin)
        if gone is not None:
            self._broadcast(p.awareness_message(gone), None)

    def merge_stored(self, updates: list[bytes]) -> None:
        """Apply stored updates this room may miss (written by other processes), relaying what they add to the
        peers here as one update. Updates the document holds already change nothing."""
        doc = self.shared.doc
        with _changes(doc) as added:
            for update in updates:
                doc.apply_update(update)
        self._reply = self._read_view = None
        self._clocks = None
        self._text_bytes_bound = self.shared.text_bytes()
        for update in added:
            self.doc_bytes += len(update)
            self.dirty = True
            self.changed_at = time.time()
            self._broadcast(p.sync_update(update), None)
            # What other processes stored and this room missed: their updates, reaching it through the log.
            TALLY.cluster_updates += 1
            TALLY.relayed_updates += len(self.peers)

    def fold(self, stored: list[bytes]) -> bytes:
        """The snapshot replacing ``stored`` rows when other processes append to the same log: the document
        with those rows merged in, so it holds every row it replaces even if one was not relayed here yet."""
        self.merge_stored(stored)
        return self.shared.doc.get_update()

    async def heal(self) -> None:
        stored = await self._log.load(self.session_id)
        self.merge_stored(stored.updates)

    async def rescue(self) -> None:
        """Store what this room holds that the log misses: updates an origin that died had relayed but not
        committed. Compared by content (an update the log has is not stored twice); deletions count, as the
        state vector does not show them."""
        await self._log.flush()
        stored = await self._log.load(self.session_id)
        logged: Doc[Any] = Doc()
        for update in stored.updates:
            logged.apply_update(update)
        with _changes(logged) as added:
            logged.apply_update(self.shared.doc.get_update(logged.get_state()))
        for update in added:
            self._last_commit = self._log.append(self.session_id, update)
            self.rows_since_snapshot += 1
        await self.committed()

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
        # The rule REST applies to titles (length, characters), so no path can store what REST would refuse.
        title = self.shared.title()
        if title is not None and is_valid_title(title, self.limits.max_title_length):
            self.fallback_title = title
        return self.fallback_title

    def read_view(self) -> tuple[str, str, str]:
        """Code, language and title as a REST read answers them; kept until the document next changes (each of
        the three is a read of the document, and a loaded session is read far more often than it changes)."""
        view = self._read_view
        if view is None:
            view = self._read_view = (self.shared.text(), self.language(), self.title())
        return view

    @property
    def updated_at(self) -> datetime | None:
        return None if self.changed_at is None else datetime.fromtimestamp(self.changed_at, UTC)

    def mirror(self) -> Mirror:
        self.dirty = False
        return Mirror(
            code=self.shared.text(),
            language=self.language(),
            title=self.title(),
            updated_at=self.updated_at or datetime.now(UTC),
        )
