"""Rooms shared by several processes through Redis: one stream per session, announced to its other holders.

Each update, awareness change or presence renewal a process publishes is one call of a small script (one
``EVALSHA``, pipelined with whatever else is waiting): the script appends the entry to the session's stream
(``XADD``, ``MAXLEN ~ redis_stream_max_length``) and publishes it, with the id the stream gave it, on the inbox
channel of every *other* process holding the session's room (its members: a sorted set renewed by each holder).
A process listens to one channel, its own inbox, on one connection, and hands each entry to the room, which
relays it to its peers and never stores it (see ``cluster.py``). It never reads back its own entries: a
channel per session, which every holder (the publisher too) heard, cost each process a read and a parse of
everything it had sent, a third of the work of relaying in two processes. (A blocking ``XREAD`` over every
room's stream, the first design, had to name them all on every call, which cost more than everything else.)

Why a stream behind the channel: pub/sub delivers at most once, and only while connected. The stream is what
makes delivery survive a dropped connection: after any reconnect (and when a room is attached, or its
membership was found lapsed) a process reads each stream from the last id it delivered (``XRANGE``), holding
back what the inbox brings meanwhile, so nothing is lost or applied out of order. Membership is renewed before
that read, so whatever the read does not cover arrives in the inbox. A process loading a room starts that read
``redis_replay_seconds`` back, which covers updates relayed before their origin committed them. What the stream
cannot cover (Redis restarted empty, or trimmed) is healed from the update log: after a reconnect every room of
the process re-reads its log and relays what it missed. No lock is taken on the path of an update. (The scripts
name channels that are not keys: one Redis server, or a primary with replicas, not a Redis Cluster.)

Presence: a process renews, every ``process_heartbeat_seconds``, the connections it holds in each of its rooms
(an entry like any other). A process whose renewals stop for three intervals is taken for gone: its peers'
awareness states are removed and their online flags cleared everywhere, and every process holding the room
stores what its document has and the log misses (what the dead process relayed but never committed).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from codeconnect import metrics
from codeconnect.collab.cluster import RemoteRoom
from codeconnect.config import Settings

log = logging.getLogger(__name__)

_PREFIX = b"ccl:s:"  # a session's stream
_MEMBERS_PREFIX = b"ccl:m:"  # a session's holders: process id -> last renewal (ms, Redis's clock)
_INBOX_PREFIX = b"ccl:in:"  # a process's channel: the entries of the sessions it holds, from the others
_ONLINE_PREFIX = b"ccl:o:"  # a session's connections per process (see _PUBLISH_SCRIPT)
_EVENTS = b"ccl:events"  # one stream and channel for the whole cluster: admission events, run stops (``share``)
_UPDATE, _AWARENESS, _PRESENCE, _HEAL = b"u", b"a", b"p", b"h"
_HEAL_DELAY = 1.0  # a "heal" entry is acted on this much later: its sender's dropped updates are committed by then
_LAPSES = 3  # heartbeats without a renewal after which a process is taken for gone
_CATCH_UP_WAIT = 2.0  # how long loading a room waits for the stream's recent entries before going on without
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)
_SEND_TIMEOUT = 5.0  # seconds for one batch of the outbox to be written and answered; then Redis counts as down
_JOIN_CHUNK = 200  # memberships renewed per script call: a process holding thousands of rooms must not stall Redis

# KEYS[1]: the stream; KEYS[2]: the session's members (absent for the cluster's events, which go to the events
# channel everyone hears); ARGV: max length, origin, kind, author, data, the stream's lifetime (ms: a session
# nobody writes to any more leaves nothing behind in Redis), the members' lapse (ms). The message is the entry
# with its stream and id: "stream NUL id NUL origin NUL kind NUL author NUL data" (data last: it may hold NULs).
# A presence renewal also names KEYS[3], the session's hash of connections per process ("seconds.micros seats"
# on Redis's clock, expiring after ARGV[8] ms), which processes that do not hold the room read for the online
# flags.
_PUBLISH_SCRIPT = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'o', ARGV[2], 'k', ARGV[3], 'b', ARGV[4],
  'd', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local message = KEYS[1] .. '\\0' .. id .. '\\0' .. ARGV[2] .. '\\0' .. ARGV[3] .. '\\0' .. ARGV[4] .. '\\0' .. ARGV[5]
if KEYS[2] then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], now - tonumber(ARGV[7]), '+inf')) do
    if member ~= ARGV[2] then
      redis.call('PUBLISH', 'ccl:in:' .. member, message)
    end
  end
  if KEYS[3] then
    if ARGV[5] == '[]' then
      redis.call('HDEL', KEYS[3], ARGV[2])
    else
      redis.call('HSET', KEYS[3], ARGV[2], string.format('%d.%06d', tonumber(t[1]), tonumber(t[2])) .. ' ' .. ARGV[5])
      redis.call('PEXPIRE', KEYS[3], ARGV[8])
    end
  end
else
  redis.call('PUBLISH', KEYS[1], message)
end
return id
"""

# Renews this process (ARGV[1]) as a holder of each session whose members set is given in KEYS, forgetting
# holders that lapsed (ARGV[2] ms without a renewal). Returns, per key, 1 where this process was not a member
# (new, lapsed, or Redis restarted empty): entries published meanwhile skipped it, so its stream must be read.
_JOIN_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lapse = tonumber(ARGV[2])
local missed = {}
for i, key in ipairs(KEYS) do
  local seen = redis.call('ZSCORE', key, ARGV[1])
  missed[i] = (not seen or tonumber(seen) < now - lapse) and 1 or 0
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - lapse)
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, 2 * lapse)
end
return missed
"""

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

StreamId = tuple[int, int]


class Entry(NamedTuple):
    id: StreamId
    origin: bytes
    kind: bytes
    author: bytes
    data: bytes


def _key(session_id: str) -> bytes:
    return _PREFIX + session_id.encode()


def _members(key: bytes) -> bytes:
    return _MEMBERS_PREFIX + key[len(_PREFIX) :]


def _stream_id(raw: bytes) -> StreamId:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)


def _after(last: StreamId) -> bytes:
    """The exclusive start of a range read after ``last``."""
    return f"({last[0]}-{last[1]}".encode()


def _from_stream(raw_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    get = fields.get
    return Entry(_stream_id(raw_id), get(b"o", b""), get(b"k", b""), get(b"b", b""), get(b"d", b""))


def _from_channel(message: bytes) -> tuple[bytes, Entry]:
    key, raw_id, origin, kind, author, data = message.split(b"\0", 5)
    return key, Entry(_stream_id(raw_id), origin, kind, author, data)


class RedisCluster:
    """The processes sharing ``redis_url``'s streams. Entered and exited by the room registry."""

    shared = True

    def __init__(self, settings: Settings) -> None:
        url = settings.redis_url
        if url is None:
            raise ValueError("RedisCluster needs a Redis URL")
        # Names this process in the streams (not a credential): its own entries are skipped when read back.
        self.process_id = secrets.token_hex(8)
        self._pid = self.process_id.encode()
        self._inbox = _INBOX_PREFIX + self._pid
        self._settings = settings
        self._maxlen = settings.redis_stream_max_length
        self._replay_ms = int(settings.redis_replay_seconds * 1000)
        self._batch_seconds = settings.redis_batch_ms / 1000
        self._heartbeat = settings.process_heartbeat_seconds
        self._online_ttl_ms = int(2 * _LAPSES * self._heartbeat * 1000)
        self._member_lapse_ms = int(_LAPSES * self._heartbeat * 1000)
        self._stream_ttl_ms = int(max(3600, 2 * settings.redis_replay_seconds) * 1000)
        # (Almost) no retries inside the clients: a failure must reach this class, which keeps the rooms working,
        # retries with its own backoff and heals what a gap may have lost. The client's own retries (ten by
        # default) would stall a room's load for seconds while Redis is down, and its pub/sub would resubscribe
        # behind this class's back after a dropped connection, skipping the read of the streams that covers the
        # gap. Commands get one immediate retry: after Redis restarts, each pooled connection fails once.
        self._commands = aioredis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, retry=Retry(NoBackoff(), 1)
        )
        # The subscriber waits for as long as nothing is published; keepalives and health checks notice a dead peer.
        self._subscriber = aioredis.Redis.from_url(
            url, socket_timeout=None, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        # The outbox goes out on a connection of its own, held for the process's life: each batch is one write of
        # its packed commands and a read of their replies, through the connection's public calls. A pipeline
        # of the client above costs about 200 µs of CPU per call here against 135 for this (a pool checkout with
        # a readiness probe, a retry wrapper, tasks and a reset per call), on the path of every update.
        # Its exchanges are bounded by one deadline each (``_SEND_TIMEOUT``), not by a socket timeout, which the
        # connection would arm twice per exchange (a task for the write, a timer for each reply read).
        self._sending = ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        self._sender: Connection | None = None
        self._publish_sha = self._commands.register_script(_PUBLISH_SCRIPT).sha
        self._join = self._commands.register_script(_JOIN_SCRIPT)
        self._rate = self._commands.register_script(_RATE_SCRIPT)
        self._rooms: dict[str, RemoteRoom] = {}
        self._last: dict[bytes, StreamId] = {}  # per stream this process reads: the last id it delivered
        self._held: dict[bytes, list[Entry]] = {}  # streams being read: what the inbox brings waits here
        self._caught_up: dict[bytes, asyncio.Future[None]] = {}
        # Per stream, which attach of its room a read belongs to: a read started before a detach must not
        # deliver into (or mark caught up) the room attached after it, whose own read starts elsewhere.
        self._generation: dict[bytes, int] = {}
        self._generations = itertools.count()
        self._listening = False  # the inbox and the events channel are subscribed
        self._outbox: list[tuple[bytes, bytes, bytes, bytes]] = []  # (stream key, kind, data, author)
        self._outbox_ready = asyncio.Event()
        self._dropped: set[bytes] = set()  # sessions whose entries the outbox dropped (bounded by the sessions held)
        self._seen: dict[str, dict[str, float]] = {}  # per session, other processes' last presence renewal
        self._stale: set[str] = set()  # rooms to heal from the log
        self._gap_handlers: list[Callable[[], None]] = []
        self._stale_ready = asyncio.Event()
        self._up: bool | None = None
        self._listeners: dict[bytes, Callable[[bytes], None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()

    # --- lifetime ------------------------------------------------------------------------------------------

    async def __aenter__(self) -> RedisCluster:
        # Cluster events from here on are this process's to hear. Started even when Redis is down: this process
        # serves its own clients meanwhile.
        try:
            last: Any = await self._commands.xrevrange(_EVENTS, count=1)
            self._last[_EVENTS] = _stream_id(last[0][0]) if last else (0, 0)
        except _FAILURES as exc:
            self._last[_EVENTS] = (int(time.time() * 1000), 0)
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
        # Rooms are flushed by now (the registry exits the cluster after them): what is left is catching up,
        # healing and rescuing, all of which would wait for Redis if it is down. Stopping must not.
        for task in [*self._tasks, *self._spawned]:
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
        await self._subscriber.aclose()
        await self._sending.aclose()

    def status(self) -> str | None:
        return "up" if self._up else "down"

    async def online(self, session_id: str) -> frozenset[str]:
        """Who is connected to the session on any process, as their processes last renewed it (for a process
        that does not hold the room; one that does knows from the room). Empty while Redis is unreachable."""
        if self._up is False:
            return frozenset()
        try:
            pipe = self._commands.pipeline(transaction=False)
            pipe.hgetall(_ONLINE_PREFIX + session_id.encode())
            pipe.time()
            held, (seconds, micros) = await pipe.execute()
        except _FAILURES as exc:
            self._went_down(exc)
            return frozenset()
        fresh_after = seconds + micros / 1e6 - _LAPSES * self._heartbeat
        online: set[str] = set()
        for value in held.values():
            stamp, _, seats = value.partition(b" ")
            if float(stamp) >= fresh_after:
                online.update(str(pid) for pid, _readonly in json.loads(seats))
        return frozenset(online)

    async def forget(self, session_ids: Sequence[str]) -> None:
        """Delete the deleted sessions' keys: stream, members and connections. A process that had not heard of the
        deletion yet may write one again; it expires like any stream, an hour after its last entry."""
        keys = [k for sid in session_ids for k in (_key(sid), _members(_key(sid)), _ONLINE_PREFIX + sid.encode())]
        if not keys:
            return
        try:
            await self._commands.delete(*keys)
        except _FAILURES as exc:
            self._went_down(exc)

    async def take_rate(self, key: str, per_minute: int) -> float | None:
        if self._up is False:
            return None
        try:
            taken, wait_ms = await self._rate(
                keys=[_RATE_PREFIX + key.encode()], args=[per_minute, secrets.token_hex(8)]
            )
        except _FAILURES as exc:
            self._went_down(exc)
            return None  # each process counts on its own meanwhile
        return 0.0 if taken else max(0.001, int(wait_ms) / 1000)

    # --- publishing (Fanout) ----------------------------------------------------------------------------------

    def update(self, session_id: str, update: bytes, author: str | None, claims: tuple[int, ...]) -> None:
        # "participant" or "participant:id,id": participant ids are URL-safe, without ":" or ",".
        by = b"" if author is None else author.encode()
        if claims:
            by += b":" + ",".join(map(str, claims)).encode()
        self._queue(_key(session_id), _UPDATE, update, by)

    def awareness(self, session_id: str, payload: bytes) -> None:
        self._queue(_key(session_id), _AWARENESS, payload, b"")

    def presence(self, session_id: str, seats: tuple[tuple[str, bool], ...]) -> None:
        self._queue(_key(session_id), _PRESENCE, json.dumps(seats).encode(), b"")

    def share(self, topic: str, event: bytes) -> None:
        self._queue(_EVENTS, topic.encode(), event, b"")

    def listen(self, topic: str, handler: Callable[[bytes], None]) -> None:
        self._listeners[topic.encode()] = handler

    def on_gap(self, handler: Callable[[], None]) -> None:
        self._gap_handlers.append(handler)

    def _after_gap(self) -> None:
        for handler in self._gap_handlers:
            try:
                handler()
            except Exception:
                log.exception("catching up after a gap in the other processes' events failed")

    def _queue(self, key: bytes, kind: bytes, data: bytes, author: bytes) -> None:
        self._outbox.append((key, kind, data, author))
        self._trim_outbox()
        self._outbox_ready.set()

    def _trim_outbox(self) -> None:
        outbox = self._outbox
        excess = len(outbox) - self._settings.redis_outbox_entries
        if excess > 0:
            # Redis has been away long enough to fill it. The oldest entries are dropped; once Redis is back, the
            # processes holding their sessions are told to heal from the update log, where their origin (this
            # process) commits them like any other update.
            self._dropped.update(key for key, *_ in outbox[:excess] if key.startswith(_PREFIX))
            del outbox[:excess]

    def _command(self, key: bytes, kind: bytes, data: bytes, author: bytes) -> tuple[bytes | str | int, ...]:
        if key == _EVENTS:
            return (
                b"EVALSHA", self._publish_sha, 1, key, self._maxlen, self._pid, kind, author, data, self._stream_ttl_ms
            )  # fmt: skip
        if kind == _PRESENCE:
            online = _ONLINE_PREFIX + key[len(_PREFIX) :]
            return (
                b"EVALSHA", self._publish_sha, 3, key, _members(key), online, self._maxlen, self._pid, kind, author,
                data, self._stream_ttl_ms, self._member_lapse_ms, self._online_ttl_ms,
            )  # fmt: skip
        return (
            b"EVALSHA", self._publish_sha, 2, key, _members(key), self._maxlen, self._pid, kind, author, data,
            self._stream_ttl_ms, self._member_lapse_ms,
        )  # fmt: skip

    async def _send(self, batch: list[tuple[bytes, bytes, bytes, bytes]]) -> None:
        if self._sender is None:
            self._sender = await self._sending.get_connection()  # type: ignore[no-untyped-call]
        conn = self._sender
        commands = [self._command(*entry) for entry in batch]
        for attempt in (1, 2):
            missing: NoScriptError | None = None
            try:
                async with asyncio.timeout(_SEND_TIMEOUT):
                    # Connects first if the last failure closed it (the connection's own behaviour).
                    await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
                    for _ in commands:
                        try:
                            await conn.read_response()
                        except NoScriptError as exc:
                            missing = exc  # the other replies are still read: the connection stays in step
            except BaseException:
                # A failed or cancelled exchange leaves replies unread: start the next one on a new connection.
                await conn.disconnect(nowait=True)
                raise
            if missing is None:
                return
            # Redis restarted (its scripts are gone): load the script and send again. Entries that did run are
            # sent twice; others apply an update once and skip an entry id they delivered.
            if attempt == 2:
                raise missing
            await self._commands.script_load(_PUBLISH_SCRIPT)

    async def _send_loop(self) -> None:
        failures = 0
        while True:
            await self._outbox_ready.wait()
            if self._batch_seconds:
                await asyncio.sleep(self._batch_seconds)
            self._outbox_ready.clear()
            batch, self._outbox = self._outbox, []
            if not batch:
                continue
            try:
                await self._send(batch)
            except _FAILURES as exc:
                self._went_down(exc)
                self._outbox[:0] = batch  # sent again once Redis is back (others apply an update once)
                self._trim_outbox()
                failures += 1
                await asyncio.sleep(_backoff(failures))
                self._outbox_ready.set()
            else:
                failures = 0
                self._came_up()
                if self._dropped:
                    dropped, self._dropped = self._dropped, set()
                    for key in dropped:
                        self._queue(key, _HEAL, b"", b"")

    # --- receiving -----------------------------------------------------------------------------------------

    async def mark(self) -> object | None:
        """The stream id ``redis_replay_seconds`` ago on Redis's clock (None while Redis is unreachable)."""
        if self._up is False:
            return None  # not worth a connect timeout per room load: the reader notices when it is back
        try:
            seconds, micros = await self._commands.time()
        except _FAILURES as exc:
            self._went_down(exc)
            return None
        return (max(0, seconds * 1000 + micros // 1000 - self._replay_ms), 0)

    async def attach(self, room: RemoteRoom, mark: object | None) -> None:
        session_id = room.session_id
        key = _key(session_id)
        self._rooms[session_id] = room
        self._generation[key] = next(self._generations)
        if isinstance(mark, tuple):
            self._last[key] = mark
        else:
            # Redis unreachable: read from a while back by this host's clock once it returns, and heal.
            self._last[key] = (max(0, int(time.time() * 1000) - self._replay_ms), 0)
            self._stale_now(session_id)
        caught_up = self._hold(key)
        if not self._listening:
            return  # the subscriber joins and reads it when it connects
        self._spawn(self._catch_up(key))
        try:
            async with asyncio.timeout(_CATCH_UP_WAIT):
                await asyncio.shield(caught_up)
        except TimeoutError:
            pass  # it catches up when it can; the room works meanwhile

    def detach(self, session_id: str) -> None:
        key = _key(session_id)
        self._rooms.pop(session_id, None)
        self._generation.pop(key, None)
        self._last.pop(key, None)
        self._held.pop(key, None)
        caught_up = self._caught_up.pop(key, None)
        if caught_up is not None and not caught_up.done():
            caught_up.set_result(None)
        self._seen.pop(session_id, None)
        self._stale.discard(session_id)
        if self._up:
            self._spawn(self._leave(key))

    async def _leave(self, key: bytes) -> None:
        # Not on the path of anything: if it races a new attach of the same session and wins, the next renewal
        # finds this process missing, joins again and reads what the inbox skipped from the stream.
        if key in self._last:
            return  # attached again meanwhile
        try:
            await self._commands.zrem(_members(key), self._pid)
        except _FAILURES:
            pass  # it lapses by itself

    def _hold(self, key: bytes) -> asyncio.Future[None]:
        """Hold back what the channel brings for ``key`` until its stream has been read."""
        self._held.setdefault(key, [])
        caught_up = self._caught_up.get(key)
        if caught_up is None or caught_up.done():
            caught_up = self._caught_up[key] = asyncio.get_running_loop().create_future()
        return caught_up

    async def _read_loop(self) -> None:
        failures = 0
        reconnect = False
        while True:
            pubsub: Any = self._subscriber.pubsub()
            try:
                self._hold(_EVENTS)
                if reconnect:
                    # Whatever Redis lost while this process was away from it (restarted empty, trimmed).
                    self._stale_now(*self._rooms)
                await pubsub.subscribe(_EVENTS, self._inbox)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._on_message(message["data"])
                    elif message["type"] == "subscribe":
                        # Subscribed: from now on the channel brings everything; read the streams up to here.
                        if message["channel"] == _EVENTS:
                            self._spawn(self._catch_up(_EVENTS))
                            if reconnect:
                                # Subscribed again: what is read from the database from here on is not older
                                # than the events that follow.
                                reconnect = False
                                self._after_gap()
                        else:
                            self._listening = True  # from here on, attach reads its room's stream itself
                            for key in map(_key, list(self._rooms)):
                                self._hold(key)
                                self._spawn(self._catch_up(key))
                        failures = 0
                        self._came_up()
            except _FAILURES as exc:
                self._went_down(exc)
                failures += 1
                reconnect = True
                await asyncio.sleep(_backoff(failures))
            finally:
                self._listening = False
                try:
                    await pubsub.aclose()
                except _FAILURES:
                    pass

    def _on_message(self, message: bytes) -> None:
        try:
            key, entry = _from_channel(message)
        except ValueError:
            log.warning("a message of another process could not be read; ignored")
            return
        held = self._held.get(key)
        if held is not None:
            held.append(entry)
            if len(held) > self._settings.redis_outbox_entries:
                del held[: len(held) - self._settings.redis_outbox_entries]
            return
        self._deliver(key, entry)

    async def _catch_up(self, key: bytes) -> None:
        """Deliver what the stream holds after the last id delivered, then what the inbox brought meanwhile.
        A room's membership is renewed first: what the read does not cover, the inbox brings."""
        generation = self._generation.get(key)
        failures = 0
        while key in self._held and key in self._last:
            try:
                if key != _EVENTS:
                    await self._join(keys=[_members(key)], args=[self._pid, self._member_lapse_ms])
                raw: Any = await self._commands.xrange(key, min=_after(self._last[key]))
            except _FAILURES as exc:
                self._went_down(exc)
                failures += 1
                await asyncio.sleep(_backoff(failures))
                continue
            if key not in self._last or self._generation.get(key) != generation:
                return  # detached meanwhile (and perhaps attached again, with a read of its own)
            for raw_id, fields in raw:
                self._deliver(key, _from_stream(raw_id, fields))
            for entry in self._held.pop(key, ()):
                self._deliver(key, entry)
            break
        if self._generation.get(key) != generation:
            return
        caught_up = self._caught_up.pop(key, None)
        if caught_up is not None and not caught_up.done():
            caught_up.set_result(None)

    def _deliver(self, key: bytes, entry: Entry) -> None:
        last = self._last.get(key)
        if last is None or entry.id <= last:
            return  # not read here (any more), or delivered already
        self._last[key] = entry.id
        if entry.origin == self._pid:
            return
        if key == _EVENTS:
            handler = self._listeners.get(entry.kind)
            if handler is not None:
                try:
                    handler(entry.data)
                except Exception:
                    log.exception("an event of another process could not be applied")
            return
        room = self._rooms.get(key[len(_PREFIX) :].decode())
        if room is None:
            return
        origin = entry.origin.decode()
        try:
            if entry.kind == _UPDATE:
                author, _, claimed = entry.author.decode().partition(":")
                claims = tuple(int(c) for c in claimed.split(",")) if claimed else ()
                room.apply_remote(entry.data, author or None, claims)
            elif entry.kind == _AWARENESS:
                room.remote_awareness(origin, entry.data)
            elif entry.kind == _HEAL:
                self._spawn(self._heal_later(room.session_id))
            elif entry.kind == _PRESENCE:
                seats = tuple((str(pid), bool(readonly)) for pid, readonly in json.loads(entry.data))
                seen = self._seen.setdefault(room.session_id, {})
                if seats:
                    seen[origin] = time.monotonic()
                else:
                    seen.pop(origin, None)
                room.remote_presence(origin, seats)
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
            if self._up is False:
                # Healing from the log now would miss what others commit until Redis returns: wait for it.
                await asyncio.sleep(min(self._settings.redis_heal_seconds, _backoff(failures + 1)))
                self._stale_ready.set()
                continue
            for session_id in list(self._stale):
                room = self._rooms.get(session_id)
                self._stale.discard(session_id)
                if room is None:
                    continue
                try:
                    await room.heal()
                except Exception:
                    log.exception("healing a room from the update log failed; trying again")
                    self._stale.add(session_id)
            if self._stale:
                failures += 1
                await asyncio.sleep(min(self._settings.redis_heal_seconds, _backoff(failures)))
                self._stale_ready.set()
            else:
                failures = 0

    async def _renew(self) -> None:
        """Renew this process's membership of every room it holds; read the stream of any it had lost (lapsed
        while this process was too busy to renew, or Redis restarted empty)."""
        if not self._listening:
            return  # joined when the subscriber connects
        keys = [_key(s) for s in self._rooms]
        for start in range(0, len(keys), _JOIN_CHUNK):
            chunk = keys[start : start + _JOIN_CHUNK]
            try:
                missed = await self._join(
                    keys=[_members(k) for k in chunk], args=[self._pid, self._member_lapse_ms]
                )
            except _FAILURES as exc:
                self._went_down(exc)
                return
            for key, lapsed in zip(chunk, missed, strict=True):
                if lapsed and key in self._last and key not in self._held:
                    self._hold(key)
                    self._spawn(self._catch_up(key))

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            self._spawn(self._renew())
            now = time.monotonic()
            for session_id, room in list(self._rooms.items()):
                seats = room.local_seats()
                if seats:
                    self.presence(session_id, seats)
                for origin, seen in list(self._seen.get(session_id, {}).items()):
                    if now - seen > _LAPSES * self._heartbeat:
                        del self._seen[session_id][origin]
                        room.origin_gone(origin)
                        self._spawn(self._rescue(room))

    async def _heal_later(self, session_id: str) -> None:
        await asyncio.sleep(_HEAL_DELAY)
        self._stale_now(session_id)

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
            metrics.redis_up().set(0)
        self._up = False

    def _came_up(self) -> None:
        if self._up is False:
            log.warning("Redis is reachable again: healing this process's rooms from the update log")
        if self._up is not True:  # called after every write to Redis: the gauge is set on a change only
            metrics.redis_up().set(1)
        self._up = True


def _backoff(failures: int) -> float:
    return float(min(5.0, 0.1 * 2 ** min(failures, 6)))
