"""Several servers sharing one PostgreSQL database and one Redis: the clustered mode."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import REDIS_URL, ServerFactory, fresh_pg_database, require_service, servers_on


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture
async def cluster(pg_url: str) -> AsyncIterator[ServerFactory]:
    """Start servers of one cluster: ``await cluster()`` for each process (``redis_url=`` to use another Redis)."""
    require_service("Redis", REDIS_URL, 6379)

    async with servers_on(pg_url) as factory:

        async def start(**overrides: object) -> object:
            return await factory(**{"redis_url": REDIS_URL, "process_heartbeat_seconds": 0.5, **overrides})

        yield start  # type: ignore[misc]
