"""Live co-editing against a real server, on SQLite and PostgreSQL: sync, REST <-> live, presence, auth,
viewers, offline edits, unload and reload."""

from __future__ import annotations

import asyncio

import httpx
from pycrdt import Array, Doc, Text
from sqlalchemy import func, select
from starlette.types import Receive, Scope, Send

from codeconnect.collab.document import initial_update
from codeconnect.collab.registry import RoomRegistry
from codeconnect.collab.transport import WebSocketConnection
from codeconnect.models import DocUpdateRow
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory
from tests.sessions.test_cards import counted_database_work

STARTER = 'print("Hello, world!")\n'
# A remote cursor as y-codemirror.next writes it (Y.RelativePosition objects, serialised whole).
CURSOR = {
    "anchor": {"type": None, "tname": "code", "item": None, "assoc": 0},
    "head": {"type": None, "tname": None, "item": {"client": 1, "clock": 0}, "assoc": 0},
}


async def _session_with(client: httpx.AsyncClient, server: LiveServer, *names: str) -> tuple[str, list[YClient]]:
    s = await new_session(client, language="python")
    clients = []
    for name in names:
        token = (await join(client, s["id"], name))["token"]
        clients.append(await YClient(collab_url(server.ws_url, s["id"], token)).connect())
    return s["id"], clients


async def test_two_clients_converge_and_rest_reads_live_text(server: LiveServer, client: httpx.AsyncClient) -> None:
    sid, (a, b) = await _session_with(client, server, "Ada", "Bob")
    # Every client starts from the session's stored first update: same text, same history.
    assert a.text == b.text == STARTER
    a.code.insert(0, "# by Ada\n")
    b.code += "# by Bob\n"
    await a.wait_for(lambda: "Bob" in a.text)
    await b.wait_for(lambda: "Ada" in b.text)
    assert a.text == b.text == "# by Ada\n" + STARTER + "# by Bob\n"
    r = await client.get(f"/v1/sessions/{sid}")
    assert r.json()["code"] == a.text
    await a.close()
    await b.close()


async def test_rest_put_is_a_minimal_diff_broadcast_to_clients(server: LiveServer, client: httpx.AsyncClient) -> None:
    sid, (a,) = await _session_with(client, server, "Ada")
    a.code.insert(0, "x = 1\n")
    await asyncio.sleep(0)
    r = await client.put(f"/v1/sessions/{sid}", json={"code": "x = 1\n" + STARTER + "y = 2\n", "title": "T2"})
    assert r.status_code == 200, r.text
    assert r.json()["code"] == "x = 1\n" + STARTER + "y = 2\n"
    assert r.json()["title"] == "T2"
    await a.wait_for(lambda: a.text.endswith("y = 2\n") and a.meta.get("title") == "T2")
    # The server inserted only the new tail: the client's earlier insert is still the same CRDT item,
    # so its position (a remote cursor) is untouched; nothing was deleted.
    assert a.text == "x = 1\n" + STARTER + "y = 2\n"
    r = await client.put(f"/v1/sessions/{sid}/language", json={"language": "js"})
    assert r.status_code == 200 and r.json()["language"] == "javascript"
    await a.wait_for(lambda: a.meta.get("language") == "javascript")
    await a.close()


async def test_language_set_through_yjs_is_persisted(server: LiveServer, client: httpx.AsyncClient) -> None:
    sid, (a,) = await _session_with(client, server, "Ada")
    with a.doc.transaction():  # one update: REST sees both changes or neither
        a.meta["language"] = "cpp"
        a.code.insert(0, "// c++\n")
    for _ in range(100):
        r = await client.get(f"/v1/sessions/{sid}")
        if r.json()["language"] == "cpp":
            break
        await asyncio.sleep(0.05)
    assert r.json()["language"] == "cpp"
    assert r.json()["code"].startswith("// c++\n")
    # A client writing nonsense into meta.language cannot break REST: the last valid language stays.
    a.meta["language"] = "cobol"
    a.code += "// after\n"  # a later change: once REST shows it, the nonsense before it was handled too
    for _ in range(200):
        r = await client.get(f"/v1/sessions/{sid}")
        if r.json()["code"].endswith("// after\n"):
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 200 and r.json()["code"].endswith("// after\n")
    assert r.json()["language"] == "cpp"
    await a.close()


async def test_presence_online_flags_and_awareness(server: LiveServer, client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    ada = await join(client, s["id"], "Ada")
    bob = await join(client, s["id"], "Bob")
    a = await YClient(collab_url(server.ws_url, s["id"], ada["token"])).connect()
    r = await client.get(f"/v1/sessions/{s['id']}/participants")
    assert {p["name"]: p["online"] for p in r.json()} == {"Ada": True, "Bob": False}
    b = await YClient(collab_url(server.ws_url, s["id"], bob["token"])).connect()
    # A client claiming another name and colour is shown with its real participant identity.
    await a.set_awareness(
        {"user": {"name": "Mallory", "color": "#000000", "colorLight": "red; background-image: url(x)"},
         "cursor": CURSOR}
    )
    await b.wait_for(lambda: a.doc.client_id in b.awareness)
    state = b.awareness[a.doc.client_id]
    assert state["user"] == {
        "name": "Ada", "color": ada["color"], "colorLight": ada["color"] + "33", "participantId": ada["id"]
    }
    assert state["cursor"] == CURSOR
    # The sender gets its own state echoed back (stock clients need traffic to stay connected).
    await a.wait_for(lambda: a.doc.client_id in a.awareness)
    # Entries for someone else's clientID are ignored (stock clients re-send what they received).
    await b.set_awareness(None, client_id=a.doc.client_id)
    await b.set_awareness({"user": {"name": "Bob"}})
    await a.wait_for(lambda: b.doc.client_id in a.awareness)
    assert a.doc.client_id in a.awareness and a.doc.client_id in b.awareness
    # A newcomer receives the current states at once.
    c = await YClient(collab_url(server.ws_url, s["id"], ada["token"])).connect()
    await c.wait_for(lambda: {a.doc.client_id, b.doc.client_id} <= set(c.awareness))
    await c.close()
    # Disconnecting removes the state for the others immediately, and the online flag.
    await a.close()
    await b.wait_for(lambda: a.doc.client_id not in b.awareness)
    r = await client.get(f"/v1/sessions/{s['id']}")
    assert {p["name"]: p["online"] for p in r.json()["participants"]} == {"Ada": False, "Bob": True}
    await b.close()


async def test_auth_failures_close_with_codes(server: LiveServer, client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    other = await new_session(client)
    other_token = (await join(client, other["id"], "Eve"))["token"]
    cases = [
        (collab_url(server.ws_url, "no-such-session", other_token), 4404),
        (collab_url(server.ws_url, "bad.id", other_token), 4404),
        (collab_url(server.ws_url, s["id"], None), 4401),
        (collab_url(server.ws_url, s["id"], "not-a-token"), 4401),
        (collab_url(server.ws_url, s["id"], other_token), 4401),  # a token of another session
    ]
    for url, code in cases:
        c = await YClient(url).connect(wait_sync=False)
        assert await c.wait_closed() == code, url
        assert not c.synced.is_set()
        await c.close()


async def test_viewer_receives_but_cannot_edit(server: LiveServer, client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    editor = await join(client, s["id"], "Ed")
    viewer = await join(client, s["id"], "Vi", role="viewer")
    e = await YClient(collab_url(server.ws_url, s["id"], editor["token"])).connect()
    v = await YClient(collab_url(server.ws_url, s["id"], viewer["token"])).connect()
    v.code.insert(0, "VIEWER WAS HERE\n")
    await v.set_awareness({"user": {"name": "Vi"}})
    await e.wait_for(lambda: v.doc.client_id in e.awareness)  # awareness works for viewers
    e.code.insert(0, "# editor\n")
    await v.wait_for(lambda: "# editor" in v.text)
    r = await client.get(f"/v1/sessions/{s['id']}")
    assert "VIEWER" not in r.json()["code"] and "VIEWER" not in e.text
    assert r.json()["code"] == e.text
    await e.close()
    await v.close()


async def test_offline_edits_merge_on_reconnect(server: LiveServer, client: httpx.AsyncClient) -> None:
    sid, (a, b) = await _session_with(client, server, "Ada", "Bob")
    token = (await join(client, sid, "Ada2"))["token"]
    await a.close()
    # Ada edits while disconnected; Bob keeps editing online.
    a.code.insert(0, "# offline 1\n")
    a.code += "# offline 2\n"
    b.code.insert(len(b.code), "# online\n")
    await asyncio.sleep(0.1)
    again = await YClient(collab_url(server.ws_url, sid, token), doc=a.doc).connect()
    await again.wait_for(lambda: "# online" in again.text)
    await b.wait_for(lambda: "# offline 2" in b.text)
    assert again.text == b.text
    for marker in ("# offline 1", "# offline 2", "# online", STARTER.strip()):
        assert b.text.count(marker) == 1  # merged, never duplicated
    await again.close()
    await b.close()


async def test_room_unloads_and_reloads_from_the_log(server_factory: ServerFactory) -> None:
    server = await server_factory(room_unload_grace_seconds=0.05, compact_after_updates=5)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        s = await new_session(client)
        token = (await join(client, s["id"], "Ada"))["token"]
        a = await YClient(collab_url(server.ws_url, s["id"], token)).connect()
        for i in range(12):
            a.code += f"line {i}\n"
            await asyncio.sleep(0.01)
        expected_doc = Doc()
        expected_doc.apply_update(a.doc.get_update())
        await a.close()
        # Wait for the unload (grace 50 ms): presence and a fresh room show it.
        for _ in range(100):
            r = await client.get(f"/v1/sessions/{s['id']}")
            if not any(p["online"] for p in r.json()["participants"]):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert s["id"] not in _registry(server).rooms
        # Unloading compacted the log into one snapshot.
        maker = server.server.config.app.state.sessionmaker
        async with maker() as db:
            rows = await db.scalar(
                select(func.count()).select_from(DocUpdateRow).where(DocUpdateRow.session_id == s["id"])
            )
        assert rows == 1
        # The mirror columns were written on unload: a read without a room has the latest text.
        r = await client.get(f"/v1/sessions/{s['id']}")
        assert r.json()["code"] == str(expected_doc.get("code", type=Text))
        # Reload from snapshot + tail: the same history, so an old copy merges without duplication.
        b = await YClient(collab_url(server.ws_url, s["id"], token), doc=a.doc).connect()
        fresh = await YClient(collab_url(server.ws_url, s["id"], token)).connect()
        assert fresh.text == b.text == str(expected_doc.get("code", type=Text))
        assert fresh.text.count("line 11") == 1
        await b.close()
        await fresh.close()


async def test_run_sink_appends_to_runs_and_keeps_twenty(server: LiveServer, client: httpx.AsyncClient) -> None:
    sid, (a,) = await _session_with(client, server, "Ada")
    registry = _registry(server)
    for i in range(23):
        await registry.append_run(sid, {"id": f"r{i}", "stdout": str(i)})
    runs = a.doc.get("runs", type=Array)
    await a.wait_for(lambda: len(runs) == 20 and runs[19]["id"] == "r22")
    assert [r["id"] for r in runs.to_py()] == [f"r{i}" for i in range(3, 23)]
    await registry.append_run("not-loaded", {"id": "x"})  # a room nobody has open: a no-op
    await a.close()


def _registry(server: LiveServer) -> RoomRegistry:
    registry: RoomRegistry = server.server.config.app.state.collab
    return registry


async def test_messages_of_every_frame_length_form_arrive_intact(server: LiveServer, client: httpx.AsyncClient) -> None:
    # WebSocket frames carry lengths in 7 bits, 16 bits or 64 bits; the server frames its messages itself.
    big = "".join(f"line {i}: {'é' * (i % 7)}\n" for i in range(8000))  # > 64 KiB: a 64-bit length
    s = await new_session(client, language="python", code=big)
    tokens = [(await join(client, s["id"], name))["token"] for name in ("Ada", "Bob")]
    a = await YClient(collab_url(server.ws_url, s["id"], tokens[0])).connect()
    b = await YClient(collab_url(server.ws_url, s["id"], tokens[1])).connect()
    assert len(big.encode()) > 65535
    assert a.text == b.text == big
    # As served, each peer's channel is the connection itself: frames are written by this project's protocol.
    peers = list(_registry(server).rooms[s["id"]].peers)
    assert all(isinstance(peer.channel, WebSocketConnection) for peer in peers)
    for text in ("k", "m" * 300, "n" * 70000):  # 7-bit, 16-bit and 64-bit relayed updates
        a.code += text
        await b.wait_for(lambda: b.text == a.text)
    assert b.text == big + "k" + "m" * 300 + "n" * 70000
    r = await client.get(f"/v1/sessions/{s['id']}")
    assert r.json()["code"] == b.text
    await a.close()
    await b.close()


def _await_chain(task: asyncio.Task[object]) -> list[str]:
    names: list[str] = []
    awaited: object = task.get_coro()
    while awaited is not None:
        names.append(getattr(awaited, "__qualname__", type(awaited).__name__))
        awaited = getattr(awaited, "cr_await", None)
    return names


async def test_an_idle_connection_keeps_no_coroutine(server: LiveServer, client: httpx.AsyncClient) -> None:
    # Every suspended frame of an idle connection would stay in memory (and in every full garbage collection)
    # while it is open: once seated, a connection is its protocol object and its room seat, no task.
    s = await new_session(client, language="python", code="x")
    a = await YClient(collab_url(server.ws_url, s["id"], (await join(client, s["id"], "Ada"))["token"])).connect()
    async with asyncio.timeout(10):
        while any("LiveEndpoint.__call__" in _await_chain(t) for t in asyncio.all_tasks()):
            await asyncio.sleep(0.01)
    assert len(_registry(server).rooms[s["id"]].peers) == 1
    a.code += "!"
    async with asyncio.timeout(10):
        while (await client.get(f"/v1/sessions/{s['id']}")).json()["code"] != "x!":
            await asyncio.sleep(0.01)
    await a.close()
    async with asyncio.timeout(10):
        while _registry(server).rooms[s["id"]].peers:
            await asyncio.sleep(0.01)


async def test_a_class_that_joins_and_connects_at_once_reads_nothing_from_the_database(
    server_factory: ServerFactory,
) -> None:
    """Tokens issued and sessions created by this process are known to it: the first connections of a new
    session are admitted and its room is loaded from memory (under a burst of connections, every database read
    waited for the event loop to come round to its answer)."""
    server = await server_factory()
    app = server.server.config.app
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        s = await new_session(http, code="print('hi')\n")
        people = [await join(http, s["id"], name) for name in ("Ada", "Bob")]
        watcher = (await http.post(f"/v1/views/{s['viewerId']}/participants", json={"name": "Vi"})).json()
        through_asgi: list[str] = []  # the live endpoint's calls through ASGI (its acceptor is not one of them)
        endpoint = app.state.live

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            through_asgi.append(scope["path"])
            await endpoint(scope, receive, send)

        app.state.live = counted
        with counted_database_work(app) as seen:
            clients = [await YClient(collab_url(server.ws_url, s["id"], p["token"])).connect() for p in people]
        assert seen == []
        # ...and nothing waited for a task's turn: each was admitted in the read that brought its request.
        assert through_asgi == []
        # A read-only link is looked up (its session id is not in the link), then its token is known too.
        viewer = await YClient(f"{server.ws_url}/v1/collab/v/{s['viewerId']}?token={watcher['token']}").connect()
        assert through_asgi == [f"/v1/collab/v/{s['viewerId']}"]
        assert [c.text for c in (*clients, viewer)] == ["print('hi')\n"] * 3
        clients[0].code.insert(0, "# ")
        await clients[1].wait_for(lambda: clients[1].text == "# print('hi')\n")
        await viewer.wait_for(lambda: viewer.text == "# print('hi')\n")
        # A token of this session on another one is still refused, and an unknown session told apart.
        other = await new_session(http)
        for url, code in (
            (collab_url(server.ws_url, other["id"], people[0]["token"]), 4401),
            (collab_url(server.ws_url, "no-such-session", people[0]["token"]), 4404),
        ):
            refused = await YClient(url).connect(wait_sync=False)
            assert await refused.wait_closed() == code
            await refused.close()
        assert len(through_asgi) == 3  # refusals are made the usual way
        for c in (*clients, viewer):
            await c.close()


async def test_documents_of_new_sessions_are_kept_within_their_byte_budget(server_factory: ServerFactory) -> None:
    body = {"title": "kept", "language": "python", "code": "x = 1\n" * 50}
    # Each kept document counts its first update and its text.
    size = len(initial_update(body["code"], body["language"], body["title"])) + len(body["code"]) + len(body["title"])
    # Room for two, not three (a first update's size varies by a few bytes with its random client id).
    server = await server_factory(new_document_cache_bytes=2 * size + 16)
    app = server.server.config.app
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        made = [await new_session(http, **body) for _ in range(3)]
        tokens = [(await join(http, s["id"], "Ada"))["token"] for s in made]
        for s, token, kept in zip(made, tokens, (False, True, True), strict=True):
            with counted_database_work(app) as seen:
                c = await YClient(collab_url(server.ws_url, s["id"], token)).connect()
            assert ("driver.load" not in seen) == kept  # the oldest went first
            assert c.text == body["code"]
            await c.close()
