"""Fixtures: a fresh database per test (SQLite file or PostgreSQL database) and real servers on port 0."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from codeconnect.app import create_app
from codeconnect.collab.transport import WebSocketConnection
from codeconnect.config import Settings
from codeconnect.db import run_migrations, sqlite_path
from codeconnect.logs import JsonLines, RedactSecrets
from codeconnect.server import uvicorn_options

IN_CI = os.environ.get("CI", "").lower() == "true"

# --- No secret in any log line of the whole run -------------------------------------------------------------
# Every id, token and key the servers in this process make comes from `secrets.token_urlsafe` (security.py): each
# one is remembered, and every log record of the run goes through the production pipeline (the redaction filter,
# the JSON formatter) into a check for any of them. A leak fails the run at its end, with the line.
_MADE: set[str] = set()
_LEAKS: list[str] = []
_token_urlsafe = secrets.token_urlsafe
_CANDIDATE = re.compile(r"[A-Za-z0-9_-]{22,}")
# Prefixes the server puts before a made secret (API keys, invites, owner links): the rest is what was made.
_PREFIX = re.compile(r"^(?:ccl|inv|own)_")


def _remembered(nbytes: int | None = None) -> str:
    value = _token_urlsafe(nbytes)
    _MADE.add(value)
    return value


class _LeakCheck(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RedactSecrets())
        self.setFormatter(JsonLines())

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        for candidate in _CANDIDATE.findall(line):
            if candidate in _MADE or _PREFIX.sub("", candidate) in _MADE:
                if len(_LEAKS) < 20:
                    _LEAKS.append(line)
                return


def pytest_configure(config: pytest.Config) -> None:
    secrets.token_urlsafe = _remembered
    check = _LeakCheck()
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's own loggers do not propagate
        logging.getLogger(name).addHandler(check)
    logging.getLogger("codeconnect").setLevel(logging.INFO)  # its info lines are checked too


def pytest_testnodedown(node: Any, error: object) -> None:
    # pytest-xdist's controller: what a worker found comes back in its output (see pytest_sessionfinish).
    _LEAKS.extend(node.workeroutput.get("log_leaks", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _drop_templates()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its controller reports
        workeroutput["log_leaks"] = list(_LEAKS)
        return
    if _LEAKS:
        print("\nA secret made by the server appeared in a log line:", *_LEAKS, sep="\n  ")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

PG_URL = os.environ.get("CODECONNECT_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CODECONNECT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, port: int) -> None:
    """Skip when a service is down, with the reason; under CI=true that is a failure instead."""
    if _reachable(url, port):
        return
    skip_or_fail(f"{name} is not reachable at {make_url(url).render_as_string(hide_password=True)}")


def skip_or_fail(message: str) -> NoReturn:
    """Skip a test whose requirement is missing here, saying why; under CI=true that is a failure."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: required)")
    pytest.skip(message)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    parsed = make_url(PG_URL)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# Each test gets a database of its own, copied from one this process migrated once: running every migration again
# per test cost more than many of the tests themselves. Tests of the migrations call run_migrations themselves.
_SQLITE_TEMPLATE: list[Path] = []
_PG_TEMPLATE: list[str] = []


async def migrated_sqlite(path: Path) -> str:
    """A migrated SQLite database at ``path`` (a copy of this process's template); its URL."""
    if not _SQLITE_TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="ccl-test-template-")) / "template.db"
        await run_migrations(f"sqlite+aiosqlite:///{template}")
        _SQLITE_TEMPLATE.append(template)
    shutil.copyfile(_SQLITE_TEMPLATE[0], path)
    return f"sqlite+aiosqlite:///{path}"


async def fresh_sqlite(url: str) -> None:
    """Make the SQLite file of ``url`` a fresh, migrated database."""
    path = sqlite_path(url)
    assert path is not None, url
    await migrated_sqlite(path)


async def _pg_template() -> str:
    if not _PG_TEMPLATE:
        name = f"ccl_test_template_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        await run_migrations(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
        _PG_TEMPLATE.append(name)
    return _PG_TEMPLATE[0]


def _drop_templates() -> None:
    for template in _SQLITE_TEMPLATE:
        shutil.rmtree(template.parent, ignore_errors=True)
    for name in _PG_TEMPLATE:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield await migrated_sqlite(tmp_path / "codeconnect.db")
        return
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database, for tests of what only PostgreSQL serves (several processes)."""
    async with fresh_pg_database() as url:
        yield url


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A migrated PostgreSQL database of its own, dropped on exit."""
    require_service("PostgreSQL", PG_URL, 5432)
    name = f"ccl_test_{uuid.uuid4().hex[:16]}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{await _pg_template()}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file for tests that do not need to run on both backends."""
    return f"sqlite+aiosqlite:///{tmp_path / 'codeconnect.db'}"


@dataclass
class LiveServer:
    """A real uvicorn server for one app, on a free port of 127.0.0.1."""

    settings: Settings
    base_url: str
    ws_url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    def live_sockets(self) -> int:
        """WebSocket connections the server still holds open (their sockets, not their room seats)."""
        return sum(isinstance(c, WebSocketConnection) for c in self.server.server_state.connections)

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 15)


async def start_server(settings: Settings, **uvicorn_overrides: Any) -> LiveServer:
    """Serve ``settings``' app as `codeconnect serve` does (its protocol classes and options)."""
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=5, **{**uvicorn_options(settings), **uvicorn_overrides}
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:
            # uvicorn exits the process when startup fails; here that would escape the event loop and take the
            # worker's later tests with it. It fails this test, with the reason in the captured log.
            raise RuntimeError(f"the server's startup failed (exit {exc.code})") from None

    task = asyncio.create_task(serve())
    # With the sandbox on, start-up runs a program in every language (javac and the JVM take seconds on a busy
    # machine): a deadline in seconds, generous, rather than a count of polls.
    deadline = asyncio.get_running_loop().time() + 60
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before it started")
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.01)
    return LiveServer(settings, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", server, task)


ServerFactory = Callable[..., Awaitable[LiveServer]]


@asynccontextmanager
async def servers_on(database_url: str) -> AsyncIterator[ServerFactory]:
    """A factory of servers on one database, all stopped on exit."""
    servers: list[LiveServer] = []

    async def factory(**overrides: Any) -> LiveServer:
        server = await start_server(Settings(database_url=database_url, **overrides))
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(servers):
            if not server.task.done():
                await server.stop()


@pytest.fixture
async def server_factory(database_url: str) -> AsyncIterator[ServerFactory]:
    """Start servers on the test's database; ``await server_factory(max_participants=3)`` overrides settings."""
    async with servers_on(database_url) as factory:
        yield factory


@pytest.fixture
async def server(server_factory: ServerFactory) -> LiveServer:
    return await server_factory()


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No CODECONNECT_* variables from the developer's shell leak into a test."""
    for key in list(os.environ):
        if key.startswith("CODECONNECT_") and key != "CODECONNECT_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    yield


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10, interval: float = 0.05) -> None:
    """Wait until ``check()`` holds (polled: for conditions only another process or a database can tell)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(interval)
