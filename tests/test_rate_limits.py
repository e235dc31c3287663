"""REST rate limits per client address (creations and joins), with and without trusted proxies."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from codeconnect.app import create_app
from codeconnect.config import Settings
from codeconnect.errors import TooManyRequests
from codeconnect.execution.service import ExecutionService
from codeconnect.rates import RateLimits
from tests.conftest import LiveServer, ServerFactory, fresh_sqlite, servers_on


@pytest.fixture
async def servers(sqlite_url: str) -> AsyncIterator[ServerFactory]:
    await fresh_sqlite(sqlite_url)
    async with servers_on(sqlite_url) as factory:
        yield factory


def rows(server: LiveServer, table: str) -> int:
    database = make_url(server.settings.database_url).database
    assert database is not None
    with sqlite3.connect(database) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


def client_from(server: LiveServer, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``address`` (any of 127.0.0.0/8 reaches the server)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=server.base_url, transport=transport, timeout=30)


def forwarded(*hops: str) -> dict[str, str]:
    return {"X-Forwarded-For": ", ".join(hops)}


def assert_limited(r: httpx.Response) -> int:
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "rate_limited"
    assert "location" not in r.headers
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 60
    return retry_after


async def test_the_31st_creation_in_a_minute_is_refused_and_creates_nothing(servers: ServerFactory) -> None:
    server = await servers()  # the defaults: 30 a minute
    async with client_from(server) as http:
        for _ in range(30):
            assert (await http.post("/v1/sessions", json={})).status_code == 201
        assert_limited(await http.post("/v1/sessions", json={"title": "one too many"}))
        assert rows(server, "sessions") == 30
        # Every attempt counts, a malformed one too, before it is looked at.
        assert_limited(await http.post("/v1/sessions", json={"language": 42}))
    # Another address has its own budget.
    async with client_from(server, "127.0.0.2") as other:
        assert (await other.post("/v1/sessions", json={})).status_code == 201
    assert rows(server, "sessions") == 31


async def test_joins_are_limited_per_address_over_every_session(servers: ServerFactory) -> None:
    server = await servers(rate_joins_per_minute=3)
    async with client_from(server) as http:
        first = (await http.post("/v1/sessions", json={})).json()
        second = (await http.post("/v1/sessions", json={})).json()
        for sid, name in ((first["id"], "Ada"), (second["id"], "Bob")):
            assert (await http.post(f"/v1/sessions/{sid}/participants", json={"name": name})).status_code == 201
        # A read-only link's join counts in the same budget.
        r = await http.post(f"/v1/views/{first['viewerId']}/participants", json={"name": "Val"})
        assert r.status_code == 201
        assert_limited(await http.post(f"/v1/sessions/{first['id']}/participants", json={"name": "Cy"}))
        assert_limited(await http.post(f"/v1/views/{first['viewerId']}/participants", json={"name": "Vi"}))
        assert_limited(await http.post("/v1/sessions/no-such-session/participants", json={"name": "Eve"}))
        assert rows(server, "participants") == 3
        listed = (await http.get(f"/v1/sessions/{first['id']}/participants")).json()
        assert [p["name"] for p in listed] == ["Ada", "Val"]
        # Creations have a budget of their own.
        assert (await http.post("/v1/sessions", json={})).status_code == 201
    async with client_from(server, "127.0.0.3") as other:
        assert (await other.post(f"/v1/sessions/{first['id']}/participants", json={"name": "Di"})).status_code == 201


async def test_a_zero_limit_is_no_limit(servers: ServerFactory) -> None:
    server = await servers(rate_sessions_per_minute=0, rate_joins_per_minute=0)
    async with client_from(server) as http:
        sid = (await http.post("/v1/sessions", json={})).json()["id"]
        for i in range(5):
            assert (await http.post("/v1/sessions", json={})).status_code == 201
            assert (await http.post(f"/v1/sessions/{sid}/participants", json={"name": f"P{i}"})).status_code == 201


async def test_without_trusted_proxies_a_forwarded_for_changes_nothing(servers: ServerFactory) -> None:
    server = await servers(rate_sessions_per_minute=3)
    async with client_from(server) as http:
        for n in range(3):
            r = await http.post("/v1/sessions", json={}, headers=forwarded(f"198.51.100.{n}"))
            assert r.status_code == 201
        # Each request claimed another client; all of them were counted against the peer.
        assert_limited(await http.post("/v1/sessions", json={}, headers=forwarded("198.51.100.99")))
        assert_limited(await http.post("/v1/sessions", json={}))
    assert rows(server, "sessions") == 3


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(servers: ServerFactory) -> None:
    server = await servers(rate_sessions_per_minute=2, trusted_proxies="127.0.0.1, 10.0.0.0/8")
    async with client_from(server) as proxy:
        for _ in range(2):
            assert (await proxy.post("/v1/sessions", json={}, headers=forwarded("198.51.100.1"))).status_code == 201
        assert_limited(await proxy.post("/v1/sessions", json={}, headers=forwarded("198.51.100.1")))
        # Another client behind the proxy is not held back.
        assert (await proxy.post("/v1/sessions", json={}, headers=forwarded("198.51.100.2"))).status_code == 201
        # The right-most untrusted hop is the client: a second trusted proxy (10.x) in the chain is skipped...
        assert_limited(await proxy.post("/v1/sessions", json={}, headers=forwarded("198.51.100.1", "10.1.1.1")))
        # ...and whatever the client wrote in front of its own address is not believed.
        spoofed = forwarded("203.0.113.50", "198.51.100.1")
        assert_limited(await proxy.post("/v1/sessions", json={}, headers=spoofed))
        spoofed = forwarded("198.51.100.1", "198.51.100.3")  # .3 is who the proxy saw
        assert (await proxy.post("/v1/sessions", json={}, headers=spoofed)).status_code == 201
        # Without the header the proxy itself is the client, with a budget of its own.
        assert (await proxy.post("/v1/sessions", json={})).status_code == 201
    # A peer that is not a trusted proxy is counted as itself, whatever it forwards.
    async with client_from(server, "127.0.0.4") as direct:
        assert (await direct.post("/v1/sessions", json={}, headers=forwarded("198.51.100.7"))).status_code == 201
        assert (await direct.post("/v1/sessions", json={}, headers=forwarded("198.51.100.8"))).status_code == 201
        assert_limited(await direct.post("/v1/sessions", json={}, headers=forwarded("198.51.100.9")))
    assert rows(server, "sessions") == 7


async def test_ipv6_clients_are_counted_per_64(servers: ServerFactory) -> None:
    server = await servers(rate_sessions_per_minute=1, trusted_proxies="127.0.0.1")
    async with client_from(server) as proxy:
        assert (await proxy.post("/v1/sessions", json={}, headers=forwarded("2001:db8:1:2::1"))).status_code == 201
        assert_limited(await proxy.post("/v1/sessions", json={}, headers=forwarded("[2001:db8:1:2:ffff::9]:443")))
        assert (await proxy.post("/v1/sessions", json={}, headers=forwarded("2001:db8:1:3::1"))).status_code == 201


async def test_the_sandbox_counts_runs_under_the_same_address(
    servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox is off here (it needs bubblewrap): what is checked is the address its rate is counted under.
    seen: list[str] = []

    async def execute(self: ExecutionService, language: str, code: str, stdin: str, client: str, *_: Any) -> None:
        seen.append(client)
        raise TooManyRequests("counted", code="rate_limited", headers={"Retry-After": "1"})

    monkeypatch.setattr(ExecutionService, "execute", execute)
    behind = await servers(trusted_proxies="127.0.0.1")
    direct = await servers()
    run = {"language": "python", "code": "print(1)"}
    for server in (behind, direct):
        async with client_from(server) as http:
            r = await http.post("/v1/execute", json=run, headers=forwarded("6.6.6.6", "198.51.100.5"))
            assert r.status_code == 429
    assert seen == ["198.51.100.5", "127.0.0.1"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_window_is_a_minute_long() -> None:
    clock = Clock()
    rates = RateLimits(Settings(rate_sessions_per_minute=2), clock=clock)
    await rates.check("sessions", ["a"])
    clock.now += 30
    await rates.check("sessions", ["a"])
    with pytest.raises(TooManyRequests) as refused:
        await rates.check("sessions", ["a"])
    assert refused.value.headers == {"Retry-After": "30"}
    clock.now += 29.5
    with pytest.raises(TooManyRequests) as refused:
        await rates.check("sessions", ["a"])
    assert refused.value.headers == {"Retry-After": "1"}  # never 0: a client told 0 would retry at once
    clock.now += 0.5
    await rates.check("sessions", ["a"])  # the first one is a minute old
    await rates.check("joins", ["a"])  # joins are counted apart


async def test_every_key_of_a_request_must_have_room() -> None:
    # A request may be counted under several keys (its address, later its credential): the first full one refuses.
    clock = Clock()
    rates = RateLimits(Settings(rate_joins_per_minute=1), clock=clock)
    await rates.check("joins", ["address-1", "key-1"])
    with pytest.raises(TooManyRequests):
        await rates.check("joins", ["address-2", "key-1"])
    with pytest.raises(TooManyRequests):
        await rates.check("joins", ["address-2", "key-2"])  # address-2 was counted before key-1 refused
    await rates.check("joins", ["address-3", "key-2"])


async def test_the_shared_count_decides_and_the_local_one_stands_in_when_it_cannot() -> None:
    answers: list[float | None] = [0.0, 12.2, None]
    asked: list[tuple[str, int]] = []

    async def shared(key: str, per_minute: int) -> float | None:
        asked.append((key, per_minute))
        return answers.pop(0)

    rates = RateLimits(Settings(rate_sessions_per_minute=1), shared, clock=Clock())
    await rates.check("sessions", ["198.51.100.1"])
    with pytest.raises(TooManyRequests) as refused:
        await rates.check("sessions", ["198.51.100.1"])
    assert refused.value.headers == {"Retry-After": "13"}
    await rates.check("sessions", ["198.51.100.1"])  # Redis away: counted here, where it is the first
    assert asked == [("sessions:198.51.100.1", 1)] * 3


def test_the_limits_are_in_the_openapi_schema() -> None:
    schema = create_app(Settings()).openapi()
    for path in ("/v1/sessions", "/v1/sessions/{sessionId}/participants", "/v1/views/{viewerId}/participants"):
        assert "429" in schema["paths"][path]["post"]["responses"], path
