"""Two processes serving the same sessions through Redis: edits, REST, presence and awareness cross."""

from __future__ import annotations

from collections.abc import Awaitable

import httpx
import redis.asyncio as aioredis
from pycrdt import Array
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from codeconnect.collab.document import RUNS
from codeconnect.models import DocUpdateRow
from tests.cluster.conftest import one_client_each, session_on
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import REDIS_URL, LiveServer, ServerFactory, eventually

CURSOR = {
    "anchor": {"type": None, "tname": "code", "item": None, "assoc": 0},
    "head": {"type": None, "tname": "code", "item": None, "assoc": 0},
}


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _rows(database_url: str, session_id: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return int(
                await conn.scalar(select(func.count()).where(DocUpdateRow.session_id == session_id)) or 0
            )
    finally:
        await engine.dispose()


async def test_edits_rest_and_presence_cross_processes(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    async with (
        httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as a_http,
        httpx.AsyncClient(base_url=b_srv.base_url, timeout=30) as b_http,
    ):
        s = await new_session(a_http, language="python")
        sid = s["id"]
        ada = await join(a_http, sid, "Ada")
        bob = await join(b_http, sid, "Bob")  # REST on either process
        a = await YClient(collab_url(a_srv.ws_url, sid, ada["token"])).connect()
        b = await YClient(collab_url(b_srv.ws_url, sid, bob["token"])).connect()

        # Edits on each process reach the clients of the other.
        a.code.insert(0, "# by Ada\n")
        await b.wait_for(lambda: "# by Ada" in b.text)
        b.code += "# by Bob\n"
        await a.wait_for(lambda: "# by Bob" in a.text)
        assert a.text == b.text

        # REST on one process reads and writes the live document held by both.
        r = await b_http.get(f"/v1/sessions/{sid}")
        assert r.status_code == 200 and r.json()["code"] == b.text
        r = await a_http.put(f"/v1/sessions/{sid}", json={"code": b.text + "# by REST\n"})
        assert r.status_code == 200, r.text
        r = await a_http.put(f"/v1/sessions/{sid}/language", json={"language": "javascript"})
        assert r.status_code == 200, r.text
        await b.wait_for(lambda: b.text.endswith("# by REST\n") and b.meta.get("language") == "javascript")

        # Online flags are cluster-wide; awareness crosses and leaves with its client.
        async def online(http: httpx.AsyncClient) -> dict[str, bool]:
            r = await http.get(f"/v1/sessions/{sid}/participants")
            return {p["name"]: p["online"] for p in r.json()}

        for http in (a_http, b_http):
            await eventually(lambda http=http: _is(online(http), {"Ada": True, "Bob": True}))

        await a.set_awareness({"user": {"name": "Ada"}, "cursor": CURSOR})
        await b.wait_for(lambda: a.doc.client_id in b.awareness)
        assert b.awareness[a.doc.client_id]["user"]["participantId"] == ada["id"]
        # A newcomer on the other process gets the states held there at once.
        late = await YClient(collab_url(b_srv.ws_url, sid, bob["token"])).connect()
        await late.wait_for(lambda: a.doc.client_id in late.awareness)
        await late.close()

        await a.close()
        await b.wait_for(lambda: a.doc.client_id not in b.awareness)
        await eventually(lambda: _is(online(b_http), {"Ada": False, "Bob": True}))
        await b.close()


async def test_every_update_is_stored_once_by_its_origin(cluster: ServerFactory, pg_url: str) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    async with httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as http:
        s = await new_session(http, language="python")
        sid = s["id"]
        ada = await join(http, sid, "Ada")
        bob = await join(http, sid, "Bob")
        a = await YClient(collab_url(a_srv.ws_url, sid, ada["token"])).connect()
        b = await YClient(collab_url(b_srv.ws_url, sid, bob["token"])).connect()
        before = await _rows(pg_url, sid)
        for i in range(10):
            a.code += f"a{i}\n"
            b.code += f"b{i}\n"
        await a.wait_for(lambda: "b9" in a.text)
        await b.wait_for(lambda: "a9" in b.text)
        text = a.text
        # Each update was stored by the process that accepted it, once; the relaying process stored nothing.
        for srv in (a_srv, b_srv):
            await srv.server.config.app.state.collab.log.flush()
        assert await _rows(pg_url, sid) - before == 20
        await a.close()
        await b.close()
    await a_srv.stop()
    await b_srv.stop()
    c_srv: LiveServer = await cluster()
    async with httpx.AsyncClient(base_url=c_srv.base_url, timeout=30) as http:
        r = await http.get(f"/v1/sessions/{sid}")
        assert r.json()["code"] == text


async def test_online_flags_on_a_process_that_does_not_hold_the_room(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    c_srv: LiveServer = await cluster()  # never loads the room: answers from what the others renewed
    async with (
        httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as a_http,
        httpx.AsyncClient(base_url=c_srv.base_url, timeout=30) as c_http,
    ):
        s = await new_session(a_http)
        sid = s["id"]
        ada = await join(a_http, sid, "Ada")
        viewer_id = s["viewerId"]

        async def online(path: str) -> dict[str, bool]:
            r = await c_http.get(path)
            return {p["name"]: p["online"] for p in r.json()}

        a = await YClient(collab_url(a_srv.ws_url, sid, ada["token"])).connect()
        for path in (f"/v1/sessions/{sid}/participants", f"/v1/views/{viewer_id}/participants"):
            await eventually(lambda path=path: _is(online(path), {"Ada": True}))
        assert c_srv.server.config.app.state.collab.peek(sid) is None
        await a.close()
        await eventually(lambda: _is(online(f"/v1/sessions/{sid}/participants"), {"Ada": False}))


async def test_a_join_on_one_process_reaches_reads_answered_from_memory_on_another(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    async with (
        httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as a_http,
        httpx.AsyncClient(base_url=b_srv.base_url, timeout=30) as b_http,
    ):
        s = await new_session(a_http)
        sid = s["id"]
        ada = await join(a_http, sid, "Ada")
        # B holds the room, so its reads answer from its card of the session (no database round trip).
        a = await YClient(collab_url(b_srv.ws_url, sid, ada["token"])).connect()
        assert [p["name"] for p in (await b_http.get(f"/v1/sessions/{sid}")).json()["participants"]] == ["Ada"]
        await join(a_http, sid, "Bob")  # committed on A

        async def bob_listed_on_b() -> bool:
            r = await b_http.get(f"/v1/sessions/{sid}")
            return [p["name"] for p in r.json()["participants"]] == ["Ada", "Bob"]

        await eventually(bob_listed_on_b)
        await a.close()


async def test_a_run_finished_on_a_process_without_the_room_reaches_the_watchers(cluster: ServerFactory) -> None:
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    sid, people = await session_on(a_srv, "Ada")
    a = await YClient(collab_url(a_srv.ws_url, sid, people["Ada"]["token"])).connect()
    runs = a.doc.get(RUNS, type=Array)
    # The run's request reached B, which does not hold the room; its record still reaches Ada on A.
    await b_srv.server.config.app.state.run_sink.append_run(sid, {"id": "run-on-b", "stdout": "hello\n"})
    await a.wait_for(lambda: any(r.get("id") == "run-on-b" for r in runs.to_py() or []))
    await a.close()


async def test_a_session_written_only_through_rest_leaves_nothing_lasting_in_redis(cluster: ServerFactory) -> None:
    # Nobody connects, so no presence renewal ever touches its stream: the stream still expires by itself, or a
    # link holder creating and writing sessions in a loop would fill Redis's memory for good.
    a_srv: LiveServer = await cluster()
    await cluster()  # a second process: the session's changes are published
    sid, _ = await session_on(a_srv)
    async with httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as http:
        r = await http.put(f"/v1/sessions/{sid}", json={"code": "print(1)\n"})
        assert r.status_code == 200
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        key = f"ccl:s:{sid}"

        async def published() -> bool:
            return bool(await redis.exists(key))

        await eventually(published)
        assert 0 < await redis.pttl(key) <= 2 * 3600 * 1000
        assert await redis.pttl(f"ccl:m:{sid}") != -1  # its members set: gone, or expiring (-1: kept for good)
    finally:
        await redis.aclose()


async def test_a_process_whose_membership_was_lost_reads_what_it_missed(cluster: ServerFactory) -> None:
    # Entries go only to the processes in a session's members set. If this process drops out of it (Redis lost
    # the set, or the process was too busy to renew it in time), edits published meanwhile skip its inbox: its
    # next renewal must notice and read them from the stream, without any client reconnecting.
    a_srv: LiveServer = await cluster()
    b_srv: LiveServer = await cluster()
    sid, _, a, b = await one_client_each(a_srv, b_srv, ("Ada", "Bob"))
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        a.code.insert(0, "first\n")
        await b.wait_for(lambda: "first" in b.text)
        members = f"ccl:m:{sid}"
        assert await redis.zcard(members) == 2
        assert 0 < await redis.pttl(members)
        await redis.delete(members)  # both processes drop out, as after Redis restarted empty

        a.code.insert(len(a.text), "second\n")
        b.code.insert(0, "zero\n")
        await b.wait_for(lambda: "second" in b.text)
        await a.wait_for(lambda: "zero" in a.text)
        assert a.text == b.text and a.text.count("second") == 1 and a.text.count("zero") == 1
        assert await redis.zcard(members) == 2  # both joined again
    finally:
        await redis.aclose()
        await a.close()
        await b.close()


async def test_entries_gathered_before_a_write_all_cross(cluster: ServerFactory) -> None:
    # CODECONNECT_REDIS_BATCH_MS: what a process accepts while it waits to write goes in one write, in order,
    # with nothing left behind when the wait ends.
    a_srv: LiveServer = await cluster(redis_batch_ms=20)
    b_srv: LiveServer = await cluster(redis_batch_ms=20)
    _, _, a, b = await one_client_each(a_srv, b_srv, ("Ada", "Bob"))
    try:
        for i in range(30):
            a.code += f"a{i}\n"
            b.code += f"b{i}\n"
        await b.wait_for(lambda: "a29\n" in b.text)
        await a.wait_for(lambda: "b29\n" in a.text)
        await eventually(lambda: _is(_text(a), b.text))
        assert all(f"a{i}\n" in a.text and f"b{i}\n" in a.text for i in range(30))
    finally:
        await a.close()
        await b.close()


async def _text(client: YClient) -> str:
    return client.text
