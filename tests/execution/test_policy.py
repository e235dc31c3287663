"""A workspace's execution policy: what a session's settings say, what its owner may switch, what runs."""

from __future__ import annotations

import httpx

from tests.collab.yclient import YClient, collab_url
from tests.conftest import ServerFactory, eventually
from tests.execution.conftest import SANDBOX_LIMITS, require_sandbox

ADMIN = "policy-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def session_in(c: httpx.AsyncClient, workspace: str, **policy: object) -> tuple[str, dict[str, str]]:
    r = await c.post("/v1/admin/workspaces", json={"name": workspace, "policy": policy}, headers=AUTH)
    assert r.status_code == 201, r.text
    key = (await c.post(f"/v1/admin/workspaces/{workspace}/keys", json={}, headers=AUTH)).json()["key"]
    r = await c.post("/v1/sessions", json={"language": "python", "code": "print(6 * 7)\n"},
                     headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"], {"X-Owner-Key": r.json()["ownerKey"]}


async def test_the_policy_narrows_what_runs_and_the_owner_cannot_widen_it(server_factory: ServerFactory) -> None:
    require_sandbox()
    server = await server_factory(**SANDBOX_LIMITS, admin_token=ADMIN)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as c:
        free, _ = await session_in(c, "free")
        browser, _ = await session_in(c, "browser-only", execution="browser", languages=["python", "cpp"])
        nothing, owner = await session_in(c, "no-runs", execution="none")

        def settings(sid: str) -> object:
            return c.get(f"/v1/sessions/{sid}/settings")

        assert (await settings(free)).json() == {"executionEnabled": True, "allowClearOutput": True,
                                                 "execution": "sandbox", "languages": None}  # fmt: skip
        assert (await settings(browser)).json()["execution"] == "browser"
        assert (await settings(browser)).json()["languages"] == ["python", "cpp"]
        assert (await settings(browser)).json()["executionEnabled"] is True  # the page still runs it
        assert (await settings(nothing)).json() == {"executionEnabled": False, "allowClearOutput": True,
                                                    "execution": "none", "languages": None}  # fmt: skip

        r = await c.post(f"/v1/sessions/{free}/execute", json={})
        assert r.status_code == 200 and r.json()["stdout"] == "42\n"
        for sid, words in ((browser, "only in participants' browsers"), (nothing, "nowhere")):
            r = await c.post(f"/v1/sessions/{sid}/execute", json={})
            assert r.status_code == 403 and r.json()["error"] == "execution_not_allowed", r.text
            assert words in r.json()["detail"]

        r = await c.put(f"/v1/sessions/{nothing}/settings", json={"executionEnabled": True}, headers=owner)
        assert r.status_code == 403 and r.json()["error"] == "forbidden_by_policy"
        # narrowing is the owner's to do, and other switches still work
        r = await c.put(f"/v1/sessions/{nothing}/settings", json={"allowClearOutput": False}, headers=owner)
        assert r.status_code == 200 and r.json()["execution"] == "none"

        # the workspace's policy changes, the session follows at once
        r = await c.put("/v1/admin/workspaces/no-runs/policy", json={}, headers=AUTH)
        assert (await settings(nothing)).json()["executionEnabled"] is True
        r = await c.post(f"/v1/sessions/{nothing}/execute", json={})
        assert r.status_code == 200 and r.json()["stdout"] == "42\n"


async def test_without_the_sandbox_a_policy_cannot_grant_it(server_factory: ServerFactory) -> None:
    server = await server_factory(admin_token=ADMIN)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        sid, _ = await session_in(c, "wants-sandbox", execution="sandbox")
        assert (await c.get(f"/v1/sessions/{sid}/settings")).json()["execution"] == "browser"
        r = await c.post(f"/v1/sessions/{sid}/execute", json={})
        assert r.status_code == 403 and r.json()["error"] == "execution_disabled"


async def test_a_language_written_into_the_document_does_not_pass_the_policy(server_factory: ServerFactory) -> None:
    # The live protocol lets any editor write `meta.language`; the server still runs only what the policy allows.
    require_sandbox()
    server = await server_factory(**SANDBOX_LIMITS, admin_token=ADMIN)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as c:
        sid, _ = await session_in(c, "python-only", languages=["python"])
        token = (await c.post(f"/v1/sessions/{sid}/participants", json={"name": "Eve"})).json()["token"]
        eve = await YClient(collab_url(server.ws_url, sid, token)).connect()
        eve.meta["language"] = "java"
        await eventually(lambda: _language_is(c, sid, "java"))
        r = await c.post(f"/v1/sessions/{sid}/execute", json={}, headers={"X-Participant-Token": token})
        assert r.status_code == 403 and r.json()["error"] == "language_not_allowed", r.text
        await eve.close()


async def _language_is(c: httpx.AsyncClient, sid: str, language: str) -> bool:
    return (await c.get(f"/v1/sessions/{sid}")).json()["language"] == language


async def test_api_key_mode_runs_outside_sessions_only_with_a_key_and_its_policy(server_factory: ServerFactory) -> None:
    require_sandbox()
    server = await server_factory(**SANDBOX_LIMITS, admin_token=ADMIN, auth="api-key")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as c:
        body = {"language": "python", "code": "print(6 * 7)\n"}
        r = await c.post("/v1/execute", json=body)
        assert r.status_code == 401 and r.json()["error"] == "api_key_required"
        r = await c.post("/v1/execute", json=body, headers={"Authorization": "Bearer ccl_nope"})
        assert r.status_code == 401
        keys = {}
        policies = {"open-runs": {}, "no-server": {"execution": "browser"}, "java-only": {"languages": ["java"]}}
        for name, policy in policies.items():
            await c.post("/v1/admin/workspaces", json={"name": name, "policy": policy}, headers=AUTH)
            keys[name] = (await c.post(f"/v1/admin/workspaces/{name}/keys", json={}, headers=AUTH)).json()["key"]
        r = await c.post("/v1/execute", json=body, headers={"Authorization": f"Bearer {keys['open-runs']}"})
        assert r.status_code == 200 and r.json()["stdout"] == "42\n"
        r = await c.post("/v1/execute", json=body, headers={"Authorization": f"Bearer {keys['no-server']}"})
        assert r.status_code == 403 and r.json()["error"] == "execution_not_allowed"
        r = await c.post("/v1/execute", json=body, headers={"Authorization": f"Bearer {keys['java-only']}"})
        assert r.status_code == 403 and r.json()["error"] == "language_not_allowed"
