"""The per-session switch: only the owner (X-Owner-Key) may turn server-side execution off and on."""

from __future__ import annotations

import httpx


async def create(client: httpx.AsyncClient, **body: object) -> dict[str, str]:
    r = await client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_settings_default_on(client: httpx.AsyncClient) -> None:
    session = await create(client)
    r = await client.get(f"/v1/sessions/{session['id']}/settings")
    assert r.status_code == 200
    assert r.json() == {"executionEnabled": True, "allowClearOutput": True, "execution": "browser",
                        "languages": None}  # fmt: skip


async def test_owner_key_required_and_checked(client: httpx.AsyncClient) -> None:
    session = await create(client)
    other = await create(client)
    url = f"/v1/sessions/{session['id']}/settings"
    r = await client.put(url, json={"executionEnabled": False})
    assert r.status_code == 401
    assert r.json()["error"] == "owner_key_required"
    r = await client.put(url, json={"executionEnabled": False}, headers={"X-Owner-Key": other["ownerKey"]})
    assert r.status_code == 403
    assert r.json()["error"] == "owner_key_invalid"
    on = {"executionEnabled": True, "allowClearOutput": True, "execution": "browser", "languages": None}
    assert (await client.get(url)).json() == on

    r = await client.put(url, json={"executionEnabled": False}, headers={"X-Owner-Key": session["ownerKey"]})
    assert r.status_code == 200
    assert r.json() == {**on, "executionEnabled": False}
    assert (await client.get(url)).json() == {**on, "executionEnabled": False}
    r = await client.put(url, json={"executionEnabled": True}, headers={"X-Owner-Key": session["ownerKey"]})
    assert r.json() == {"executionEnabled": True, "allowClearOutput": True, "execution": "browser",
                        "languages": None}  # fmt: skip


async def test_settings_validation_and_missing_session(client: httpx.AsyncClient) -> None:
    session = await create(client)
    headers = {"X-Owner-Key": session["ownerKey"]}
    url = f"/v1/sessions/{session['id']}/settings"
    r = await client.put(url, json={"executionEnabled": "maybe"}, headers=headers)
    assert r.status_code == 422
    r = await client.put(url, json={}, headers=headers)
    assert r.status_code == 422
    r = await client.get("/v1/sessions/nope/settings")
    assert r.status_code == 404
    assert r.json()["error"] == "session_not_found"
    r = await client.put("/v1/sessions/nope/settings", json={"executionEnabled": False}, headers=headers)
    assert r.status_code == 404
