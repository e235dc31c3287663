"""Redis goes away during a stream of edits on two processes and comes back empty: rooms keep working for each
process's clients meanwhile, /readyz says Redis is down (and stays 200), so does /metrics, and everything
converges once it is back."""

from __future__ import annotations

import httpx
import pytest

from tests.cluster.conftest import RedisProcess, RedisProxy, one_client_each
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory, eventually
from tests.test_metrics import scrape


async def _redis_is(http: httpx.AsyncClient, state: str) -> bool:
    r = await http.get("/readyz")
    return r.status_code == 200 and r.json()["redis"] == state


@pytest.mark.parametrize("edits", [20, 150], ids=["resent", "healed-from-the-log"])
async def test_edits_made_while_redis_is_down_merge_when_it_returns(
    cluster: ServerFactory, own_redis: RedisProcess, edits: int, caplog: pytest.LogCaptureFixture
) -> None:
    # 150 edits overflow what a process keeps for Redis (100 entries here): the oldest reach the other process
    # only by healing from the update log.
    settings = {"redis_url": own_redis.url, "redis_heal_seconds": 1, "redis_outbox_entries": 100}
    a_srv: LiveServer = await cluster(**settings)
    b_srv: LiveServer = await cluster(**settings)
    async with (
        httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as a_http,
        httpx.AsyncClient(base_url=b_srv.base_url, timeout=30) as b_http,
    ):
        s = await new_session(a_http, language="python")
        sid = s["id"]
        tokens = [(await join(a_http, sid, name))["token"] for name in ("Ada", "Ann", "Bob")]
        a = await YClient(collab_url(a_srv.ws_url, sid, tokens[0])).connect()
        a2 = await YClient(collab_url(a_srv.ws_url, sid, tokens[1])).connect()
        b = await YClient(collab_url(b_srv.ws_url, sid, tokens[2])).connect()
        a.code += "before\n"
        await b.wait_for(lambda: "before" in b.text)
        assert await _redis_is(a_http, "up")

        own_redis.kill()
        for i in range(edits):
            a.code += f"a{i}\n"
            b.code += f"b{i}\n"
        # Each process's clients keep editing together.
        await a2.wait_for(lambda: f"a{edits - 1}" in a2.text)
        await eventually(lambda: _redis_is(a_http, "down"))
        await eventually(lambda: _redis_is(b_http, "down"))
        # Both processes of this test share one set of metrics: both down, the gauge says so.
        assert (await scrape(a_http)).value("codeconnect_redis_up") == 0
        assert "b0" not in a.text and "a0" not in b.text  # nothing crossed: Redis is the only way across

        await own_redis.start()  # empty: nothing of before survives
        for client in (a, a2, b):
            await client.wait_for(lambda c=client: f"a{edits - 1}" in c.text and f"b{edits - 1}" in c.text, timeout=10)
        assert a.text == a2.text == b.text
        assert all(f"a{i}\n" in a.text and f"b{i}\n" in a.text for i in range(edits))
        await eventually(lambda: _redis_is(a_http, "up"))
        await eventually(lambda: _redis_is(b_http, "up"))
        assert (await scrape(b_http)).value("codeconnect_redis_up") == 1
        # Each process said it once when Redis went, and once when it came back (not at every retry).
        messages = [r.getMessage() for r in caplog.records if r.name == "codeconnect.collab.redis_cluster"]
        assert sum("Redis is unreachable" in m for m in messages) == 2, messages
        assert sum("Redis is reachable again" in m for m in messages) == 2, messages

        # And the cluster works as before.
        b.code += "after\n"
        await a.wait_for(lambda: "after" in a.text)
        for client in (a, a2, b):
            await client.close()

        # A process stops promptly while Redis is down (it flushes to the database, which is up).
        own_redis.kill()
        await a_srv.stop()  # within its 15 s


async def test_a_process_cut_off_alone_tells_the_others_to_heal_what_it_could_not_send(
    redis_proxy: RedisProxy, cluster: ServerFactory
) -> None:
    # Only process A loses Redis; B keeps it, so B has no reconnect of its own to heal after. A keeps 100 entries
    # for Redis: of 150 edits the oldest 50 are dropped, and the 100 it sends later cannot apply on B without
    # them. A must tell B to heal that session from the update log, where A committed all 150.
    settings = {"redis_heal_seconds": 1, "redis_outbox_entries": 100}
    a_srv: LiveServer = await cluster(redis_url=redis_proxy.url, **settings)
    b_srv: LiveServer = await cluster(**settings)
    _, _, a, b = await one_client_each(a_srv, b_srv, ("Ada", "Bob"))
    async with (
        httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as a_http,
        httpx.AsyncClient(base_url=b_srv.base_url, timeout=30) as b_http,
    ):
        a.code += "before\n"
        await b.wait_for(lambda: "before" in b.text)

        await redis_proxy.cut()
        await eventually(lambda: _redis_is(a_http, "down"))
        for i in range(150):
            a.code += f"a{i}\n"
        b.code += "by Bob\n"
        assert await _redis_is(b_http, "up")

        await redis_proxy.start()
        await a.wait_for(lambda: "by Bob" in a.text, timeout=10)
        await b.wait_for(lambda: all(f"a{i}\n" in b.text for i in range(150)), timeout=10)
        await eventually(lambda: _same(a, b))
        assert b.text.count("a0\n") == 1 and b.text.count("by Bob") == 1
    await a.close()
    await b.close()


async def _same(a: YClient, b: YClient) -> bool:
    return a.text == b.text
