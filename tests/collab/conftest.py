"""Fixtures of the live co-editing tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from codeconnect.config import Settings
from codeconnect.db import run_migrations
from tests.conftest import LiveServer, ServerFactory, start_server


@pytest.fixture
async def sqlite_server_factory(sqlite_url: str) -> AsyncIterator[ServerFactory]:
    """Servers on one SQLite database, for tests whose subject does not depend on the backend (limits,
    malformed input): they run once instead of once per backend."""
    await run_migrations(sqlite_url)
    servers: list[LiveServer] = []

    async def factory(**overrides: Any) -> LiveServer:
        server = await start_server(Settings(database_url=sqlite_url, **overrides))
        servers.append(server)
        return server

    yield factory
    for server in reversed(servers):
        if not server.task.done():
            await server.stop()


@pytest.fixture
async def http(sqlite_server_factory: ServerFactory) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient]]:
    server = await sqlite_server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
        yield server, c
