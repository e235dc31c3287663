"""Workspaces, policies and API keys through the admin API, and what they change for the session API."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from sqlalchemy import select

from codeconnect.db import create_engine
from codeconnect.models import ApiKeyRow, SessionRow
from tests.conftest import LiveServer, ServerFactory

ADMIN = "a" * 32
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_workspace(c: httpx.AsyncClient, name: str, **policy: object) -> dict[str, object]:
    r = await c.post("/v1/admin/workspaces", json={"name": name, "policy": policy}, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def new_key(c: httpx.AsyncClient, workspace: str, label: str = "ci") -> dict[str, str]:
    r = await c.post(f"/v1/admin/workspaces/{workspace}/keys", json={"label": label}, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def workspace_of(server: LiveServer, session_id: str) -> str:
    engine = create_engine(server.settings.database_url)
    try:
        async with engine.connect() as conn:
            return str(await conn.scalar(select(SessionRow.workspace_id).where(SessionRow.id == session_id)))
    finally:
        await engine.dispose()


async def test_the_admin_api_does_not_exist_without_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/admin/workspaces", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not any(p.startswith("/v1/admin") for p in paths)


async def test_the_admin_api_refuses_a_missing_or_wrong_token(server_factory: ServerFactory) -> None:
    server = await server_factory(admin_token=ADMIN)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        for headers in ({}, {"Authorization": "Bearer " + "b" * 32}, {"Authorization": f"Basic {ADMIN}"},
                        {"Authorization": f"Bearer {ADMIN}x"}):  # fmt: skip
            r = await c.get("/v1/admin/workspaces", headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
            r = await c.post("/v1/admin/workspaces", json={"name": "x"}, headers=headers)
            assert r.status_code == 401
        r = await c.get("/v1/admin/workspaces", headers=AUTH)
        assert r.status_code == 200
        assert [w["name"] for w in r.json()] == ["default"]  # the creation above changed nothing


def test_a_short_admin_token_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from codeconnect.config import Settings

    with pytest.raises(ValidationError, match="at least 24"):
        Settings(admin_token="short")
    assert Settings(admin_token="").admin_token is None


async def test_workspaces_policies_and_keys(server_factory: ServerFactory) -> None:
    server = await server_factory(admin_token=ADMIN)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        acme = await new_workspace(c, "acme", languages=["java", "python", "java"], maxParticipants=3)
        assert acme["name"] == "acme"
        assert acme["policy"] == {"execution": None, "languages": ["python", "java"], "maxParticipants": 3,
                                  "retentionDays": None, "historyDays": None}  # fmt: skip
        assert acme["activeKeys"] == 0
        r = await c.post("/v1/admin/workspaces", json={"name": "acme"}, headers=AUTH)
        assert r.status_code == 409 and r.json()["error"] == "workspace_exists"
        for bad in ({"name": ""}, {"name": "has space"}, {"name": "x", "policy": {"execution": "everything"}},
                    {"name": "x", "policy": {"maxParticipants": 0}}, {"name": "x", "policy": {"languages": []}},
                    {"name": "x", "policy": {"languages": ["cobol"]}}, {"name": "x", "extra": 1}):  # fmt: skip
            r = await c.post("/v1/admin/workspaces", json=bad, headers=AUTH)
            assert r.status_code == 422, bad
            assert r.json()["error"] == "validation_error"

        # by id or by name
        for ref in (acme["id"], "acme"):
            r = await c.get(f"/v1/admin/workspaces/{ref}", headers=AUTH)
            assert r.status_code == 200 and r.json()["id"] == acme["id"]
        r = await c.get("/v1/admin/workspaces/nope", headers=AUTH)
        assert r.status_code == 404 and r.json()["error"] == "workspace_not_found"

        r = await c.put("/v1/admin/workspaces/acme/policy", json={"execution": "none"}, headers=AUTH)
        assert r.status_code == 200
        assert r.json()["policy"]["execution"] == "none"
        assert r.json()["policy"]["languages"] is None  # replaced whole, not merged

        key = await new_key(c, "acme", "build server")
        assert key["key"].startswith("ccl_") and len(key["key"]) >= 47
        assert key["workspaceId"] == acme["id"] and key["label"] == "build server"
        assert key["lastUsedAt"] is None and key["revokedAt"] is None
        listed = (await c.get("/v1/admin/workspaces/acme/keys", headers=AUTH)).json()
        assert [k["id"] for k in listed] == [key["id"]]
        assert "key" not in listed[0]
        assert (await c.get("/v1/admin/workspaces/acme", headers=AUTH)).json()["activeKeys"] == 1
        r = await c.post("/v1/admin/workspaces/nope/keys", json={}, headers=AUTH)
        assert r.status_code == 404

        # only the key's hash is stored
        engine = create_engine(server.settings.database_url)
        try:
            async with engine.connect() as conn:
                stored = (await conn.execute(select(ApiKeyRow.key_hash))).scalars().all()
        finally:
            await engine.dispose()
        assert stored == [hashlib.sha256(key["key"].encode()).hexdigest()]

        r = await c.delete(f"/v1/admin/keys/{key['id']}", headers=AUTH)
        assert r.status_code == 204
        first = (await c.get("/v1/admin/workspaces/acme/keys", headers=AUTH)).json()[0]["revokedAt"]
        assert first is not None
        assert (await c.delete(f"/v1/admin/keys/{key['id']}", headers=AUTH)).status_code == 204
        assert (await c.get("/v1/admin/workspaces/acme/keys", headers=AUTH)).json()[0]["revokedAt"] == first
        assert (await c.get("/v1/admin/workspaces/acme", headers=AUTH)).json()["activeKeys"] == 0
        r = await c.delete("/v1/admin/keys/nope", headers=AUTH)
        assert r.status_code == 404 and r.json()["error"] == "api_key_not_found"


async def test_api_key_mode_needs_a_live_key_to_create_a_session(server_factory: ServerFactory) -> None:
    server = await server_factory(admin_token=ADMIN, auth="api-key")
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        await new_workspace(c, "acme")
        key = await new_key(c, "acme")
        body = {"title": "Interview"}

        r = await c.post("/v1/sessions", json=body)
        assert r.status_code == 401
        assert r.json()["error"] == "api_key_required" and r.headers["www-authenticate"] == "Bearer"
        for wrong in ("ccl_" + "x" * 43, key["key"] + "x", "not-a-key", ADMIN):
            r = await c.post("/v1/sessions", json=body, headers=bearer(wrong))
            assert r.status_code == 401 and r.json()["error"] == "invalid_api_key", wrong

        r = await c.post("/v1/sessions", json=body, headers=bearer(key["key"]))
        assert r.status_code == 201, r.text
        r_created = r.json()
        session_id = r_created["id"]
        listed = (await c.get("/v1/admin/workspaces/acme/keys", headers=AUTH)).json()
        assert listed[0]["lastUsedAt"] is not None

        # revoked: refused at once, and by another process on the same database (no cache of keys anywhere)
        other = await server_factory(auth="api-key")
        assert (await c.delete(f"/v1/admin/keys/{key['id']}", headers=AUTH)).status_code == 204
        for base in (server.base_url, other.base_url):
            r = await c.post(f"{base}/v1/sessions", json=body, headers=bearer(key["key"]))
            assert r.status_code == 401 and r.json()["error"] == "api_key_revoked"

        # the session made with it is in its workspace; reading and joining need its invite, not a key
        workspace = (await c.get("/v1/admin/workspaces/acme", headers=AUTH)).json()["id"]
        assert await workspace_of(server, session_id) == workspace
        invite = {"X-Invite": r_created["editorInvite"]}
        assert (await c.get(f"/v1/sessions/{session_id}", headers=invite)).status_code == 200
        r = await c.post(f"/v1/sessions/{session_id}/participants", json={"name": "Ada"}, headers=invite)
        assert r.status_code == 201


async def test_open_mode_takes_a_key_when_given(server_factory: ServerFactory) -> None:
    server = await server_factory(admin_token=ADMIN)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        acme = await new_workspace(c, "acme")
        key = await new_key(c, "acme")
        anonymous = (await c.post("/v1/sessions", json={})).json()["id"]
        keyed = (await c.post("/v1/sessions", json={}, headers=bearer(key["key"]))).json()["id"]
        assert await workspace_of(server, anonymous) == "default"
        assert await workspace_of(server, keyed) == acme["id"]
        r = await c.post("/v1/sessions", json={}, headers=bearer("ccl_wrong"))
        assert r.status_code == 401  # a key that is sent is checked, even where none is needed


async def test_a_policy_limits_languages_and_participants(server_factory: ServerFactory) -> None:
    server = await server_factory(admin_token=ADMIN, max_participants=5)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        await new_workspace(c, "school", languages=["python"], maxParticipants=2)
        key = bearer((await new_key(c, "school"))["key"])
        r = await c.post("/v1/sessions", json={"language": "java"}, headers=key)
        assert r.status_code == 403 and r.json()["error"] == "language_not_allowed"
        assert "python" in r.json()["detail"]
        r = await c.post("/v1/sessions", json={"language": "python"}, headers=key)
        assert r.status_code == 201
        sid = r.json()["id"]
        r = await c.put(f"/v1/sessions/{sid}/language", json={"language": "cpp"})
        assert r.status_code == 403 and r.json()["error"] == "language_not_allowed"
        assert (await c.get(f"/v1/sessions/{sid}")).json()["language"] == "python"

        for name in ("Ada", "Bob"):
            assert (await c.post(f"/v1/sessions/{sid}/participants", json={"name": name})).status_code == 201
        r = await c.post(f"/v1/sessions/{sid}/participants", json={"name": "Cy"})
        assert r.status_code == 409 and "2 participants" in r.json()["detail"]

        # a policy change applies to existing sessions; never past the server's own limit
        r = await c.put("/v1/admin/workspaces/school/policy", json={"maxParticipants": 100}, headers=AUTH)
        assert r.status_code == 200
        for name in ("Cy", "Di", "Ed"):
            assert (await c.post(f"/v1/sessions/{sid}/participants", json={"name": name})).status_code == 201
        r = await c.post(f"/v1/sessions/{sid}/participants", json={"name": "Flo"})
        assert r.status_code == 409 and "5 participants" in r.json()["detail"]
        assert (await c.put(f"/v1/sessions/{sid}/language", json={"language": "cpp"})).status_code == 200

        # sessions of the default workspace follow its policy too
        r = await c.put("/v1/admin/workspaces/default/policy", json={"languages": ["javascript"]}, headers=AUTH)
        assert (await c.post("/v1/sessions", json={"language": "python"})).status_code == 403
        assert (await c.post("/v1/sessions", json={"language": "javascript"})).status_code == 201


async def test_one_key_has_one_creation_budget_wherever_it_is_used(server_factory: ServerFactory) -> None:
    # Behind a trusted proxy, each forwarded address has a budget of its own; the key's is shared by all of them.
    server = await server_factory(admin_token=ADMIN, rate_sessions_per_minute=2, trusted_proxies="127.0.0.1")
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        await new_workspace(c, "acme")
        key = (await new_key(c, "acme"))["key"]
        for address in ("203.0.113.1", "203.0.113.2"):
            r = await c.post("/v1/sessions", json={}, headers={**bearer(key), "X-Forwarded-For": address})
            assert r.status_code == 201, r.text
        r = await c.post("/v1/sessions", json={}, headers={**bearer(key), "X-Forwarded-For": "203.0.113.3"})
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        # the same address without the key is not held back by the key's budget
        r = await c.post("/v1/sessions", json={}, headers={"X-Forwarded-For": "203.0.113.3"})
        assert r.status_code == 201
