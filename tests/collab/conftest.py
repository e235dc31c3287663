"""Fixtures of the live co-editing tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import LiveServer, ServerFactory, fresh_sqlite, servers_on


@pytest.fixture
async def sqlite_server_factory(sqlite_url: str) -> AsyncIterator[ServerFactory]:
    """Servers on one SQLite database, for tests whose subject does not depend on the backend (limits,
    malformed input): they run once instead of once per backend."""
    await fresh_sqlite(sqlite_url)
    async with servers_on(sqlite_url) as factory:
        yield factory


@pytest.fixture
async def http(sqlite_server_factory: ServerFactory) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient]]:
    server = await sqlite_server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
        yield server, c
