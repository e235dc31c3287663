"""Rooms shared by several processes through Redis: one stream per session.

Each update, awareness change or presence renewal a process publishes is one ``XADD`` to the session's stream
(``MAXLEN ~ redis_stream_max_length``), pipelined with whatever else is waiting: one Redis command per change,
one round trip per turn of the sender. Every process holding the session's room reads the stream from the last
id it saw (one ``XREAD BLOCK`` over all its rooms' streams), skips its own entries and hands the others to the
room, which relays them to its peers and never stores them (see ``cluster.py``).

Why a stream and not pub/sub: a reader that reconnects goes on from the last id it read, so a dropped
connection loses nothing the stream still holds; and a process loading a room replays the last
``redis_replay_seconds`` of the stream on top of the database, which covers updates relayed before their
origin committed them. What the stream cannot cover (Redis restarted empty, unreachable for a while, or a reader
so far behind that the stream was trimmed past it) is healed from the update log: every room of the process
re-reads its log and relays what it missed. No lock is taken on the path of an update.

Presence: a process renews, every ``process_heartbeat_seconds``, the list of participants connected to each of
its rooms (an entry of the stream like any other). A process whose renewals stop for three intervals is taken for
gone: its peers' awareness states are removed and their online flags cleared everywhere, and every process
holding the room stores what its document has and the log misses (what the dead process relayed but never
committed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from codeconnect.collab.cluster import RemoteRoom
from codeconnect.config import Settings

log = logging.getLogger(__name__)

_PREFIX = b"ccl:s:"  # a session's stream
_WAKE_PREFIX = b"ccl:w:"  # a process's own stream: wakes its reader when it starts reading a new room
_UPDATE, _AWARENESS, _PRESENCE = b"u", b"a", b"p"
_LAPSES = 3  # heartbeats without a renewal after which a process is taken for gone
_READ_BLOCK_MS = 5000
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


# A sliding one-minute window per key, on Redis's clock (hosts' clocks may differ): the start times of the last
# minute in a sorted set. Returns {1, 0} when one more was taken, {0, ms to wait} when the window is full.
_RATE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + 60000 - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 60000)
return {1, 0}
"""
_RATE_PREFIX = b"ccl:rate:"
_EVENTS = b"ccl:events"  # one stream for the whole cluster: admission events, run stops (see ``share``)


def _key(session_id: str) -> bytes:
    return _PREFIX + session_id.encode()


class RedisCluster:
    """The processes sharing ``redis_url``'s streams. Entered and exited by the room registry."""

    shared = True

    def __init__(self, settings: Settings, url: str | None = None) -> None:
        url = url or settings.redis_url
        if url is None:
            raise ValueError("RedisCluster needs a Redis URL")
        # Names this process in the streams (not a credential): its own entries are skipped when read back.
        self.process_id = secrets.token_hex(8)
        self._pid = self.process_id.encode()
        self._settings = settings
        self._maxlen = settings.redis_stream_max_length
        self._replay_ms = int(settings.redis_replay_seconds * 1000)
        self._heartbeat = settings.process_heartbeat_seconds
        self._commands = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        # Blocking reads hold a connection of their own.
        self._reads = aioredis.Redis.from_url(
            url, socket_timeout=_READ_BLOCK_MS / 1000 + 5, socket_connect_timeout=5
        )
        self._rate = self._commands.register_script(_RATE_SCRIPT)
        self._wake_key = _WAKE_PREFIX + self._pid
        self._rooms: dict[str, RemoteRoom] = {}
        self._positions: dict[bytes, bytes] = {}  # stream key -> last id handed to its room
        self._outbox: list[tuple[bytes, bytes, bytes, bytes]] = []  # (stream key, kind, data, author)
        self._outbox_ready = asyncio.Event()
        self._seen: dict[str, dict[str, float]] = {}  # per session, other processes' last presence renewal
        self._stale: set[str] = set()  # rooms to heal from the log and replay again
        self._stale_ready = asyncio.Event()
        self._up: bool | None = None
        self._listeners: dict[bytes, Callable[[bytes], None]] = {}
        self._events_start: bytes | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()

    # --- lifetime ------------------------------------------------------------------------------------------

    async def __aenter__(self) -> RedisCluster:
        # Started even when Redis is down: this process serves its own clients meanwhile.
        try:
            # Events from here on are this process's to hear (read before any task runs).
            last: Any = await self._commands.xrevrange(_EVENTS, count=1)
            self._events_start = last[0][0] if last else b"0-0"
        except _FAILURES as exc:
            self._went_down(exc)
        else:
            self._came_up()
        for name, loop in (
            ("send", self._send_loop), ("read", self._read_loop), ("heartbeat", self._heartbeat_loop),
            ("heal", self._heal_loop),
        ):  # fmt: skip
            self._tasks.append(asyncio.create_task(loop(), name=f"redis-cluster-{name}"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._spawned, return_exceptions=True)
        if self._outbox:
            # What the last peers' departures published; best effort, as Redis may be the reason we stop.
            try:
                async with asyncio.timeout(2):
                    await self._send(self._outbox)
            except _FAILURES:
                pass
        await self._commands.aclose()
        await self._reads.aclose()

    def status(self) -> str | None:
        return "up" if self._up else "down"

    async def take_rate(self, key: str, per_minute: int) -> float | None:
        try:
            taken, wait_ms = await self._rate(
                keys=[_RATE_PREFIX + key.encode()], args=[per_minute, secrets.token_hex(8)]
            )
        except _FAILURES as exc:
            self._went_down(exc)
            return None  # each process counts on its own meanwhile
        return 0.0 if taken else max(0.001, int(wait_ms) / 1000)

    # --- publishing (Fanout) ----------------------------------------------------------------------------------

    def update(self, session_id: str, update: bytes, author: str | None) -> None:
        self._queue(session_id, _UPDATE, update, author)

    def awareness(self, session_id: str, payload: bytes) -> None:
        self._queue(session_id, _AWARENESS, payload)

    def presence(self, session_id: str, seats: tuple[tuple[str, bool], ...]) -> None:
        self._queue(session_id, _PRESENCE, json.dumps(seats).encode())

    def share(self, topic: str, event: bytes) -> None:
        self._queue_to(_EVENTS, topic.encode(), event, b"")

    def listen(self, topic: str, handler: Callable[[bytes], None]) -> None:
        self._listeners[topic.encode()] = handler

    def _queue(self, session_id: str, kind: bytes, data: bytes, author: str | None = None) -> None:
        self._queue_to(_key(session_id), kind, data, b"" if author is None else author.encode())

    def _queue_to(self, key: bytes, kind: bytes, data: bytes, author: bytes) -> None:
        outbox = self._outbox
        outbox.append((key, kind, data, author))
        if len(outbox) > self._settings.redis_outbox_entries:
            # Redis has been away long enough to fill it: the oldest entries reach the others by healing
            # (their origin commits them like any other update).
            del outbox[: len(outbox) - self._settings.redis_outbox_entries]
        self._outbox_ready.set()

    async def _send(self, batch: list[tuple[bytes, bytes, bytes, bytes]]) -> None:
        pipe = self._commands.pipeline(transaction=False)
        for key, kind, data, author in batch:
            fields: dict[Any, Any] = {b"o": self._pid, b"k": kind, b"d": data}
            if author:
                fields[b"b"] = author
            pipe.xadd(key, fields, maxlen=self._maxlen, approximate=True)
        await pipe.execute()

    async def _send_loop(self) -> None:
        failures = 0
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            batch, self._outbox = self._outbox, []
            if not batch:
                continue
            try:
                await self._send(batch)
            except _FAILURES as exc:
                self._went_down(exc)
                self._outbox[:0] = batch  # sent again once Redis is back (others apply an update once)
                del self._outbox[: max(0, len(self._outbox) - self._settings.redis_outbox_entries)]
                failures += 1
                await asyncio.sleep(_backoff(failures))
                self._outbox_ready.set()
            else:
                failures = 0
                self._came_up()

    # --- reading -------------------------------------------------------------------------------------------

    async def mark(self) -> object | None:
        """The stream id ``redis_replay_seconds`` ago on Redis's clock (None while Redis is unreachable)."""
        try:
            seconds, micros = await self._commands.time()
        except _FAILURES as exc:
            self._went_down(exc)
            return None
        return f"{max(0, seconds * 1000 + micros // 1000 - self._replay_ms)}-0".encode()

    async def attach(self, room: RemoteRoom, mark: object | None) -> None:
        session_id = room.session_id
        self._rooms[session_id] = room
        if not isinstance(mark, bytes):
            self._stale_now(session_id)
            return
        try:
            await self._replay(session_id, mark)
            await self._commands.xadd(self._wake_key, {b"w": b""}, maxlen=10, approximate=True)
        except _FAILURES as exc:
            self._went_down(exc)
            self._stale_now(session_id)

    def detach(self, session_id: str) -> None:
        self._rooms.pop(session_id, None)
        self._positions.pop(_key(session_id), None)
        self._seen.pop(session_id, None)
        self._stale.discard(session_id)

    async def _replay(self, session_id: str, start: bytes) -> None:
        key = _key(session_id)
        entries: Any = await self._commands.xrange(key, min=start)
        room = self._rooms.get(session_id)
        if room is None:
            return
        position = start
        for entry_id, fields in entries:
            position = entry_id
            self._deliver(room, fields)
        self._positions[key] = position

    async def _read_loop(self) -> None:
        failures = 0
        # Concrete ids, never "$": an entry added between two reads would be skipped by a read from "$".
        wake_position = b"0-0"  # the stream is this process's own
        events_position = self._events_start  # from the stream's last entry when this process started
        last_read = time.monotonic()
        while True:
            streams: dict[Any, Any] = dict(self._positions)
            streams[self._wake_key] = wake_position
            try:
                if events_position is None:
                    last: Any = await self._reads.xrevrange(_EVENTS, count=1)
                    events_position = last[0][0] if last else b"0-0"
                streams[_EVENTS] = events_position
                response: Any = await self._reads.xread(streams, block=_READ_BLOCK_MS)
            except _FAILURES as exc:
                self._went_down(exc)
                failures += 1
                await asyncio.sleep(_backoff(failures))
                continue
            if failures or time.monotonic() - last_read > self._settings.redis_heal_seconds + _READ_BLOCK_MS / 1000:
                # Back after an outage (or this loop stalled): whatever was published meanwhile may be lost.
                self._stale_now(*self._rooms)
            failures = 0
            last_read = time.monotonic()
            self._came_up()
            for key, entries in response or ():
                if key == self._wake_key:
                    wake_position = entries[-1][0]
                    continue
                if key == _EVENTS:
                    events_position = entries[-1][0]
                    self._hear(entries)
                    continue
                room = self._rooms.get(key[len(_PREFIX) :].decode())
                if room is None or key not in self._positions:
                    continue
                for _, fields in entries:
                    self._deliver(room, fields)
                self._positions[key] = entries[-1][0]

    def _hear(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        for _, fields in entries:
            handler = self._listeners.get(fields.get(b"k", b""))
            if handler is not None and fields.get(b"o") != self._pid:
                try:
                    handler(fields.get(b"d", b""))
                except Exception:
                    log.exception("an event of another process could not be applied")

    def _deliver(self, room: RemoteRoom, fields: dict[bytes, bytes]) -> None:
        origin = fields.get(b"o")
        if origin == self._pid or origin is None:
            return
        kind, data = fields.get(b"k"), fields.get(b"d", b"")
        try:
            if kind == _UPDATE:
                author = fields.get(b"b")
                room.apply_remote(data, None if author is None else author.decode())
            elif kind == _AWARENESS:
                room.remote_awareness(origin.decode(), data)
            elif kind == _PRESENCE:
                seats = tuple((str(pid), bool(readonly)) for pid, readonly in json.loads(data))
                seen = self._seen.setdefault(room.session_id, {})
                if seats:
                    seen[origin.decode()] = time.monotonic()
                else:
                    seen.pop(origin.decode(), None)
                room.remote_presence(origin.decode(), seats)
        except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
            raise
        except BaseException:
            # Entries come from other processes of this cluster, which checked them; one that still fails (a
            # Yrs panic is a BaseException) must not stop the reader: the room heals from the log instead.
            log.exception("a relayed entry could not be applied; healing the room from the update log")
            self._stale_now(room.session_id)

    # --- healing and presence ----------------------------------------------------------------------------------

    def _stale_now(self, *session_ids: str) -> None:
        if session_ids:
            self._stale.update(session_ids)
            self._stale_ready.set()

    async def _heal_loop(self) -> None:
        failures = 0
        while True:
            await self._stale_ready.wait()
            self._stale_ready.clear()
            for session_id in list(self._stale):
                room = self._rooms.get(session_id)
                if room is None:
                    self._stale.discard(session_id)
                    continue
                try:
                    mark = await self.mark()
                    if mark is None:
                        break
                    await room.heal()
                    await self._replay(session_id, mark)  # type: ignore[arg-type]
                except _FAILURES as exc:
                    self._went_down(exc)
                    break
                except Exception:
                    log.exception("healing a room from the update log failed; trying again")
                    break
                self._stale.discard(session_id)
            if self._stale:
                failures += 1
                await asyncio.sleep(min(self._settings.redis_heal_seconds, _backoff(failures)))
                self._stale_ready.set()
            else:
                failures = 0

    async def _heartbeat_loop(self) -> None:
        ttl = max(3600, int(self._settings.redis_replay_seconds * 2))
        while True:
            await asyncio.sleep(self._heartbeat)
            now = time.monotonic()
            keys: list[bytes] = []
            for session_id, room in list(self._rooms.items()):
                seats = room.local_seats()
                if seats:
                    self.presence(session_id, seats)
                    keys.append(_key(session_id))
                for origin, seen in list(self._seen.get(session_id, {}).items()):
                    if now - seen > _LAPSES * self._heartbeat:
                        del self._seen[session_id][origin]
                        room.origin_gone(origin)
                        self._spawn(self._rescue(room))
            if keys:
                # Streams of sessions nobody edits any more go away by themselves.
                try:
                    pipe = self._commands.pipeline(transaction=False)
                    for key in keys:
                        pipe.expire(key, ttl)
                    await pipe.execute()
                except _FAILURES as exc:
                    self._went_down(exc)

    async def _rescue(self, room: RemoteRoom) -> None:
        try:
            await room.rescue()
        except Exception:
            log.exception("storing what a departed process left uncommitted failed")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    # --- state ---------------------------------------------------------------------------------------------

    def _went_down(self, exc: BaseException) -> None:
        if self._up is not False:
            log.warning(
                "Redis is unreachable (%s): rooms keep working for this process's clients; reconnecting with "
                "backoff, then healing every room from the update log",
                type(exc).__name__,
            )
        self._up = False

    def _came_up(self) -> None:
        if self._up is False:
            log.warning("Redis is reachable again: healing this process's rooms from the update log")
        self._up = True

    @property
    def rooms(self) -> Iterable[str]:
        return self._rooms.keys()


def _backoff(failures: int) -> float:
    return float(min(5.0, 0.1 * 2 ** min(failures, 6)))
