"""The outbox's connection to Redis: what one process publishes reaches another after Redis lost its scripts, cut
the connection or stopped answering for a while. Two ``RedisCluster`` objects in this test's process, on a
redis-server of the test's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis

from codeconnect.collab import redis_cluster
from codeconnect.collab.redis_cluster import RedisCluster
from codeconnect.config import Settings
from tests.cluster.conftest import RedisProcess

TOPIC = "test-topic"


async def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
async def pair(own_redis: RedisProcess) -> AsyncIterator[tuple[RedisCluster, RedisCluster, list[bytes]]]:
    """A publisher and a listener; the events the listener heard, in order."""
    # The database is never opened here: clustered settings just have to name PostgreSQL.
    settings = Settings(
        redis_url=own_redis.url, database_url="postgresql+asyncpg://127.0.0.1/unused", process_heartbeat_seconds=0.5
    )
    heard: list[bytes] = []
    async with AsyncExitStack() as stack:
        sender = await stack.enter_async_context(RedisCluster(settings))
        listener = RedisCluster(settings)
        listener.listen(TOPIC, heard.append)
        await stack.enter_async_context(listener)
        # Subscribed: the listener's first catch-up of the events stream has run.
        await wait_for(lambda: listener.status() == "up")
        sender.share(TOPIC, b"first")
        await wait_for(lambda: heard == [b"first"])
        yield sender, listener, heard


@pytest.fixture
async def admin(own_redis: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    """A client of the test's Redis for what the test does to it."""
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_an_entry_sent_after_redis_lost_its_scripts_still_arrives(
    admin: aioredis.Redis, pair: tuple[RedisCluster, RedisCluster, list[bytes]]
) -> None:
    sender, _listener, heard = pair
    await admin.script_flush()
    sender.share(TOPIC, b"second")
    sender.share(TOPIC, b"third")
    await wait_for(lambda: heard[-1:] == [b"third"])
    assert heard == [b"first", b"second", b"third"]
    assert sender.status() == "up"


async def test_an_entry_sent_after_redis_cut_the_connection_still_arrives(
    admin: aioredis.Redis, pair: tuple[RedisCluster, RedisCluster, list[bytes]]
) -> None:
    sender, _listener, heard = pair
    # Every client connection but the listeners' (and this one): the sender's outbox connection among them.
    killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert killed >= 1
    for n in range(5):
        sender.share(TOPIC, f"after-{n}".encode())
    await wait_for(lambda: heard[-1:] == [b"after-4"])
    assert heard == [b"first", *(f"after-{n}".encode() for n in range(5))]


async def test_a_redis_that_stops_answering_counts_as_down_and_what_waited_arrives_later(
    admin: aioredis.Redis, pair: tuple[RedisCluster, RedisCluster, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, _listener, heard = pair
    monkeypatch.setattr(redis_cluster, "_SEND_TIMEOUT", 0.5)
    # Writes (the publishing script among them) wait until the pause ends; the connection stays open.
    await admin.execute_command("CLIENT", "PAUSE", 4000, "WRITE")
    sender.share(TOPIC, b"paused")
    await wait_for(lambda: sender.status() == "down")
    assert heard == [b"first"]
    await admin.execute_command("CLIENT", "UNPAUSE")
    await wait_for(lambda: heard[-1:] == [b"paused"])
    assert heard == [b"first", b"paused"]
    await wait_for(lambda: sender.status() == "up")
