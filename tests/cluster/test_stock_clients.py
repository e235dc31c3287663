"""Stock y-websocket clients spread over the processes of a cluster: three servers on their own ports, and one
`codeconnect serve --workers 2` on one port."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.cluster.conftest import VOLUME_ENV
from tests.conftest import REDIS_URL, LiveServer, ServerFactory, require_service
from tests.interop.test_interop import check_stock_clients
from tests.test_cli import start_serve, stop


@pytest.mark.slow
async def test_stock_clients_over_three_processes_converge(cluster: ServerFactory) -> None:
    servers: list[LiveServer] = [await cluster() for _ in range(3)]
    async with httpx.AsyncClient(base_url=servers[1].base_url, timeout=30) as http:
        await check_stock_clients([s.ws_url for s in servers], http)


@pytest.mark.slow
async def test_serve_with_two_workers_shares_sessions(pg_url: str, tmp_path: Path) -> None:
    require_service("Redis", REDIS_URL, 6379)
    srv = start_serve(pg_url, tmp_path, "--workers", "2", CODECONNECT_REDIS_URL=REDIS_URL, **VOLUME_ENV)
    try:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as http:
            r = await http.get("/readyz")
            assert r.json() == {"status": "ok", "redis": "up"}
            session_id = await check_stock_clients([srv.base_url.replace("http://", "ws://")], http)
        # Which worker took which connection is the kernel's choice; what the workers published says.
        redis = aioredis.Redis.from_url(REDIS_URL)
        try:
            entries = await redis.xrange(f"ccl:s:{session_id}")
        finally:
            await redis.aclose()
        origins = {fields[b"o"] for _, fields in entries}
        assert 1 <= len(origins) <= 2
    finally:
        stop(srv, signal.SIGTERM)
        assert srv.proc.returncode is not None
