"""A viewer on the live endpoint by viewer id, on SQLite and PostgreSQL: it gets the document and everyone's
presence, cannot change anything, and nothing it receives holds the session id."""

from __future__ import annotations

import httpx
from pycrdt import Array

from codeconnect.collab.registry import RoomRegistry
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer

CURSOR = {
    "anchor": {"type": None, "tname": "code", "item": None, "assoc": 0},
    "head": {"type": None, "tname": "code", "item": None, "assoc": 0},
}


def view_url(ws_base: str, viewer_id: str, token: str) -> str:
    return f"{ws_base}/v1/collab/v/{viewer_id}?token={token}"


async def join_view(client: httpx.AsyncClient, viewer_id: str, name: str) -> dict[str, str]:
    r = await client.post(f"/v1/views/{viewer_id}/participants", json={"name": name})
    assert r.status_code == 201, r.text
    joined: dict[str, str] = r.json()
    return joined


async def test_viewer_by_viewer_id_receives_and_cannot_edit(server: LiveServer, client: httpx.AsyncClient) -> None:
    s = await new_session(client, title="Watched", language="python")
    sid, viewer_id = s["id"], s["viewerId"]
    editor = await join(client, sid, "Ed")
    e = await YClient(collab_url(server.ws_url, sid, editor["token"])).connect()
    viewer = await join_view(client, viewer_id, "Vi")
    v = await YClient(view_url(server.ws_url, viewer_id, viewer["token"])).connect()

    # Everything the server and editors put in the document and the presence channel: text, a run record written
    # by the server (as a server run is), the editor's presence with a cursor.
    e.code.insert(0, "# editor\n")
    await e.set_awareness({"user": {"name": "Ed"}, "cursor": CURSOR})
    registry: RoomRegistry = server.server.config.app.state.collab
    await registry.append_run(
        sid,
        {"id": "run-1", "by": {"participantId": editor["id"], "name": "Ed", "color": editor["color"]},
         "source": "server", "language": "python", "stdout": "42\n", "stderr": ""},
    )
    runs = v.doc.get("runs", type=Array)
    await v.wait_for(lambda: "# editor" in v.text and len(runs) == 1 and e.doc.client_id in v.awareness)
    assert v.text == e.text and v.meta["title"] == "Watched"
    assert v.awareness[e.doc.client_id]["user"]["participantId"] == editor["id"]

    # The viewer's edits go nowhere; its presence does reach the editor (with the server's `user`).
    v.code.insert(0, "VIEWER WAS HERE\n")
    await v.set_awareness({"user": {"name": "Impostor"}})
    await e.wait_for(lambda: v.doc.client_id in e.awareness)
    assert e.awareness[v.doc.client_id]["user"]["name"] == "Vi"
    e.code.insert(len(e.text), "# after\n")
    await e.wait_for(lambda: "# after" in e.text)
    r = await client.get(f"/v1/sessions/{sid}")
    assert "VIEWER" not in r.json()["code"] and "VIEWER" not in e.text

    # Nothing the viewer received holds the session id or the editor's token, in any frame or across frames.
    received = b"".join(v.received)
    assert v.received
    for secret in (sid, editor["token"], s["ownerKey"]):
        assert secret.encode() not in received
        assert all(secret.encode() not in frame for frame in v.received)
    await e.close()
    await v.close()


async def test_the_viewer_path_seats_any_token_read_only(server: LiveServer, client: httpx.AsyncClient) -> None:
    """The viewer id's live URL is read-only whoever comes through it, an editor's token included."""
    s = await new_session(client)
    editor = await join(client, s["id"], "Ed")
    watcher = await YClient(view_url(server.ws_url, s["viewerId"], editor["token"])).connect()
    watcher.code.insert(0, "NOT ALLOWED\n")
    other = await YClient(collab_url(server.ws_url, s["id"], editor["token"])).connect()
    other.code.insert(0, "# allowed\n")
    await watcher.wait_for(lambda: "# allowed" in watcher.text)
    assert "NOT ALLOWED" not in (await client.get(f"/v1/sessions/{s['id']}")).json()["code"]
    await watcher.close()
    await other.close()


async def test_viewer_live_refusals(server: LiveServer, client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    other = await new_session(client)
    viewer = await join_view(client, s["viewerId"], "Vi")
    # An unknown viewer id, and a session id in the viewer id's place: not found.
    for wrong in ("A" * 22, s["id"]):
        c = await YClient(view_url(server.ws_url, wrong, viewer["token"])).connect(wait_sync=False)
        assert await c.wait_closed() == 4404
    # A viewer token of one session does not open another session's view.
    c = await YClient(view_url(server.ws_url, other["viewerId"], viewer["token"])).connect(wait_sync=False)
    assert await c.wait_closed() == 4401
    c = await YClient(f"{server.ws_url}/v1/collab/v/{s['viewerId']}").connect(wait_sync=False)
    assert await c.wait_closed() == 4401
