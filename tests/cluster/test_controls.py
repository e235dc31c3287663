"""The owner's controls hold on every process of a cluster: an end makes every process's connections read-only,
a reopen lets them write again, a removal closes the participant's connections everywhere and drops its token
from every process's cache."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis

from codeconnect.collab import protocol as p
from tests.cluster.conftest import RedisProcess, RedisProxy
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory, eventually

ENDED = p.auth_message(p.AuthType.PERMISSION_DENIED, p.SESSION_ENDED)
REOPENED = p.auth_message(p.AuthType.PERMISSION_GRANTED, p.SESSION_REOPENED)


def _answers(c: YClient) -> int:
    return sum(1 for m in c.received if m[:2] == b"\x00\x01")


async def test_ending_and_reopening_reach_every_process(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    async with httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as http:
        s = await new_session(http)
        sid = s["id"]
        ada = (await join(http, sid, "Ada"))["token"]
        bob = (await join(http, sid, "Bob"))["token"]
        a = await YClient(collab_url(a_srv.ws_url, sid, ada)).connect()
        b = await YClient(collab_url(b_srv.ws_url, sid, bob)).connect()
        a.code.insert(0, "# shared\n")
        await b.wait_for(lambda: "# shared" in b.text)

        r = await http.post(f"/v1/sessions/{sid}/end", headers={"X-Owner-Key": s["ownerKey"]})
        assert r.status_code == 200
        await a.wait_for(lambda: ENDED in a.received)
        await b.wait_for(lambda: ENDED in b.received)  # told by its own process, which heard it from A's
        before = b.doc.get_state()
        b.code.insert(0, "# Bob on B after the end\n")
        await b.send(p.sync_update(b.doc.get_update(before)))
        answers = _answers(b)
        await b.send(p.sync_step1(b.doc.get_state()))
        await b.wait_for(lambda: _answers(b) > answers)
        # Refused on B: neither relayed to A nor stored (a REST read on B goes through its room; on A the row).
        async with httpx.AsyncClient(base_url=b_srv.base_url, timeout=30) as on_b:
            assert "after the end" not in (await on_b.get(f"/v1/sessions/{sid}")).json()["code"]
            assert (await on_b.put(f"/v1/sessions/{sid}", json={"code": "x"})).json()["error"] == "session_ended"
        assert "after the end" not in a.text

        r = await http.post(f"/v1/sessions/{sid}/reopen", headers={"X-Owner-Key": s["ownerKey"]})
        assert r.status_code == 200
        await b.wait_for(lambda: REOPENED in b.received)
        # b's own copy holds the refused edit (a stock client keeps what it typed), so a new connection on B types:
        # an edit that builds on the refused one would wait for it on every other copy.
        b2 = await YClient(collab_url(b_srv.ws_url, sid, bob)).connect()
        b2.code.insert(0, "# Bob again\n")
        await a.wait_for(lambda: "# Bob again" in a.text)
        for c in (a, b, b2):
            await c.close()


async def test_a_removal_closes_and_forgets_on_every_process(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    async with httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as http:
        s = await new_session(http)
        sid = s["id"]
        ada = (await join(http, sid, "Ada"))["token"]
        mallory = await join(http, sid, "Mallory")
        a = await YClient(collab_url(a_srv.ws_url, sid, ada)).connect()
        # Mallory's token is in B's cache (checked there), and she is connected there.
        m = await YClient(collab_url(b_srv.ws_url, sid, mallory["token"])).connect()
        await m.set_awareness({"user": {"name": "Mallory"}})
        await a.wait_for(lambda: m.doc.client_id in a.awareness)

        owner = {"X-Owner-Key": s["ownerKey"]}
        r = await http.delete(f"/v1/sessions/{sid}/participants/{mallory['id']}", headers=owner)
        assert r.status_code == 204
        assert await m.wait_closed() == p.CloseCode.FORBIDDEN
        await a.wait_for(lambda: m.doc.client_id not in a.awareness)
        again = YClient(collab_url(b_srv.ws_url, sid, mallory["token"]))
        with pytest.raises(TimeoutError):
            await again.connect(sync_timeout=5)
        assert again.close_code == p.CloseCode.UNAUTHORIZED

        async def only_ada_listed_on_b() -> bool:
            async with httpx.AsyncClient(base_url=b_srv.base_url, timeout=30) as on_b:
                people = (await on_b.get(f"/v1/sessions/{sid}")).json()["participants"]
            return [x["name"] for x in people] == ["Ada"]

        await eventually(only_ada_listed_on_b)  # B's card of the session was dropped too
        await a.close()


async def test_a_process_that_lost_the_news_reads_the_controls_again_after_the_gap(
    cluster: ServerFactory, own_redis: RedisProcess
) -> None:
    # B is cut off from Redis while the owner ends the session and removes Mallory through A, and the events that
    # carried the news are lost (the stream is gone when B is back, as after a Redis restart). B must not go on
    # taking Mallory's token and Ada's edits: after the gap it reads what it learnt from events again.
    proxy = RedisProxy(own_redis.port)
    await proxy.start()
    a_srv: LiveServer = await cluster(redis_url=own_redis.url)
    b_srv: LiveServer = await cluster(redis_url=proxy.url)
    try:
        async with httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as http:
            s = await new_session(http)
            sid = s["id"]
            ada = (await join(http, sid, "Ada"))["token"]
            mallory = await join(http, sid, "Mallory")
            a = await YClient(collab_url(b_srv.ws_url, sid, ada)).connect()
            m = await YClient(collab_url(b_srv.ws_url, sid, mallory["token"])).connect()
            a.code.insert(0, "# shared\n")
            await m.wait_for(lambda: "# shared" in m.text)

            await proxy.cut()
            owner = {"X-Owner-Key": s["ownerKey"]}
            r = await http.delete(f"/v1/sessions/{sid}/participants/{mallory['id']}", headers=owner)
            assert r.status_code == 204
            assert (await http.post(f"/v1/sessions/{sid}/end", headers=owner)).status_code == 200
            events = aioredis.Redis.from_url(own_redis.url)
            try:
                await eventually(lambda: _events_kept(events))  # A published them...
                await events.delete(b"ccl:events")  # ...and they are lost
            finally:
                await events.aclose()
            assert not m.closed.is_set() and ENDED not in a.received  # B has not heard

            await proxy.start()
            assert await m.wait_closed(timeout=20) == p.CloseCode.FORBIDDEN
            await a.wait_for(lambda: ENDED in a.received, timeout=20)
            again = YClient(collab_url(b_srv.ws_url, sid, mallory["token"]))
            with pytest.raises(TimeoutError):
                await again.connect(sync_timeout=5)
            assert again.close_code == p.CloseCode.UNAUTHORIZED
            await a.close()
    finally:
        await proxy.cut()


async def _events_kept(events: aioredis.Redis) -> bool:
    return int(await events.xlen(b"ccl:events")) >= 2
