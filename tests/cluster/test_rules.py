"""Rules per session and per participant hold across the processes of a cluster, not only inside one."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

import httpx
import pytest

from codeconnect.collab.protocol import CloseCode
from codeconnect.collab.redis_cluster import RedisCluster
from codeconnect.config import Settings
from codeconnect.execution.registry import RunRegistry
from tests.cluster.conftest import one_client_each, session_on
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import REDIS_URL, LiveServer, ServerFactory, eventually


async def test_the_connection_limit_of_a_session_counts_every_process(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster(max_connections_per_session=2, session_seats_kept_for_editors=0)
    b_srv: LiveServer = await cluster(max_connections_per_session=2, session_seats_kept_for_editors=0)
    async with httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as http:
        s = await new_session(http)
        sid = s["id"]
        tokens = [(await join(http, sid, name))["token"] for name in ("Ada", "Bob", "Cy")]
        a = await YClient(collab_url(a_srv.ws_url, sid, tokens[0])).connect()
        b = await YClient(collab_url(b_srv.ws_url, sid, tokens[1])).connect()

        async def both_online_on_a() -> bool:
            r = await http.get(f"/v1/sessions/{sid}/participants")
            return sum(p["online"] for p in r.json()) == 2

        await eventually(both_online_on_a)  # within the documented slack: B's connection is known on A
        third = YClient(collab_url(a_srv.ws_url, sid, tokens[2]))
        with pytest.raises(TimeoutError):
            await third.connect(sync_timeout=5)
        assert third.close_code == CloseCode.TOO_MANY
        await b.close()

        async def one_online_on_a() -> bool:
            r = await http.get(f"/v1/sessions/{sid}/participants")
            return sum(p["online"] for p in r.json()) == 1

        await eventually(one_online_on_a)
        again = await YClient(collab_url(a_srv.ws_url, sid, tokens[2])).connect()
        await again.close()
        await a.close()


async def test_a_client_id_is_its_owners_on_every_process(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    sid, people = await session_on(a_srv, "Ada", "Mallory")
    ada, mallory = people["Ada"]["token"], people["Mallory"]["token"]
    a = await YClient(collab_url(a_srv.ws_url, sid, ada)).connect()
    watcher = await YClient(collab_url(b_srv.ws_url, sid, mallory)).connect()
    a.code += "# Ada's line\n"
    await watcher.wait_for(lambda: "Ada's line" in watcher.text)
    await watcher.close()
    # Mallory, on the other process, writes under Ada's client id (public through awareness): refused there,
    # so Ada's next edits are not silently dropped as duplicates everywhere.
    m = await YClient(collab_url(b_srv.ws_url, sid, mallory), client_id=a.doc.client_id).connect()
    m.code += "# forged\n"
    assert await m.wait_closed() == CloseCode.BAD_MESSAGE
    a.code += "# Ada again\n"
    check = await YClient(collab_url(b_srv.ws_url, sid, ada)).connect()
    await check.wait_for(lambda: "Ada again" in check.text)
    assert "forged" not in check.text
    # Ada herself may reconnect to the other process with her document and go on.
    await a.close()
    back = await YClient(collab_url(b_srv.ws_url, sid, ada), doc=a.doc).connect()
    back.code += "# Ada on B\n"
    await check.wait_for(lambda: "Ada on B" in check.text)
    await back.close()
    await check.close()


async def test_a_strike_on_one_process_holds_the_participant_back_on_all(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    sid, people = await session_on(a_srv, "Mallory")
    mallory = people["Mallory"]["token"]
    m = await YClient(collab_url(a_srv.ws_url, sid, mallory)).connect()
    await m.send(b"\xff\xff\xff")  # not a message: closed for breaking a rule, a strike
    assert await m.wait_closed() == CloseCode.BAD_MESSAGE

    async def refused_on_b() -> bool:
        other = YClient(collab_url(b_srv.ws_url, sid, mallory))
        try:
            await other.connect(sync_timeout=5)
        except TimeoutError:
            return other.close_code == CloseCode.TOO_MANY and "refused connections" in (other.close_reason or "")
        await other.close()
        return False

    await eventually(refused_on_b)


async def test_the_run_rate_of_a_client_is_counted_over_the_cluster(pg_url: str) -> None:
    # Two processes' views of the sandbox's per-client rate (exec_rate_per_minute): one window in Redis.
    settings = Settings(database_url=pg_url, redis_url=REDIS_URL)
    first, second = RedisCluster(settings), RedisCluster(settings)
    key = f"test-{uuid.uuid4().hex}"
    try:
        assert await first.take_rate(key, 3) == 0
        assert await second.take_rate(key, 3) == 0
        assert await first.take_rate(key, 3) == 0
        wait = await second.take_rate(key, 3)
        assert wait is not None and 55 < wait <= 60
        assert await first.take_rate(f"{key}-other", 3) == 0  # another client is not held back
    finally:
        await first.__aexit__(None, None, None)
        await second.__aexit__(None, None, None)


async def test_the_rest_rates_of_a_client_are_counted_over_the_cluster(cluster: ServerFactory) -> None:
    # One budget in Redis for both processes. The client is an address of the test's own (a fresh IPv6 /64 behind
    # a trusted 127.0.0.1): the test Redis is shared by every test of the run, and by runs within the minute.
    limits = {"rate_sessions_per_minute": 2, "rate_joins_per_minute": 2, "trusted_proxies": "127.0.0.1"}
    a_srv: LiveServer = await cluster(**limits)
    b_srv: LiveServer = await cluster(**limits)
    me = {"X-Forwarded-For": f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"}
    async with (
        httpx.AsyncClient(base_url=a_srv.base_url, timeout=30, headers=me) as a,
        httpx.AsyncClient(base_url=b_srv.base_url, timeout=30, headers=me) as b,
    ):
        sid = (await a.post("/v1/sessions", json={})).json()["id"]
        assert (await b.post("/v1/sessions", json={})).status_code == 201
        refused = await a.post("/v1/sessions", json={})
        assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
        assert 55 <= int(refused.headers["retry-after"]) <= 60
        assert (await b.post(f"/v1/sessions/{sid}/participants", json={"name": "Ada"})).status_code == 201
        assert (await a.post(f"/v1/sessions/{sid}/participants", json={"name": "Bob"})).status_code == 201
        assert (await b.post(f"/v1/sessions/{sid}/participants", json={"name": "Cy"})).status_code == 429
        # Another client of the same processes is not held back.
        other = {"X-Forwarded-For": f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"}
        assert (await b.post("/v1/sessions", json={}, headers=other)).status_code == 201


async def test_a_stop_reaches_the_run_on_another_process(pg_url: str) -> None:
    settings = Settings(database_url=pg_url, redis_url=REDIS_URL)
    here, there = RunRegistry(), RunRegistry()
    clusters = [RedisCluster(settings), RedisCluster(settings)]
    for registry, cluster in zip((here, there), clusters, strict=True):
        registry.share = partial(cluster.share, "run-stop")
        cluster.listen("run-stop", registry.apply_shared)
        await cluster.__aenter__()
    try:
        session, run = uuid.uuid4().hex, uuid.uuid4().hex
        with there.track(session, run) as stopped:
            assert here.stop(session, run) is False  # not running on the process the stop reached
            await asyncio.wait_for(stopped.wait(), 10)
        # A stop that comes before its run starts elsewhere is kept there for it.
        early = uuid.uuid4().hex
        here.stop(session, early)

        async def kept_there() -> bool:
            with there.track(session, early) as stop:
                return stop.is_set()

        await eventually(kept_there)
    finally:
        for cluster in clusters:
            await cluster.__aexit__(None, None, None)


async def test_nobody_speaks_for_another_process_s_client_in_awareness(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    _, people, v, m = await one_client_each(b_srv, a_srv, ("Vera", "Mallory"))
    vera = people["Vera"]
    await v.set_awareness({"user": {"name": "Vera"}})
    await m.wait_for(lambda: v.doc.client_id in m.awareness)
    # Mallory, on the other process, announces Vera's client id (public through awareness), then clears it.
    await m.set_awareness({"user": {"name": "Vera"}}, client_id=v.doc.client_id)
    await m.set_awareness(None, client_id=v.doc.client_id)
    await m.set_awareness({"user": {"name": "Mallory"}})  # her own: arrives after the two above
    await v.wait_for(lambda: m.doc.client_id in v.awareness)
    assert v.awareness[v.doc.client_id]["user"]["participantId"] == vera["id"]
    assert m.awareness[v.doc.client_id]["user"]["participantId"] == vera["id"]
    await v.close()
    await m.close()
