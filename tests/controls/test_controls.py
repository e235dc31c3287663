"""The owner's controls over REST and the live endpoint, on SQLite and PostgreSQL: ending and reopening a session,
removing a participant."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from codeconnect.collab import protocol as p
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory, eventually
from tests.execution.conftest import SANDBOX_LIMITS, require_sandbox

ENDED = p.auth_message(p.AuthType.PERMISSION_DENIED, p.SESSION_ENDED)
REOPENED = p.auth_message(p.AuthType.PERMISSION_GRANTED, p.SESSION_REOPENED)


def owner(session: dict[str, Any]) -> dict[str, str]:
    return {"X-Owner-Key": session["ownerKey"]}


async def test_controls_need_the_owner_key(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    ada = await join(client, s["id"], "Ada")
    calls = [
        ("POST", f"/v1/sessions/{s['id']}/end"),
        ("POST", f"/v1/sessions/{s['id']}/reopen"),
        ("DELETE", f"/v1/sessions/{s['id']}/participants/{ada['id']}"),
    ]
    for method, url in calls:
        r = await client.request(method, url)
        assert r.status_code == 401 and r.json()["error"] == "owner_key_required", r.text
        r = await client.request(method, url, headers={"X-Owner-Key": "not-the-key"})
        assert r.status_code == 403 and r.json()["error"] == "owner_key_invalid", r.text
        # A participant's token is not the owner key.
        r = await client.request(method, url, headers={"X-Owner-Key": ada["token"]})
        assert r.status_code == 403, r.text
    r = await client.post("/v1/sessions/nosuchsession/end", headers=owner(s))
    assert r.status_code == 404 and r.json()["error"] == "session_not_found"
    r = await client.delete(f"/v1/sessions/{s['id']}/participants/nobody", headers=owner(s))
    assert r.status_code == 404 and r.json()["error"] == "participant_not_found"
    r = await client.delete(f"/v1/sessions/{s['id']}/participants/bad%20id", headers=owner(s))
    assert r.status_code == 422
    # Nothing changed.
    session = (await client.get(f"/v1/sessions/{s['id']}")).json()
    assert session["endedAt"] is None and [x["id"] for x in session["participants"]] == [ada["id"]]


async def test_end_refuses_rest_writes_and_reopen_restores_them(client: httpx.AsyncClient) -> None:
    s = await new_session(client, language="python")
    sid = s["id"]
    assert s["endedAt"] is None
    r = await client.post(f"/v1/sessions/{sid}/end", headers=owner(s))
    assert r.status_code == 200, r.text
    ended_at = r.json()["endedAt"]
    assert ended_at is not None and r.json()["code"] == s["code"]
    # Idempotent: ending again keeps the first end's time.
    again = await client.post(f"/v1/sessions/{sid}/end", headers=owner(s))
    assert again.status_code == 200 and again.json()["endedAt"] == ended_at
    assert (await client.get(f"/v1/sessions/{sid}")).json()["endedAt"] == ended_at
    view = await client.get(f"/v1/views/{s['viewerId']}")
    assert view.json()["endedAt"] == ended_at

    ada = await join(client, sid, "Ada")  # joins go on: the person can read
    writes = [
        client.put(f"/v1/sessions/{sid}", json={"code": "changed\n"}),
        client.put(f"/v1/sessions/{sid}/language", json={"language": "javascript"}),
        client.delete(f"/v1/sessions/{sid}/runs", headers={"X-Participant-Token": ada["token"]}),
    ]
    for write in writes:
        r = await write
        assert r.status_code == 409 and r.json()["error"] == "session_ended", r.text
    # Reads go on, and nothing was written.
    session = (await client.get(f"/v1/sessions/{sid}")).json()
    assert session["code"] == s["code"] and session["language"] == "python"
    assert (await client.get(f"/v1/sessions/{sid}/participants")).status_code == 200

    r = await client.post(f"/v1/sessions/{sid}/reopen", headers=owner(s))
    assert r.status_code == 200 and r.json()["endedAt"] is None
    assert (await client.post(f"/v1/sessions/{sid}/reopen", headers=owner(s))).status_code == 200
    r = await client.put(f"/v1/sessions/{sid}", json={"code": "changed\n"})
    assert r.status_code == 200 and r.json()["code"] == "changed\n"


async def test_server_runs_are_refused_once_ended(server_factory: ServerFactory) -> None:
    require_sandbox()
    server = await server_factory(**SANDBOX_LIMITS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        s = await new_session(client, language="python")
        await client.post(f"/v1/sessions/{s['id']}/end", headers=owner(s))
        r = await client.post(f"/v1/sessions/{s['id']}/execute", json={})
        assert r.status_code == 409 and r.json()["error"] == "session_ended", r.text
        await client.post(f"/v1/sessions/{s['id']}/reopen", headers=owner(s))
        r = await client.post(f"/v1/sessions/{s['id']}/execute", json={})
        assert r.status_code == 200, r.text


async def test_an_ended_session_refuses_every_clients_updates(
    server_factory: ServerFactory, client: httpx.AsyncClient, server: LiveServer
) -> None:
    s = await new_session(client, language="python")
    sid = s["id"]
    ada_token = (await join(client, sid, "Ada"))["token"]
    bob_token = (await join(client, sid, "Bob"))["token"]
    a = await YClient(collab_url(server.ws_url, sid, ada_token)).connect()
    b = await YClient(collab_url(server.ws_url, sid, bob_token)).connect()
    a.code.insert(0, "# before\n")
    await b.wait_for(lambda: "# before" in b.text)

    r = await client.post(f"/v1/sessions/{sid}/end", headers=owner(s))
    assert r.status_code == 200
    # Told in-band, and still connected (a stock client would reconnect into the same state after a close).
    await a.wait_for(lambda: ENDED in a.received)
    await b.wait_for(lambda: ENDED in b.received)
    # Each sends an edit, then a step 1 whose answer comes after the server handled the edit (one socket keeps
    # the order): by then the edit was refused.
    for c, name in ((a, "Ada"), (b, "Bob")):
        before = c.doc.get_state()
        c.code.insert(0, f"# from {name} after the end\n")
        await c.send(p.sync_update(c.doc.get_update(before)))
        answers = _answers(c)
        await c.send(p.sync_step1(c.doc.get_state()))
        await c.wait_for(lambda c=c, answers=answers: _answers(c) > answers)  # type: ignore[misc]
    assert "after the end" not in (await client.get(f"/v1/sessions/{sid}")).json()["code"]
    assert "Bob" not in a.text and "Ada" not in b.text
    assert not a.closed.is_set() and not b.closed.is_set()

    # A client connecting now is admitted (it can read) and told at once.
    c = await YClient(collab_url(server.ws_url, sid, ada_token)).connect()
    await c.wait_for(lambda: ENDED in c.received)
    assert "after the end" not in c.text
    await a.close()
    await b.close()
    await c.close()

    # The store never saw the refused updates: a fresh server on the same database loads without them.
    await server.stop()
    fresh = await server_factory()
    async with httpx.AsyncClient(base_url=fresh.base_url, timeout=30) as again:
        d = await YClient(collab_url(fresh.ws_url, sid, bob_token)).connect()
        assert d.text.startswith("# before\n") and "after the end" not in d.text
        await d.wait_for(lambda: ENDED in d.received)  # the ended state is the server's, kept across restarts
        session = (await again.get(f"/v1/sessions/{sid}")).json()
        assert session["endedAt"] is not None and "after the end" not in session["code"]
        r = await again.post(f"/v1/sessions/{sid}/reopen", headers=owner(s))
        assert r.status_code == 200
        await d.wait_for(lambda: REOPENED in d.received)
        d.code.insert(0, "# reopened\n")
        await eventually(lambda: _code_has(again, sid, "# reopened"))
        await d.close()


def _answers(c: YClient) -> int:
    return sum(1 for m in c.received if m[:2] == b"\x00\x01")  # sync step 2 messages


async def _code_has(client: httpx.AsyncClient, sid: str, text: str) -> bool:
    return text in (await client.get(f"/v1/sessions/{sid}")).json()["code"]


async def test_a_removed_participant_is_closed_with_4403_and_its_token_fails(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    s = await new_session(client, language="python")
    sid = s["id"]
    ada = await join(client, sid, "Ada")
    bob = await join(client, sid, "Bob")
    a = await YClient(collab_url(server.ws_url, sid, ada["token"])).connect()
    a2 = await YClient(collab_url(server.ws_url, sid, ada["token"])).connect()  # a second tab
    b = await YClient(collab_url(server.ws_url, sid, bob["token"])).connect()
    await a.set_awareness({"user": {"name": "Ada"}})
    await b.wait_for(lambda: a.doc.client_id in b.awareness)

    r = await client.delete(f"/v1/sessions/{sid}/participants/{ada['id']}", headers=owner(s))
    assert r.status_code == 204, r.text
    assert await a.wait_closed() == p.CloseCode.FORBIDDEN
    assert await a2.wait_closed() == p.CloseCode.FORBIDDEN
    # Its presence is gone for the others; Bob stays.
    await b.wait_for(lambda: a.doc.client_id not in b.awareness)
    assert not b.closed.is_set()
    listed = (await client.get(f"/v1/sessions/{sid}/participants")).json()
    assert [x["id"] for x in listed] == [bob["id"]]
    assert [x["id"] for x in (await client.get(f"/v1/sessions/{sid}")).json()["participants"]] == [bob["id"]]

    # The token fails everywhere: live (it was in the fast path's cache a moment ago) and REST.
    again = YClient(collab_url(server.ws_url, sid, ada["token"]))
    with pytest.raises(TimeoutError):
        await again.connect(sync_timeout=5)
    assert again.close_code == p.CloseCode.UNAUTHORIZED
    r = await client.delete(f"/v1/sessions/{sid}/runs", headers={"X-Participant-Token": ada["token"]})
    assert r.status_code == 403 and r.json()["error"] == "participant_token_invalid"
    # Removing again: nothing to remove.
    r = await client.delete(f"/v1/sessions/{sid}/participants/{ada['id']}", headers=owner(s))
    assert r.status_code == 404
    # The person may join again, as someone new.
    back = await join(client, sid, "Ada")
    assert back["id"] != ada["id"]
    await b.close()


async def test_ending_is_applied_while_a_room_loads(server: LiveServer, client: httpx.AsyncClient) -> None:
    """A session ended while nobody had it open: the room loaded afterwards starts read-only."""
    s = await new_session(client)
    token = (await join(client, s["id"], "Ada"))["token"]
    await client.post(f"/v1/sessions/{s['id']}/end", headers=owner(s))
    clients = await asyncio.gather(
        *(YClient(collab_url(server.ws_url, s["id"], token)).connect() for _ in range(3))
    )
    for c in clients:
        await c.wait_for(lambda c=c: ENDED in c.received)  # type: ignore[misc]
        await c.close()
