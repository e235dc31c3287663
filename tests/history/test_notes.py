"""The owner's private notes: first from the side of everyone who must never see them, then the owner's."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from codeconnect.collab.cluster import LocalCluster
from codeconnect.history.notes import NotesWatch
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import ServerFactory

SECRET = "candidate hesitated on recursion 7f3a"
ADMIN = "a" * 32


async def test_nobody_but_the_owner_gets_the_notes(server_factory: ServerFactory) -> None:
    for auth in ("open", "api-key"):
        server = await server_factory(auth=auth, admin_token=ADMIN, history_for_participants=True)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            headers: dict[str, str] = {}
            if auth == "api-key":
                r = await client.post("/v1/admin/workspaces", json={"name": "acme", "policy": {}},
                                      headers={"Authorization": f"Bearer {ADMIN}"})
                assert r.status_code == 201, r.text
                r = await client.post("/v1/admin/workspaces/acme/keys", json={"label": "ci"},
                                      headers={"Authorization": f"Bearer {ADMIN}"})
                headers = {"Authorization": f"Bearer {r.json()['key']}"}
            r = await client.post("/v1/sessions", json={"title": "Interview"}, headers=headers)
            assert r.status_code == 201, r.text
            session: dict[str, Any] = r.json()
            sid, owner = session["id"], {"X-Owner-Key": session["ownerKey"]}
            r = await client.put(f"/v1/sessions/{sid}/notes", json={"text": SECRET, "version": 0}, headers=owner)
            assert r.status_code == 200, r.text
            invite = {"X-Invite": session["editorInvite"]} if session.get("editorInvite") else {}
            r = await client.post(f"/v1/sessions/{sid}/participants", json={"name": "Ada"}, headers=invite)
            assert r.status_code == 201, r.text
            editor = r.json()
            r = await client.post(f"/v1/views/{session['viewerId']}/participants", json={"name": "Vic"})
            assert r.status_code == 201, r.text
            viewer = r.json()
            credentials = [
                {}, invite, {"X-Participant-Token": editor["token"]}, {"X-Participant-Token": viewer["token"]},
                {"X-Owner-Key": "not-the-key"},
            ]
            seen = []
            for creds in credentials:
                for method, path in [
                    ("GET", f"/v1/sessions/{sid}/notes"), ("GET", f"/v1/sessions/{sid}/export"),
                    ("GET", f"/v1/sessions/{sid}"), ("GET", f"/v1/sessions/{sid}/participants"),
                    ("GET", f"/v1/sessions/{sid}/history"), ("GET", f"/v1/sessions/{sid}/history/at?index=0"),
                    ("GET", f"/v1/views/{session['viewerId']}"), ("GET", f"/s/{sid}"),
                    ("GET", f"/v/{session['viewerId']}"), ("GET", "/"),
                ]:
                    r = await client.request(method, path, headers=creds)
                    seen.append(r.text)
                    if path.endswith(("/notes", "/export")):
                        assert r.status_code in (401, 403), (auth, creds, path, r.status_code)
                r = await client.put(f"/v1/sessions/{sid}/notes", json={"text": "x", "version": 1}, headers=creds)
                assert r.status_code in (401, 403)
            assert not any(SECRET in text for text in seen)
            # Live: everything a participant's connection receives.
            for person in (editor, viewer):
                c = await YClient(collab_url(server.ws_url, sid, person["token"])).connect()
                await c.set_awareness({"user": {"name": person["name"]}})
                await asyncio.sleep(0.2)
                assert not any(SECRET.encode() in message for message in c.received)
                assert SECRET not in c.text
                await c.close()
            # The owner still has them, unchanged.
            r = await client.get(f"/v1/sessions/{sid}/notes", headers=owner)
            assert r.json()["text"] == SECRET and r.json()["version"] == 1
        await server.stop()


async def test_two_owner_tabs(server_factory: ServerFactory) -> None:
    server = await server_factory(notes_max_bytes=100)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session = await new_session(client)
        sid, owner = session["id"], {"X-Owner-Key": session["ownerKey"]}
        r = await client.get(f"/v1/sessions/{sid}/notes", headers=owner)
        assert r.json() == {"text": "", "version": 0, "updatedAt": None}
        # Tab B waits for a version newer than 0; tab A saves; B wakes with A's text.
        waiting = asyncio.create_task(client.get(f"/v1/sessions/{sid}/notes", params={"since": 0}, headers=owner))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        r = await client.put(f"/v1/sessions/{sid}/notes", json={"text": "from A", "version": 0}, headers=owner)
        assert r.status_code == 200 and r.json()["version"] == 1
        woke = await asyncio.wait_for(waiting, 10)
        assert woke.json()["text"] == "from A" and woke.json()["version"] == 1
        # B saves on the version it had before: refused, nothing overwritten.
        r = await client.put(f"/v1/sessions/{sid}/notes", json={"text": "from B", "version": 0}, headers=owner)
        assert (r.status_code, r.json()["error"]) == (409, "notes_version_conflict")
        r = await client.put(f"/v1/sessions/{sid}/notes", json={"text": "x" * 101, "version": 1}, headers=owner)
        assert (r.status_code, r.json()["error"]) == (413, "notes_too_large")
        r = await client.get(f"/v1/sessions/{sid}/notes", params={"since": 5}, headers=owner)
        assert r.json()["text"] == "from A"  # a version other than `since`: at once
        ada = await join(client, sid, "Ada")
        assert ada["token"] not in r.text


async def test_a_stopping_watch_answers_every_waiter_and_keeps_none() -> None:
    watch = NotesWatch(LocalCluster(), per_session=4, total=8)
    waiters = [asyncio.create_task(watch.wait(sid, 600)) for sid in ("s1", "s1", "s2")]
    for _ in range(100):  # each waiter registers in its task's first step
        if watch.waiting() == 3:
            break
        await asyncio.sleep(0)
    assert watch.waiting() == 3
    watch.stop()
    assert await asyncio.gather(*waiters) == [True, True, True]  # answered (not "client gone")
    assert watch.waiting() == 0
    assert await asyncio.wait_for(watch.wait("s1", 600), 30) is True  # a later one does not wait
    assert watch.waiting() == 0
