"""The rooms of this process: loading (race-free), unloading after a grace period, compaction, presence.

A room is created by the first connection or REST write that needs it; concurrent first users share one
load. When the last user leaves, the room stays for ``room_unload_grace_seconds``, then its changes are
flushed, its log compacted and it is dropped from memory. Shutdown flushes every room.

With other processes serving the same sessions (``cluster``), a loading room also reads what they relayed
recently and starts hearing what they relay, and compaction replaces only the rows it read (they may append
meanwhile; see ``BatchWriter.compact_rows``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect import metrics
from codeconnect.collab.auth import Authenticate, Participant
from codeconnect.collab.cluster import Cluster, LocalCluster
from codeconnect.collab.document import SharedDoc, initial_update
from codeconnect.collab.records import NewSession, SessionCardRecord, StoredDoc, StoredSession
from codeconnect.collab.room import Room, RoomLimits
from codeconnect.collab.store import UpdateLog
from codeconnect.config import Settings
from codeconnect.errors import ServiceUnavailable, SessionNotFound
from codeconnect.models import ParticipantRow, SessionRow
from codeconnect.security import hash_secret

log = logging.getLogger(__name__)

_READ_CHUNK = 500  # sessions read again in one statement after a gap
_MIRROR_SLICE_SECONDS = 0.0005  # longest stretch the mirror pass holds the event loop
# The other processes' news of the owner's controls (``cluster.share``).
_STATE_TOPIC = "session-state"  # JSON [session id, when it ended (ISO 8601) or null (reopened)]
_REMOVED_TOPIC = "participant-removed"  # session id NUL participant id NUL token hash


@runtime_checkable
class _Closable(Protocol):
    """A peer's channel that can end its connection (every transport's does)."""

    def close(self, code: int, reason: str) -> None: ...


class RoomRegistry:
    """Every loaded room of this process. Implements the presence view and the run sink of the app."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        log_: UpdateLog,
        authenticate: Authenticate,
        cluster: Cluster | None = None,
        runs_allowed: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """The store (``log_``), the token check and the other processes (``cluster``) are chosen when the app
        is wired; the registry enters and exits the log and the cluster. ``runs_allowed`` says whether a session
        may hold run records its clients write (None: always): those it may not are taken out again."""
        self.settings = settings
        self.cluster: Cluster = cluster if cluster is not None else LocalCluster()
        self._sessionmaker = sessionmaker
        self._authenticate = authenticate
        self._runs_allowed = runs_allowed
        self.log = log_
        self.db_lock = log_.lock
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Task[Room]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # A token, once verified, stays valid until the owner removes its participant (see :meth:`remove`, which
        # drops it here and on every other process).
        self._auth_cache: OrderedDict[str, tuple[str, Participant]] = OrderedDict()
        # Participants removed lately: a check of their token that read the row before it was deleted must not
        # admit them afterwards (bounded like the token cache; past it, the row's absence answers).
        self._removed: OrderedDict[str, None] = OrderedDict()
        # Kept even with the token cache off (0): the race it closes is there whether tokens are cached or not.
        self._removed_kept = max(settings.ws_auth_cache_entries, 1024)
        # Moved by every end or reopen heard here: a room loading meanwhile reads its session's state again.
        self._state_epoch = 0
        self._mirror_task: asyncio.Task[None] | None = None
        # Sessions created here whose room has not loaded yet: their stored document is known without a read.
        self._new_docs: OrderedDict[str, StoredDoc] = OrderedDict()
        self._new_docs_bytes = 0
        # Sessions whose clients' run records are being checked against the policy, with the records to check.
        self._runs_checks: dict[str, list[Any]] = {}
        self.cluster.listen(_STATE_TOPIC, self._apply_shared_state)
        self.cluster.listen(_REMOVED_TOPIC, self._apply_shared_removal)
        self.cluster.on_gap(self._after_gap)
        self.limits = RoomLimits(
            max_code_bytes=settings.max_code_bytes,
            max_document_bytes=settings.max_document_bytes,
            max_awareness_state_bytes=settings.max_awareness_state_bytes,
            max_title_length=settings.max_title_length,
            compact_after_updates=settings.compact_after_updates,
            slow_update_seconds=settings.slow_update_close_seconds,
            max_client_ids_per_participant=settings.max_client_ids_per_participant,
            sync_bytes_per_message=settings.ws_sync_bytes_per_message,
            greeting_document_bytes=settings.ws_greeting_document_bytes,
            update_bytes_per_message=settings.ws_update_bytes_per_message,
            awareness_bytes_per_message=settings.ws_awareness_bytes_per_message,
            live_output_max_bytes=settings.live_output_max_bytes,
            live_output_max_pieces=settings.live_output_max_pieces,
        )

    async def __aenter__(self) -> RoomRegistry:
        await self.log.__aenter__()
        await self.cluster.__aenter__()
        self._mirror_task = asyncio.create_task(self._mirror_loop(), name="room-mirror")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._mirror_task is not None:
            self._mirror_task.cancel()
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
        try:
            for room in list(self.rooms.values()):
                if room.unload_timer is not None:
                    room.unload_timer.cancel()
                try:
                    await self._flush(room, compact=True)
                except ServiceUnavailable:
                    # Already logged by the log's writer; the other rooms still get their flush, and the log
                    # its last attempts below.
                    pass
            metrics.ROOMS_LOADED.dec(len(self.rooms))
            self.rooms.clear()
        finally:
            try:
                await self.cluster.__aexit__(*exc)
            finally:
                await self.log.__aexit__(*exc)

    # --- auth ------------------------------------------------------------------------------------------

    def issued(self, session_id: str, token: str, participant: Participant) -> None:
        """Remember a token just issued here: a class that joins and connects at once is admitted from memory.
        With the connection burst on the event loop, each connection's database read waited for the loop to
        come round to its answer (S1: 6 ms at the median of 400 connections; see bench/README.md)."""
        self._remember(hash_secret(token), session_id, participant)

    def _remember(self, key: str, session_id: str, participant: Participant) -> None:
        self._auth_cache[key] = (session_id, participant)
        self._auth_cache.move_to_end(key)
        if len(self._auth_cache) > self.settings.ws_auth_cache_entries:
            self._auth_cache.popitem(last=False)

    def authorized(self, session_id: str, token: str | None) -> Participant | None:
        """The participant of ``session_id`` holding ``token`` when that is known without a read (a token issued
        or checked here lately); None when it is not known so (which proves nothing either way)."""
        key = hash_secret(token) if token and len(token) <= 256 else None
        cached = self._auth_cache.get(key) if key is not None else None
        return cached[1] if cached is not None and cached[0] == session_id else None

    async def authorize(self, session_id: str, token: str | None) -> Participant | None:
        """The participant of ``session_id`` holding ``token`` (None if not). Raises SessionNotFound."""
        key = hash_secret(token) if token and len(token) <= 256 else None
        cached = self._auth_cache.get(key) if key is not None else None
        if cached is not None and cached[0] == session_id:
            return cached[1]  # its participant row proves the session exists
        found = await self._authenticate(session_id, token) if cached is None and key and token else None
        if found is not None and found.id in self._removed:
            return None  # removed while its row was being read
        # A participant's row proves its session exists; anything else needs the session looked up, so an
        # unknown session is told apart (4404) from a bad token (4401).
        if found is None and not await self.session_exists(session_id):
            raise SessionNotFound()
        if cached is not None or found is None or key is None:
            return None  # a token of another session, or none at all
        self._remember(key, session_id, found)
        return found

    # --- the owner's controls (the REST layer decides and commits; this applies it to the live layer) ----------

    def set_ended(self, session_id: str, ended_at: datetime | None) -> None:
        """The owner ended the session at ``ended_at`` (or reopened it: None), committed: every connection here is
        read-only from now on (or may write again), and the other processes are told."""
        self._set_ended(session_id, ended_at)
        if self.cluster.shared:
            when = None if ended_at is None else ended_at.isoformat()
            self.cluster.share(_STATE_TOPIC, json.dumps([session_id, when]).encode())

    def _set_ended(self, session_id: str, ended_at: datetime | None) -> None:
        self._state_epoch += 1
        self.log.changed(session_id)  # a read of its row kept in memory says when it ended
        if ended_at is not None:
            self._new_doc(session_id)  # a room built from it would not know; its load reads the state instead
        room = self.rooms.get(session_id)
        if room is not None:
            room.set_ended(ended_at)

    def _apply_shared_state(self, event: bytes) -> None:
        session_id, when = json.loads(event)
        self._set_ended(str(session_id), None if when is None else datetime.fromisoformat(when))

    async def ended(self, session_id: str) -> bool:
        """Whether the owner ended the session (False for an unknown one): the loaded room knows, else the row."""
        room = self.peek(session_id)
        if room is not None:
            return room.ended
        return await self._ended_in_db(session_id) is not None

    async def _ended_in_db(self, session_id: str) -> datetime | None:
        async with self.db_lock, self._sessionmaker() as db:
            ended_at: datetime | None = await db.scalar(
                select(SessionRow.ended_at).where(SessionRow.id == session_id)
            )
        return ended_at

    def remove(self, session_id: str, participant_id: str, token_hash: str) -> None:
        """The owner removed a participant, committed (its row is gone): forget its token and close its connections
        with 4403, here and on every other process."""
        self._remove(session_id, participant_id, token_hash)
        if self.cluster.shared:
            self.cluster.share(_REMOVED_TOPIC, "\0".join((session_id, participant_id, token_hash)).encode())

    def was_removed(self, participant_id: str) -> bool:
        """Whether the owner removed this participant lately (its token was checked before, its seat comes after)."""
        return participant_id in self._removed

    def _remove(self, session_id: str, participant_id: str, token_hash: str) -> None:
        self._auth_cache.pop(token_hash, None)
        self._removed[participant_id] = None
        if len(self._removed) > self._removed_kept:
            self._removed.popitem(last=False)
        room = self.rooms.get(session_id)
        if room is not None:
            room.expel(participant_id, "removed by the session owner")

    def _apply_shared_removal(self, event: bytes) -> None:
        session_id, participant_id, token_hash = event.decode().split("\0")
        self._remove(session_id, participant_id, token_hash)

    def _after_gap(self) -> None:
        """The other processes' news of ends, reopens and removals may have been lost: forget every verified token
        (each is checked against the database again) and read the state of every loaded room again."""
        self._auth_cache.clear()
        self._state_epoch += 1  # a room loading now reads its state again
        self._spawn(self._recheck_rooms())

    async def _recheck_rooms(self) -> None:
        session_ids = list(self.rooms)
        for start in range(0, len(session_ids), _READ_CHUNK):
            chunk = session_ids[start : start + _READ_CHUNK]
            try:
                async with self.db_lock, self._sessionmaker() as db:
                    rows = await db.execute(select(SessionRow.id, SessionRow.ended_at).where(SessionRow.id.in_(chunk)))
                    ended = {row.id: row.ended_at for row in rows}
                    members = [
                        (row.session_id, row.id)
                        for row in await db.execute(
                            select(ParticipantRow.session_id, ParticipantRow.id).where(
                                ParticipantRow.session_id.in_(chunk)
                            )
                        )
                    ]
            except Exception as exc:  # noqa: BLE001 - logged; the next gap or a reload reads again
                log.warning("could not read the rooms' state again after a gap (%s)", type(exc).__name__)
                return
            present: dict[str, set[str]] = {}
            for session_id, participant_id in members:
                present.setdefault(session_id, set()).add(participant_id)
            for session_id in chunk:
                room = self.rooms.get(session_id)
                if room is None or session_id not in ended:
                    continue  # unloaded meanwhile, or deleted (its deletion closes it)
                room.set_ended(ended[session_id])
                here = present.get(session_id, set())
                for participant_id in {peer.participant_id for peer in room.peers} - here:
                    self._removed[participant_id] = None
                    room.expel(participant_id, "removed by the session owner")
            while len(self._removed) > self._removed_kept:
                self._removed.popitem(last=False)

    async def session_exists(self, session_id: str) -> bool:
        """Whether the session exists: the one existence check of the REST and live layers (a deletion drops the
        session's room before its rows)."""
        if self.peek(session_id) is not None:
            return True
        driver = self.log.driver
        if driver is not None:
            return await driver.session_exists(session_id)
        async with self.db_lock, self._sessionmaker() as db:
            return await db.scalar(select(SessionRow.id).where(SessionRow.id == session_id)) is not None

    async def session_card(self, session_id: str) -> SessionCardRecord | None:
        """The session's row times, read-only link and participants (None: no such session), read beside the
        update log's own work rather than through the request's unit of work."""
        driver = self.log.driver
        if driver is not None:
            return await driver.session_card(session_id)
        stored = await self.log.stored_session(session_id)
        return None if stored is None else stored.card

    async def stored_session(self, session_id: str) -> StoredSession | None:
        """The session as its row holds it (None: no such session); its text is the document's when ``exact``."""
        return await self.log.stored_session(session_id)

    async def create_session(self, new: NewSession) -> None:
        """Store a new session (returns once it is committed). Its first connection usually follows at once: its
        document is kept until its room first loads, so that load reads nothing. With other processes one of
        them may load the session and append to it first, so nothing is kept."""
        await self.log.create_session(new)
        kept = StoredDoc(new.title, new.language, new.code, [new.first_update])
        size = _kept_bytes(kept)
        if self.cluster.shared or size > self.settings.new_document_cache_bytes:
            return
        self._new_docs[new.id] = kept
        self._new_docs_bytes += size
        while self._new_docs_bytes > self.settings.new_document_cache_bytes:
            _, dropped = self._new_docs.popitem(last=False)
            self._new_docs_bytes -= _kept_bytes(dropped)

    def _new_doc(self, session_id: str) -> StoredDoc | None:
        stored = self._new_docs.pop(session_id, None)
        if stored is not None:
            self._new_docs_bytes -= _kept_bytes(stored)
        return stored

    # --- deleted sessions --------------------------------------------------------------------------------

    def retire(self, session_ids: Collection[str]) -> list[Room]:
        """Stop serving these sessions here, as they are being deleted: their updates are no longer stored (what
        waits to be is dropped: see ``UpdateLog.forget``), their loaded rooms are dropped without a flush and
        returned (their connections still open: see :meth:`evict`), and nothing of them stays in memory (the
        kept first update of a new session, the tokens checked lately). Safe to call again after the rows are
        deleted, to drop what a request racing the deletion brought back."""
        ids = set(session_ids)
        self.log.forget(ids)
        rooms: list[Room] = []
        for session_id in ids:
            self._new_doc(session_id)
            room = self.rooms.pop(session_id, None)
            if room is None:
                continue
            if room.unload_timer is not None:
                room.unload_timer.cancel()
                room.unload_timer = None
            room.retire()
            metrics.ROOMS_LOADED.dec()
            self.cluster.detach(session_id)
            rooms.append(room)
        for key in [key for key, (session_id, _) in self._auth_cache.items() if session_id in ids]:
            del self._auth_cache[key]
        return rooms

    def restore(self, session_ids: Collection[str]) -> None:
        """The deletion of these sessions failed: store their updates again (a room loads afresh on next use)."""
        self.log.restore(session_ids)

    @staticmethod
    def evict(rooms: Iterable[Room], code: int, reason: str) -> None:
        """Close every connection of these retired rooms with ``code`` (each leaves its room as it closes)."""
        for room in rooms:
            for peer in list(room.peers):
                if isinstance(peer.channel, _Closable):
                    peer.channel.close(code, reason)

    def holds(self, session_id: str) -> bool:
        """Whether the session's room is loaded here, being loaded or unloaded, or its first update kept."""
        return session_id in self.rooms or session_id in self._loading or session_id in self._new_docs

    # --- rooms -----------------------------------------------------------------------------------------

    def peek(self, session_id: str) -> Room | None:
        """The room if it is loaded (reads never load one)."""
        room = self.rooms.get(session_id)
        return room if room is not None and room.unloading is None else None

    def at_hand(self, session_id: str) -> bool:
        """Whether :meth:`acquire_now` would return the room: it is loaded, or built from memory on the spot."""
        if session_id in self.rooms:
            return self.rooms[session_id].unloading is None
        return session_id in self._new_docs and session_id not in self._loading

    def acquire_now(self, session_id: str) -> Room | None:
        """:meth:`acquire` without waiting: the loaded room, or one built now from the first update of a session
        created here (see :meth:`create_session`; kept only without other processes, so there is no cluster to
        attach it to); None when getting the room would wait. The caller must :meth:`release` a room it gets."""
        if not self.at_hand(session_id):
            return None
        room = self.rooms.get(session_id)
        if room is None:
            stored = self._new_doc(session_id)
            assert stored is not None and stored.updates and not self.cluster.shared
            room = self._build(session_id, stored)
            self.maybe_compact(room)
        room.leases += 1
        if room.unload_timer is not None:
            room.unload_timer.cancel()
            room.unload_timer = None
        return room

    async def acquire(self, session_id: str) -> Room:
        """The loaded room of ``session_id``, loading it if needed; the caller must :meth:`release` it."""
        while True:
            # Built now if everything is at hand, not in a task of its own, whose turn would come only after a
            # whole turn of the event loop (under a burst of connections, tens of milliseconds).
            room = self.acquire_now(session_id)
            if room is not None:
                return room
            room = self.rooms.get(session_id)
            if room is not None and room.unloading is not None:
                await asyncio.shield(room.unloading)
                continue
            task = self._loading.get(session_id)
            if task is None:
                task = asyncio.create_task(self._load(session_id))
                self._loading[session_id] = task
                task.add_done_callback(self._loaded)
            await asyncio.shield(task)

    def _loaded(self, task: asyncio.Task[Room]) -> None:
        for session_id, loading in list(self._loading.items()):
            if loading is task:
                del self._loading[session_id]

    def release(self, room: Room) -> None:
        room.leases -= 1
        if room.leases == 0 and room.unloading is None and room.unload_timer is None:
            room.unload_timer = asyncio.get_running_loop().call_later(
                self.settings.room_unload_grace_seconds, self._start_unload, room
            )

    @asynccontextmanager
    async def use(self, session_id: str) -> AsyncIterator[Room]:
        room = await self.acquire(session_id)
        try:
            yield room
        finally:
            self.release(room)

    async def _load(self, session_id: str) -> Room:
        # Taken before the log is read: what other processes relay from here on, committed or not, is replayed.
        mark = await self.cluster.mark()
        stored = self._new_doc(session_id)
        from_log = stored is None
        if stored is None:
            stored = await self.log.load(session_id)
        if self.log.is_gone(session_id):
            raise SessionNotFound()  # deleted while it was read
        if not stored.updates:
            # A session from before live editing: its text becomes the first update, once.
            first = initial_update(stored.code, stored.language, stored.title)
            await self.log.append(session_id, first)
            stored = replace(stored, updates=[first])
        ended_at = None
        epoch = -1
        # Read again if an end or a reopen was heard meanwhile (it may have been committed after the read); once
        # the room is built, what is heard reaches it directly. A session created here and never ended has none.
        while from_log and epoch != self._state_epoch:
            epoch = self._state_epoch
            ended_at = await self._ended_in_db(session_id)
        room = self._build(session_id, stored)
        room.ended_at = ended_at
        await self.cluster.attach(room, mark)
        self.maybe_compact(room)
        return room

    def _build(self, session_id: str, stored: StoredDoc) -> Room:
        """The room of ``stored`` (which holds at least one update), registered as loaded."""
        shared = SharedDoc()
        for data in stored.updates:
            shared.doc.apply_update(data)
        rows, size = len(stored.updates), sum(len(u) for u in stored.updates)
        room = Room(
            session_id, shared, self.log, self.limits, stored_rows=rows, stored_bytes=size,
            fallback_language=stored.language, fallback_title=stored.title,
            fanout=self.cluster if self.cluster.shared else None,
        )
        if self._runs_allowed is not None:
            room.on_client_runs = self._client_runs
        # The row's copy trails the log after a crash between a commit and the next copy: refresh it.
        room.dirty = (room.shared.text(), room.language(), room.title()) != (stored.code, stored.language, stored.title)
        self.rooms[session_id] = room
        metrics.ROOMS_LOADED.inc()
        return room

    def _start_unload(self, room: Room) -> None:
        room.unload_timer = None
        if room.leases == 0 and room.unloading is None and self.rooms.get(room.session_id) is room:
            room.unloading = self._spawn(self._unload(room))

    async def _unload(self, room: Room) -> None:
        try:
            await self._flush(room, compact=True)
            if not self.cluster.shared:
                # Everything of the session is stored and nothing more can reach it before it is dropped here
                # (a new user waits for this unload): its row's text is now exact until the log moves on. With
                # other processes, one may have stored rows this document has not heard of yet.
                await self.log.seal(room.session_id, room.mirror())
        finally:
            if self.rooms.get(room.session_id) is room:
                del self.rooms[room.session_id]
                metrics.ROOMS_LOADED.dec()
                self.cluster.detach(room.session_id)

    async def _flush(self, room: Room, *, compact: bool) -> None:
        if room.dirty:
            self.log.mirror(room.session_id, room.mirror())
        await self.log.flush()
        if compact and room.rows_since_snapshot > 1:
            await self._compact(room)

    def maybe_compact(self, room: Room) -> None:
        if room.needs_compaction():
            room.compacting = True
            self._spawn(self._compact(room))

    async def _compact(self, room: Room) -> None:
        room.compacting = True
        try:
            await self.log.flush()
            rows_before = room.rows_since_snapshot
            if self.cluster.shared:
                merged = await self.log.compact(room.session_id, fold=room.fold)
            else:
                merged = await self.log.compact(room.session_id, room.shared.doc.get_update)
            size = merged or room.doc_bytes
            # Updates that arrived meanwhile stay separate rows after the snapshot.
            room.rows_since_snapshot = max(1, room.rows_since_snapshot - rows_before + 1)
            room.doc_bytes = size
            metrics.COMPACTIONS.labels("compacted" if merged else "skipped").inc()
        except Exception:
            if self.log.is_gone(room.session_id):
                # Deleted while it compacted: its snapshot found no session row to belong to. Nothing to keep.
                metrics.COMPACTIONS.labels("skipped").inc()
                return
            metrics.COMPACTIONS.labels("failed").inc()
            log.exception("compacting the update log of a session failed; it stays uncompacted")
        finally:
            room.compacting = False

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _mirror_loop(self) -> None:
        """Copy changed documents into their session rows now and then, so reads without a room are fresh.

        Reading a document costs tens of microseconds; done for hundreds of rooms in one go it held the event
        loop for milliseconds once per interval, which was the fan-out latency's worst tail. The pass works in
        slices of ``_MIRROR_SLICE_SECONDS`` and lets live messages through between them.
        """
        while True:
            await asyncio.sleep(self.settings.mirror_interval_seconds)
            # Not the loop's clock: uvloop's advances only between iterations.
            started = time.perf_counter()
            for room in list(self.rooms.values()):
                if time.perf_counter() - started > _MIRROR_SLICE_SECONDS:
                    await asyncio.sleep(0)
                    started = time.perf_counter()
                if room.dirty:
                    self.log.mirror(room.session_id, room.mirror())
                self.maybe_compact(room)

    # --- presence and run output (app-wide contracts) ------------------------------------------------------

    def online_participants(self, session_id: str) -> frozenset[str]:
        """Who is connected, when the room is loaded here (a room that is not is nobody's in one process)."""
        room = self.rooms.get(session_id)
        return room.online_participants() if room is not None else frozenset()

    async def online(self, session_id: str) -> frozenset[str]:
        """Who is connected to the session on any process, whether its room is loaded here or not."""
        room = self.rooms.get(session_id)
        if room is not None:
            return room.online_participants()
        return await self.cluster.online(session_id)

    async def append_run(self, session_id: str, run: dict[str, Any]) -> None:
        """Append a run to the live document's ``runs`` if the room is loaded (nobody watches otherwise); with
        other processes, whose clients may watch a room this one does not hold, it is loaded for the run."""
        if self.log.is_gone(session_id):
            return  # deleted while the run ran: nobody is left to see it
        room = self.peek(session_id)
        if room is None:
            if not self.cluster.shared:
                return
            async with self.use(session_id) as room:
                room.change(lambda shared: shared.append_run(run))
                await room.committed()
            return
        room.change(lambda shared: shared.append_run(run))
        await room.committed()

    def _client_runs(self, room: Room, records: list[Any]) -> None:
        # One check at a time per session: the records written while one is under way join it. A client writing
        # run records in a loop would otherwise start a database read per update.
        waiting = self._runs_checks.get(room.session_id)
        if waiting is not None:
            waiting.extend(records)
            return
        self._runs_checks[room.session_id] = list(records)
        self._spawn(self._check_client_runs(room.session_id))

    async def _check_client_runs(self, session_id: str) -> None:
        """Take out the run records a client wrote where the session lets no code run (its policy says `none`, or
        its owner switched running off): the page offers no Run there, so they come from a client that ignores
        it. They were relayed and stored already (an update cannot be half applied); the removal is a change
        of the server's, relayed and stored like any other, so every copy of the document loses them."""
        assert self._runs_allowed is not None
        try:
            allowed = await self._runs_allowed(session_id)
        except Exception as exc:  # noqa: BLE001 - a background check: logged, never raised
            self._runs_checks.pop(session_id, None)
            # The type only: a database error's text can carry the session id among its parameters.
            log.warning("could not check a client's run records against the session's policy (%s)", type(exc).__name__)
            return
        # Everything written up to now, including while the policy was read; later records start a check of their own.
        records = self._runs_checks.pop(session_id, [])
        if allowed:
            return
        try:
            async with self.use(session_id) as room:
                dropped = 0

                def drop(shared: SharedDoc) -> None:
                    nonlocal dropped
                    dropped = shared.drop_runs(records)

                room.change(drop)
        except SessionNotFound:
            return  # deleted meanwhile: nothing is left to clean
        except Exception as exc:  # noqa: BLE001 - a background check: logged, never raised
            # The type only: a database error's text can carry the session id among its parameters.
            log.warning("could not check a client's run records against the session's policy (%s)", type(exc).__name__)
            return
        if dropped:
            metrics.CLIENT_RUNS_DROPPED.inc(dropped)
            log.info("took out %d run record(s) a client wrote where the session's policy lets no code run", dropped)

    async def clear_runs(self, session_id: str) -> int:
        """Remove every run from the document's ``runs``, loading the room if needed (the output is stored)."""
        cleared = 0

        def clear(shared: SharedDoc) -> None:
            nonlocal cleared
            cleared = shared.clear_runs()

        async with self.use(session_id) as room:
            room.change(clear)
            await room.committed()
        return cleared


def _kept_bytes(stored: StoredDoc) -> int:
    """What a kept document counts against ``new_document_cache_bytes``: its first update and its text."""
    return len(stored.updates[0]) + len(stored.code) + len(stored.title)
