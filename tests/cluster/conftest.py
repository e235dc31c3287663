"""Several servers sharing one PostgreSQL database and one Redis: the clustered mode."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import REDIS_URL, LiveServer, ServerFactory, require_service, servers_on, skip_or_fail

# The REST rate limits are counted in Redis per client address, and every test of the run (every worker's too)
# comes from 127.0.0.1 to the one test Redis: one budget for them all. Tests of those limits set their own.
VOLUME = {"rate_sessions_per_minute": 0, "rate_joins_per_minute": 0}
VOLUME_ENV = {f"CODECONNECT_{name.upper()}": str(value) for name, value in VOLUME.items()}


@pytest.fixture
async def cluster(pg_url: str) -> AsyncIterator[ServerFactory]:
    """Start servers of one cluster: ``await cluster()`` for each process (``redis_url=`` to use another Redis)."""
    require_service("Redis", REDIS_URL, 6379)

    async with servers_on(pg_url) as factory:

        async def start(**overrides: object) -> object:
            return await factory(**{"redis_url": REDIS_URL, "process_heartbeat_seconds": 0.5, **VOLUME, **overrides})

        yield start  # type: ignore[misc]


class RedisProcess:
    """A redis-server of the test's own, on a free port of 127.0.0.1, that the test may kill and restart."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            skip_or_fail("redis-server is not installed")
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self._workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                try:
                    await client.ping()
                    return
                except (OSError, aioredis.ConnectionError):
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        """SIGKILL: Redis goes away at once and comes back empty."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    redis = RedisProcess(tmp_path)
    await redis.start()
    try:
        yield redis
    finally:
        redis.kill()


async def one_client_each(
    first: LiveServer, second: LiveServer, names: tuple[str, str]
) -> tuple[str, dict[str, dict[str, Any]], YClient, YClient]:
    """A new session with two participants (name -> join answer), the first connected to ``first``, the second
    to ``second``."""
    sid, people = await session_on(first, *names)
    a = await YClient(collab_url(first.ws_url, sid, people[names[0]]["token"])).connect()
    b = await YClient(collab_url(second.ws_url, sid, people[names[1]]["token"])).connect()
    return sid, people, a, b


async def session_on(server: LiveServer, *names: str, **body: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    """A new session created through ``server``'s API, with the participants ``names`` (name -> join answer)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        s = await new_session(http, **body)
        return s["id"], {name: await join(http, s["id"], name) for name in names}


class RedisProxy:
    """A TCP relay to the shared Redis (or another, on ``target_port``) on a free port of 127.0.0.1, which a test
    may cut (every connection closed, new ones refused) and restore: one process loses Redis while the others keep
    it."""

    def __init__(self, target_port: int = 6379) -> None:
        self.port = 0
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if server is not None:
            await server.wait_closed()


@pytest.fixture
async def redis_proxy() -> AsyncIterator[RedisProxy]:
    require_service("Redis", REDIS_URL, 6379)
    proxy = RedisProxy()
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.cut()
