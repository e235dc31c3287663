"""Clearing the shared output: `DELETE /v1/sessions/{id}/runs` removes every run for everyone, for editors only,
while the owner's `allowClearOutput` switch is on (the default)."""

from __future__ import annotations

from typing import Any

import httpx
from pycrdt import Array

from tests.collab.yclient import YClient, collab_url, join
from tests.conftest import LiveServer


async def _session(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.post("/v1/sessions", json={"language": "python"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _runs(c: YClient) -> list[Any]:
    return list(c.doc.get("runs", type=Array))


async def test_an_editor_clears_the_output_for_everyone(server: LiveServer, client: httpx.AsyncClient) -> None:
    session = await _session(client)
    sid = session["id"]
    ada = await join(client, sid, "Ada")
    watcher = await YClient(collab_url(server.ws_url, sid, (await join(client, sid, "Bob"))["token"])).connect()
    for i in range(3):
        await server.server.config.app.state.run_sink.append_run(sid, {"id": f"run-{i}", "stdout": f"{i}\n"})
    await watcher.wait_for(lambda: len(_runs(watcher)) == 3)

    r = await client.delete(f"/v1/sessions/{sid}/runs", headers={"X-Participant-Token": ada["token"]})
    assert r.status_code == 204, r.text
    await watcher.wait_for(lambda: len(_runs(watcher)) == 0)
    # Stored: a fresh client (the room reloads from the log) sees no runs either.
    fresh = await YClient(collab_url(server.ws_url, sid, ada["token"])).connect()
    assert _runs(fresh) == []
    for c in (watcher, fresh):
        await c.close()


async def test_clearing_needs_an_editor_and_the_owners_consent(server: LiveServer, client: httpx.AsyncClient) -> None:
    session = await _session(client)
    sid = session["id"]
    url = f"/v1/sessions/{sid}/runs"
    ada = await join(client, sid, "Ada")
    viewer = await join(client, sid, "Vic", role="viewer")
    watcher = await YClient(collab_url(server.ws_url, sid, ada["token"])).connect()  # runs land in a loaded room
    await server.server.config.app.state.run_sink.append_run(sid, {"id": "kept", "stdout": "x"})
    await watcher.wait_for(lambda: len(_runs(watcher)) == 1)

    r = await client.delete(url)
    assert r.status_code == 401 and r.json()["error"] == "participant_token_required"
    r = await client.delete(url, headers={"X-Participant-Token": viewer["token"]})
    assert r.status_code == 403 and r.json()["error"] == "read_only_participant"
    r = await client.delete(url, headers={"X-Participant-Token": "not-a-token"})
    assert r.status_code == 403
    r = await client.delete("/v1/sessions/nope/runs", headers={"X-Participant-Token": ada["token"]})
    assert r.status_code == 404

    settings_url = f"/v1/sessions/{sid}/settings"
    owner = {"X-Owner-Key": session["ownerKey"]}
    r = await client.put(settings_url, json={"allowClearOutput": False}, headers=owner)
    assert r.status_code == 200
    assert r.json() | {"executionEnabled": True, "allowClearOutput": False} == r.json()
    assert (await client.get(settings_url)).json()["allowClearOutput"] is False
    r = await client.delete(url, headers={"X-Participant-Token": ada["token"]})
    assert r.status_code == 403 and r.json()["error"] == "clear_output_disabled"

    fresh = await YClient(collab_url(server.ws_url, sid, ada["token"])).connect()
    assert [run["id"] for run in _runs(fresh)] == ["kept"]  # nothing was cleared by the refused calls
    assert [run["id"] for run in _runs(watcher)] == ["kept"]

    r = await client.put(settings_url, json={"allowClearOutput": True}, headers=owner)
    assert r.json()["allowClearOutput"] is True
    r = await client.delete(url, headers={"X-Participant-Token": ada["token"]})
    assert r.status_code == 204
    await watcher.wait_for(lambda: len(_runs(watcher)) == 0)
    for c in (watcher, fresh):
        await c.close()


async def test_the_clear_switch_is_the_owners(client: httpx.AsyncClient) -> None:
    session = await _session(client)
    other = await _session(client)
    url = f"/v1/sessions/{session['id']}/settings"
    r = await client.put(url, json={"allowClearOutput": False})
    assert r.status_code == 401
    r = await client.put(url, json={"allowClearOutput": False}, headers={"X-Owner-Key": other["ownerKey"]})
    assert r.status_code == 403
    r = await client.put(url, json={"allowClearOutput": "maybe"}, headers={"X-Owner-Key": session["ownerKey"]})
    assert r.status_code == 422
    settings = (await client.get(url)).json()
    assert settings | {"executionEnabled": True, "allowClearOutput": True} == settings
