"""A session owner narrows its workspace's policy, never widens it; run records clients write where no code may run
are taken out again."""

from __future__ import annotations

import json
from typing import Any

import httpx
from pycrdt import Array

from codeconnect.workspaces.schemas import Policy, SessionPolicy
from codeconnect.workspaces.service import narrow, read_policy, read_session_policy
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory, eventually
from tests.workspaces.test_admin_api import ADMIN, AUTH

EVERY_LANGUAGE = None


def owner(session: dict[str, Any]) -> dict[str, str]:
    return {"X-Owner-Key": session["ownerKey"]}


async def test_an_owner_narrows_the_policy_and_it_applies(server_factory: ServerFactory) -> None:
    server = await server_factory(max_participants=10)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        s = await new_session(c, language="python")
        sid = s["id"]
        view = (await c.get(f"/v1/sessions/{sid}/policy")).json()
        assert view["session"] == {"execution": None, "languages": EVERY_LANGUAGE, "maxParticipants": None}
        assert view["effective"] == view["workspace"]
        assert view["effective"]["maxParticipants"] == 10

        wanted = {"execution": "none", "languages": ["javascript", "python"], "maxParticipants": 2}
        r = await c.put(f"/v1/sessions/{sid}/policy", json=wanted, headers=owner(s))
        assert r.status_code == 200, r.text
        view = r.json()
        assert view["session"] == {"execution": "none", "languages": ["python", "javascript"], "maxParticipants": 2}
        assert view["effective"] == {"execution": "none", "languages": ["python", "javascript"], "maxParticipants": 2}
        assert view["workspace"]["maxParticipants"] == 10
        assert (await c.get(f"/v1/sessions/{sid}/policy")).json() == view

        # languages: the REST switch keeps to them
        r = await c.put(f"/v1/sessions/{sid}/language", json={"language": "java"})
        assert r.status_code == 403 and r.json()["error"] == "language_not_allowed", r.text
        assert (await c.put(f"/v1/sessions/{sid}/language", json={"language": "javascript"})).status_code == 200
        # participants: later joins
        for name in ("Ada", "Bob"):
            assert (await c.post(f"/v1/sessions/{sid}/participants", json={"name": name})).status_code == 201
        r = await c.post(f"/v1/sessions/{sid}/participants", json={"name": "Cy"})
        assert r.status_code == 409 and "2 participants" in r.json()["detail"]
        # execution: the settings say none, and the owner cannot switch running on against it
        settings = (await c.get(f"/v1/sessions/{sid}/settings")).json()
        assert settings["execution"] == "none" and settings["executionEnabled"] is False
        assert settings["languages"] == ["python", "javascript"]
        r = await c.put(f"/v1/sessions/{sid}/settings", json={"executionEnabled": True}, headers=owner(s))
        assert r.status_code == 403 and r.json()["error"] == "forbidden_by_policy"

        # `{}` follows the workspace again
        r = await c.put(f"/v1/sessions/{sid}/policy", json={}, headers=owner(s))
        assert r.status_code == 200 and r.json()["effective"] == r.json()["workspace"]
        assert (await c.post(f"/v1/sessions/{sid}/participants", json={"name": "Cy"})).status_code == 201
        assert (await c.put(f"/v1/sessions/{sid}/language", json={"language": "java"})).status_code == 200


async def test_an_owner_cannot_widen_the_workspace_policy(server_factory: ServerFactory) -> None:
    server = await server_factory(admin_token=ADMIN, max_participants=10)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        r = await c.put(
            "/v1/admin/workspaces/default/policy",
            json={"execution": "browser", "languages": ["python", "java"], "maxParticipants": 4},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        s = await new_session(c, language="python")
        sid = s["id"]
        before = (await c.get(f"/v1/sessions/{sid}/policy")).json()
        assert before["workspace"] == {"execution": "browser", "languages": ["python", "java"], "maxParticipants": 4}
        for wider, words in (
            ({"execution": "sandbox"}, "execution 'sandbox'"),
            ({"languages": ["python", "cpp"]}, "languages cpp"),
            ({"maxParticipants": 5}, "5 participants"),
        ):
            r = await c.put(f"/v1/sessions/{sid}/policy", json=wider, headers=owner(s))
            assert r.status_code == 403, (wider, r.text)
            assert r.json()["error"] == "forbidden_by_policy" and words in r.json()["detail"], r.text
        assert (await c.get(f"/v1/sessions/{sid}/policy")).json() == before

        r = await c.put(f"/v1/sessions/{sid}/policy", json={"languages": ["java"], "maxParticipants": 3},
                        headers=owner(s))  # fmt: skip
        assert r.status_code == 200
        assert r.json()["effective"] == {"execution": "browser", "languages": ["java"], "maxParticipants": 3}

        # the workspace narrowing further later wins over what the owner kept
        r = await c.put("/v1/admin/workspaces/default/policy", json={"languages": ["python"], "maxParticipants": 2},
                        headers=AUTH)  # fmt: skip
        view = (await c.get(f"/v1/sessions/{sid}/policy")).json()
        assert view["effective"]["languages"] == [] and view["effective"]["maxParticipants"] == 2
        r = await c.put(f"/v1/sessions/{sid}/language", json={"language": "python"})
        assert r.status_code == 403 and "no language" in r.json()["detail"]


async def test_only_the_owner_narrows_and_bad_bodies_change_nothing(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    sid = s["id"]
    participant = await join(client, sid, "Ada")
    url = f"/v1/sessions/{sid}/policy"
    r = await client.put(url, json={"execution": "none"})
    assert r.status_code == 401 and r.json()["error"] == "owner_key_required"
    r = await client.put(url, json={"execution": "none"}, headers={"X-Owner-Key": participant["token"]})
    assert r.status_code == 403 and r.json()["error"] == "owner_key_invalid"
    for bad in ({"execution": "everywhere"}, {"languages": []}, {"languages": ["cobol"]}, {"maxParticipants": 0},
                {"maxParticipants": True}, {"retentionDays": 3}, {"other": 1}, []):  # fmt: skip
        r = await client.put(url, json=bad, headers=owner(s))
        assert r.status_code == 422, (bad, r.text)
    r = await client.put("/v1/sessions/" + "x" * 40 + "/policy", json={}, headers=owner(s))
    assert r.status_code == 404
    assert (await client.get(url)).json()["session"]["execution"] is None


async def test_run_records_a_client_writes_are_taken_out_where_no_code_may_run(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    s = await new_session(client, language="python")
    sid = s["id"]
    ada = await YClient(collab_url(server.ws_url, sid, (await join(client, sid, "Ada"))["token"])).connect()
    bob = await YClient(collab_url(server.ws_url, sid, (await join(client, sid, "Bob"))["token"])).connect()
    ada_runs = ada.doc.get("runs", type=Array)
    bob_runs = bob.doc.get("runs", type=Array)

    # allowed: a browser run's record stays
    ada_runs.append({"id": "kept", "stdout": "1\n"})
    await bob.wait_for(lambda: len(bob_runs) == 1)

    r = await client.put(f"/v1/sessions/{sid}/policy", json={"execution": "none"}, headers=owner(s))
    assert r.status_code == 200
    ada_runs.append({"id": "sneaked", "stdout": "2\n"})
    ada.code.insert(0, "# marker\n")  # a later edit: once Bob has it, he had the record before it
    await bob.wait_for(lambda: "# marker" in bob.text)
    # taken out again, for everyone, and the record from before the change stays
    await bob.wait_for(lambda: [run["id"] for run in bob_runs.to_py()] == ["kept"])
    await ada.wait_for(lambda: [run["id"] for run in ada_runs.to_py()] == ["kept"])
    await ada.close()
    await bob.close()

    # so is the stored document: a fresh client loads without it
    cy = (await join(client, sid, "Cy"))["token"]

    async def stored_runs() -> bool:
        fresh = await YClient(collab_url(server.ws_url, sid, cy)).connect()
        try:
            return [run["id"] for run in fresh.doc.get("runs", type=Array).to_py()] == ["kept"]
        finally:
            await fresh.close()

    await eventually(stored_runs)


async def test_the_owners_switch_off_also_takes_client_run_records_out(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    s = await new_session(client, language="python")
    sid = s["id"]
    r = await client.put(f"/v1/sessions/{sid}/settings", json={"executionEnabled": False}, headers=owner(s))
    assert r.status_code == 200
    ada = await YClient(collab_url(server.ws_url, sid, (await join(client, sid, "Ada"))["token"])).connect()
    runs = ada.doc.get("runs", type=Array)
    runs.append({"id": "sneaked"})
    await ada.wait_for(lambda: len(runs) == 1)
    await ada.wait_for(lambda: len(runs) == 0)
    await ada.close()


def test_a_stored_policy_that_no_longer_validates_is_read_field_by_field() -> None:
    assert read_policy(None) == Policy()
    assert read_policy(json.dumps({"languages": ["python"], "maxParticipants": 3})).max_participants == 3
    # a field this version does not know is left out; a bad one is dropped, a bad execution reads as none
    odd = read_policy(json.dumps({"languages": ["python", "cobol"], "execution": "gpu", "maxParticipants": 4,
                                  "future": True}))  # fmt: skip
    assert odd == Policy(execution="none", max_participants=4)
    assert read_policy("not json") == Policy(execution="none")
    assert read_policy("[1]") == Policy(execution="none")
    assert read_session_policy(json.dumps({"maxParticipants": "x"})) == SessionPolicy()


def test_narrowing_takes_the_lesser_of_each_field() -> None:
    workspace = Policy(execution="browser", languages=["python", "java"], max_participants=5, retention_days=7)
    assert narrow(workspace, SessionPolicy()) == workspace
    narrowed = narrow(workspace, SessionPolicy(execution="sandbox", languages=["java", "cpp"], max_participants=9))
    assert narrowed == Policy(execution="browser", languages=["java"], max_participants=5, retention_days=7)
    assert narrow(Policy(), SessionPolicy(execution="none", max_participants=2)) == Policy(
        execution="none", max_participants=2
    )
