"""The read-only link over real HTTP, on SQLite and PostgreSQL: the viewer id leads to the session as a viewer,
and nothing reachable with it leads to the session id (the editor invitation) or to an editor's secrets."""

from __future__ import annotations

import re
from typing import Any

import httpx

URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")


async def create(client: httpx.AsyncClient, **body: object) -> dict[str, Any]:
    r = await client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def join_editor(client: httpx.AsyncClient, session_id: str, name: str) -> dict[str, Any]:
    r = await client.post(f"/v1/sessions/{session_id}/participants", json={"name": name})
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def answer_text(r: httpx.Response) -> str:
    """Everything an answer shows: status line, every header and the body."""
    return f"{r.status_code}\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items()) + "\n" + r.text


async def test_editors_get_the_viewer_link(client: httpx.AsyncClient) -> None:
    created = await create(client, title="Pairing")
    viewer_id = created["viewerId"]
    # 128 random bits at least, URL-safe, unrelated to the session id.
    assert URLSAFE.match(viewer_id) and len(viewer_id) >= 22
    assert viewer_id != created["id"] and created["id"] not in viewer_id and viewer_id not in created["id"]
    assert created["viewUrl"] == f"/v/{viewer_id}"
    got = (await client.get(f"/v1/sessions/{created['id']}")).json()
    assert (got["viewerId"], got["viewUrl"]) == (viewer_id, f"/v/{viewer_id}")
    put = await client.put(f"/v1/sessions/{created['id']}", json={"code": "x = 1\n"})
    assert put.json()["viewerId"] == viewer_id
    others = {(await create(client))["viewerId"] for _ in range(10)}
    assert len(others | {viewer_id}) == 11


async def test_joining_by_viewer_id_always_makes_a_viewer(client: httpx.AsyncClient) -> None:
    created = await create(client)
    sid, viewer_id = created["id"], created["viewerId"]
    r = await client.post(f"/v1/views/{viewer_id}/participants", json={"name": "Watcher"})
    assert r.status_code == 201, r.text
    joined = r.json()
    assert joined["role"] == "viewer" and joined["name"] == "Watcher" and URLSAFE.match(joined["token"])
    assert set(joined) == {"id", "name", "color", "role", "joinedAt", "online", "token"}
    # Asking to be an editor through the read-only link is refused, not quietly granted.
    r = await client.post(f"/v1/views/{viewer_id}/participants", json={"name": "Sneaky", "role": "editor"})
    assert r.status_code == 422, r.text
    # The same names rules as joining by session id: normalised, numbered when repeated.
    again = (await client.post(f"/v1/views/{viewer_id}/participants", json={"name": " watcher "})).json()
    assert again["name"] == "watcher (2)" and again["role"] == "viewer"
    people = (await client.get(f"/v1/sessions/{sid}/participants")).json()
    assert [(p["name"], p["role"]) for p in people] == [("Watcher", "viewer"), ("watcher (2)", "viewer")]


async def test_the_view_shows_the_session_without_its_id(client: httpx.AsyncClient) -> None:
    created = await create(client, title="Mock interview", language="js", code="console.log(42)\n")
    sid, viewer_id = created["id"], created["viewerId"]
    await join_editor(client, sid, "Ada")
    await client.post(f"/v1/views/{viewer_id}/participants", json={"name": "Watcher"})
    view = (await client.get(f"/v1/views/{viewer_id}")).json()
    assert {k: view[k] for k in ("title", "language", "code")} == {
        "title": "Mock interview",
        "language": "javascript",
        "code": "console.log(42)\n",
    }
    assert "id" not in view and "viewerId" not in view and "ownerKey" not in view
    assert [(p["name"], p["role"], p["online"]) for p in view["participants"]] == [
        ("Ada", "editor", False),
        ("Watcher", "viewer", False),
    ]
    assert all("token" not in p for p in view["participants"])
    listed = (await client.get(f"/v1/views/{viewer_id}/participants")).json()
    assert listed == view["participants"]


async def test_nothing_reachable_with_the_viewer_id_holds_the_session_id(client: httpx.AsyncClient) -> None:
    """Every answer a viewer can get, successes and errors alike: none holds the session id, the owner key or an
    editor's token (only the viewer's own token, in its own join answer)."""
    created = await create(client, title="Secret interview")
    sid, viewer_id, owner_key = created["id"], created["viewerId"], created["ownerKey"]
    editor = await join_editor(client, sid, "Ada")
    secrets = [sid, owner_key, editor["token"]]
    answers = [
        await client.get(f"/v1/views/{viewer_id}"),
        await client.get(f"/v1/views/{viewer_id}/participants"),
        await client.post(f"/v1/views/{viewer_id}/participants", json={"name": "Watcher"}),
        await client.post(f"/v1/views/{viewer_id}/participants", json={"name": ""}),
        await client.post(f"/v1/views/{viewer_id}/participants", json={"name": "x", "role": "editor"}),
        await client.post(f"/v1/views/{viewer_id}/participants", content=b"{not json"),
        await client.put(f"/v1/views/{viewer_id}", json={"code": "hijack"}),
        await client.get(f"/v1/views/{viewer_id}/settings"),
        await client.get(f"/v/{viewer_id}"),
        await client.get(f"/v/{viewer_id}/"),
    ]
    assert [r.status_code for r in answers[:5]] == [200, 200, 201, 422, 422]
    for r in answers:
        text = answer_text(r)
        for secret in secrets:
            assert secret not in text, (r.request.method, r.request.url.path, r.status_code)
    # The session's code is unchanged: the viewer id is no way to write.
    assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == created["code"]


async def test_an_unknown_viewer_id_is_a_404(client: httpx.AsyncClient) -> None:
    created = await create(client)
    # The session id is not a viewer id: holding one does not open the other's door (and vice versa).
    for wrong in ("A" * 22, created["id"]):
        for r in (
            await client.get(f"/v1/views/{wrong}"),
            await client.get(f"/v1/views/{wrong}/participants"),
            await client.post(f"/v1/views/{wrong}/participants", json={"name": "Watcher"}),
        ):
            assert r.status_code == 404, r.text
            assert r.json()["error"] == "view_not_found"
    r = await client.get(f"/v1/sessions/{created['viewerId']}")
    assert r.status_code == 404 and r.json()["error"] == "session_not_found"
    assert (await client.get("/v1/views/bad%20id")).status_code == 422
