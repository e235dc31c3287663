"""Liveness and readiness."""

from __future__ import annotations

import httpx

from codeconnect.config import Settings
from tests.conftest import start_server


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    # Nothing listens on port 1: the process is alive, but not ready.
    settings = Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    server = await start_server(settings)
    try:
        async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
            assert (await client.get("/healthz")).status_code == 200
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["error"] == "database_unavailable"
    finally:
        await server.stop()
