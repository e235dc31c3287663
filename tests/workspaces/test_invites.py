"""`api-key` mode: the session id alone grants nothing; invites, tokens and the owner key do."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import ServerFactory

ADMIN = "invites-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
async def keyed(server_factory: ServerFactory) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    server = await server_factory(admin_token=ADMIN, auth="api-key")
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        await c.post("/v1/admin/workspaces", json={"name": "acme"}, headers=AUTH)
        key = (await c.post("/v1/admin/workspaces/acme/keys", json={}, headers=AUTH)).json()["key"]
        yield c, {"Authorization": f"Bearer {key}"}


async def test_the_session_id_alone_grants_nothing(keyed: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    c, key = keyed
    r = await c.post("/v1/sessions", json={"title": "Interview", "code": "x = 1\n"}, headers=key)
    assert r.status_code == 201
    created = r.json()
    sid, invite, owner = created["id"], created["editorInvite"], {"X-Owner-Key": created["ownerKey"]}
    assert invite.startswith("inv_") and len(invite) >= 47

    base = f"/v1/sessions/{sid}"
    refused = [
        ("GET", base, None), ("PUT", base, {"code": "stolen"}), ("PUT", f"{base}/language", {"language": "java"}),
        ("GET", f"{base}/participants", None), ("POST", f"{base}/participants", {"name": "Mallory"}),
        ("GET", f"{base}/settings", None), ("POST", f"{base}/execute", {}),
    ]  # fmt: skip
    for method, path, body in refused:
        for headers in ({}, {"X-Invite": "inv_" + "x" * 43}, {"X-Participant-Token": "t" * 43},
                        {"X-Owner-Key": "k" * 43}):  # fmt: skip
            r = await c.request(method, path, json=body, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["error"] == "session_credentials_required"
    # an unknown session is still a 404, whatever is sent
    assert (await c.get("/v1/sessions/nope", headers={"X-Invite": invite})).status_code == 404

    # the invite reads and joins, but does not write
    assert (await c.get(base, headers={"X-Invite": invite})).json()["code"] == "x = 1\n"
    r = await c.put(base, json={"code": "by invite"}, headers={"X-Invite": invite})
    assert r.status_code == 401
    r = await c.post(f"{base}/participants", json={"name": "Ada"}, headers={"X-Invite": invite})
    assert r.status_code == 201
    ada = {"X-Participant-Token": r.json()["token"]}
    r = await c.post(f"{base}/participants", json={"name": "Vic", "role": "viewer"}, headers={"X-Invite": invite})
    vic = {"X-Participant-Token": r.json()["token"]}

    # an editor's token reads and writes; a viewer's only reads
    assert (await c.put(base, json={"code": "by Ada"}, headers=ada)).status_code == 200
    assert (await c.get(f"{base}/participants", headers=vic)).status_code == 200
    assert (await c.get(f"{base}/settings", headers=vic)).status_code == 200
    assert (await c.put(base, json={"code": "by Vic"}, headers=vic)).status_code == 401
    # the owner does everything
    assert (await c.put(f"{base}/language", json={"language": "java"}, headers=owner)).status_code == 200
    assert (await c.get(base, headers=owner)).json()["code"] == "by Ada"

    # another session's token opens nothing here
    other = (await c.post("/v1/sessions", json={}, headers=key)).json()
    r = await c.post(f"/v1/sessions/{other['id']}/participants", json={"name": "Eve"},
                     headers={"X-Invite": other["editorInvite"]})  # fmt: skip
    assert (await c.get(base, headers={"X-Participant-Token": r.json()["token"]})).status_code == 401

    # rotating the invite: the old one stops, the new one works, people who joined keep their tokens
    r = await c.post(f"{base}/invites", json={"role": "editor"})
    assert r.status_code == 401 and r.json()["error"] == "owner_key_required"
    r = await c.post(f"{base}/invites", json={"role": "editor"}, headers={"X-Owner-Key": "wrong"})
    assert r.status_code == 403
    r = await c.post(f"{base}/invites", json={"role": "editor"}, headers=owner)
    assert r.status_code == 200
    new_invite = r.json()["editorInvite"]
    assert new_invite != invite
    assert (await c.get(base, headers={"X-Invite": invite})).status_code == 401
    assert (await c.get(base, headers={"X-Invite": new_invite})).status_code == 200
    assert (await c.get(base, headers=ada)).status_code == 200

    # revoking it: nobody joins by invite until the owner makes a new one
    assert (await c.delete(f"{base}/invites/editor", headers=owner)).status_code == 204
    r = await c.post(f"{base}/participants", json={"name": "Late"}, headers={"X-Invite": new_invite})
    assert r.status_code == 401
    assert (await c.post(f"{base}/participants", json={"name": "Own"}, headers=owner)).status_code == 201


async def test_the_read_only_link_is_the_viewer_invite_and_rotates(
    keyed: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    c, key = keyed
    created = (await c.post("/v1/sessions", json={"code": "shown\n"}, headers=key)).json()
    owner = {"X-Owner-Key": created["ownerKey"]}
    old = created["viewerId"]
    assert (await c.get(f"/v1/views/{old}")).json()["code"] == "shown\n"
    r = await c.post(f"/v1/sessions/{created['id']}/invites", json={"role": "viewer"}, headers=owner)
    assert r.status_code == 200
    new = r.json()["viewerId"]
    assert r.json()["viewUrl"] == f"/v/{new}" and r.json()["editorInvite"] is None
    assert (await c.get(f"/v1/views/{old}")).status_code == 404
    assert (await c.get(f"/v1/views/{new}")).json()["code"] == "shown\n"
    assert (await c.get(f"/v1/sessions/{created['id']}", headers=owner)).json()["viewerId"] == new


async def test_open_mode_keeps_the_session_id_as_the_invitation(server_factory: ServerFactory) -> None:
    server = await server_factory()
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        created = (await c.post("/v1/sessions", json={})).json()
        assert created["editorInvite"] is None
        sid = created["id"]
        assert (await c.get(f"/v1/sessions/{sid}")).status_code == 200
        assert (await c.post(f"/v1/sessions/{sid}/participants", json={"name": "Ada"})).status_code == 201
        r = await c.post(f"/v1/sessions/{sid}/invites", json={"role": "editor"},
                         headers={"X-Owner-Key": created["ownerKey"]})  # fmt: skip
        assert r.status_code == 409 and r.json()["error"] == "no_editor_invite"
        r = await c.post(f"/v1/sessions/{sid}/invites", json={"role": "viewer"},
                         headers={"X-Owner-Key": created["ownerKey"]})  # fmt: skip
        assert r.status_code == 200 and r.json()["viewerId"] != created["viewerId"]


async def test_a_join_let_in_by_an_invite_rotated_meanwhile_is_refused(
    server_factory: ServerFactory,
) -> None:
    # The access check and the join are two transactions: the join checks the invite again under its lock.
    from codeconnect.db import create_engine, create_sessionmaker
    from codeconnect.errors import Unauthorized
    from codeconnect.participants.service import join
    from codeconnect.sessions.cards import SessionCards

    server = await server_factory(admin_token=ADMIN, auth="api-key")
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        await c.post("/v1/admin/workspaces", json={"name": "acme"}, headers=AUTH)
        key = (await c.post("/v1/admin/workspaces/acme/keys", json={}, headers=AUTH)).json()["key"]
        created = (await c.post("/v1/sessions", json={}, headers={"Authorization": f"Bearer {key}"})).json()
        old = created["editorInvite"]
        r = await c.post(f"/v1/sessions/{created['id']}/invites", json={"role": "editor"},
                         headers={"X-Owner-Key": created["ownerKey"]})  # fmt: skip
        new = r.json()["editorInvite"]
    engine = create_engine(server.settings.database_url)
    try:
        maker = create_sessionmaker(engine)
        cards = SessionCards(16, None)
        async with maker() as db, db.begin():
            with pytest.raises(Unauthorized):
                await join(db, server.settings, cards, created["id"], name="Late", role="editor", invite=old)
        async with maker() as db, db.begin():
            joined = await join(db, server.settings, cards, created["id"], name="On time", role="editor", invite=new)
            assert joined.row.name == "On time"
    finally:
        await engine.dispose()
