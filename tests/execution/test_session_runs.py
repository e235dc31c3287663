"""`POST /v1/sessions/{id}/execute`: the session's code, under the owner's switch, appended to shared output."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.sandbox


class RecordingSink:
    def __init__(self) -> None:
        self.runs: list[tuple[str, dict[str, Any]]] = []

    async def append_run(self, session_id: str, run: dict[str, Any]) -> None:
        self.runs.append((session_id, run))


async def test_session_run_and_switch(sandbox_server: LiveServer, sandbox_client: httpx.AsyncClient) -> None:
    sink = RecordingSink()
    sandbox_server.server.config.app.state.run_sink = sink
    code = "import sys\nprint('hi', sys.stdin.read())\n"
    session = (await sandbox_client.post("/v1/sessions", json={"language": "python", "code": code})).json()
    url = f"/v1/sessions/{session['id']}/execute"

    r = await sandbox_client.post(url, json={"stdin": "there"})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "hi there\n"
    assert r.json()["language"] == "python"
    [(session_id, run)] = sink.runs
    assert session_id == session["id"]
    assert run["source"] == "server"
    assert run["by"] is None
    assert run["stdout"] == "hi there\n"
    assert set(run) == {
        "id", "by", "source", "language", "stdout", "stderr", "exitCode", "signal", "timedOut",
        "outputTruncated", "compileOutput", "durationMs", "startedAt",
        "outcome", "signalName", "stdin",
    }  # fmt: skip
    assert run["stdin"] == "there"  # the input the run read, shown on everyone's card
    assert run["startedAt"].endswith("Z")

    owner = {"X-Owner-Key": session["ownerKey"]}
    settings_url = f"/v1/sessions/{session['id']}/settings"
    assert (await sandbox_client.put(settings_url, json={"executionEnabled": False}, headers=owner)).is_success
    r = await sandbox_client.post(url, json={})
    assert r.status_code == 403
    assert r.json()["error"] == "execution_disabled_for_session"
    assert len(sink.runs) == 1
    assert (await sandbox_client.put(settings_url, json={"executionEnabled": True}, headers=owner)).is_success
    r = await sandbox_client.post(url, json={})
    assert r.status_code == 200
    assert len(sink.runs) == 2


async def test_session_runs_its_current_code_and_language(sandbox_client: httpx.AsyncClient) -> None:
    session = (await sandbox_client.post("/v1/sessions", json={"language": "cpp"})).json()
    url = f"/v1/sessions/{session['id']}/execute"
    r = await sandbox_client.post(url, json={})
    assert r.json()["stdout"] == "Hello, world!\n", r.text  # the C++ starter
    await sandbox_client.put(f"/v1/sessions/{session['id']}/language", json={"language": "javascript"})
    await sandbox_client.put(f"/v1/sessions/{session['id']}", json={"code": "console.log(6 * 7)"})
    r = await sandbox_client.post(url, json={})
    assert r.json()["stdout"] == "42\n", r.text
    assert r.json()["language"] == "javascript"


async def test_session_run_errors(sandbox_client: httpx.AsyncClient) -> None:
    r = await sandbox_client.post("/v1/sessions/missing/execute", json={})
    assert r.status_code == 404
    session = (await sandbox_client.post("/v1/sessions", json={"language": "python"})).json()
    r = await sandbox_client.post(f"/v1/sessions/{session['id']}/execute", json={"stdin": 1})
    assert r.status_code == 422
    r = await sandbox_client.post(f"/v1/sessions/{session['id']}/execute", json={"code": "x"})
    assert r.status_code == 422


async def test_failing_sink_does_not_fail_the_run(
    sandbox_server: LiveServer, sandbox_client: httpx.AsyncClient
) -> None:
    class Broken:
        async def append_run(self, session_id: str, run: dict[str, Any]) -> None:
            raise RuntimeError("live layer down")

    sandbox_server.server.config.app.state.run_sink = Broken()
    session = (await sandbox_client.post("/v1/sessions", json={"language": "python"})).json()
    r = await sandbox_client.post(f"/v1/sessions/{session['id']}/execute", json={})
    assert r.status_code == 200
    assert r.json()["stdout"] == "Hello, world!\n"


async def test_a_participant_run_is_theirs_and_uses_the_live_text(
    sandbox_server: LiveServer, sandbox_client: httpx.AsyncClient
) -> None:
    from pycrdt import Array

    from tests.collab.yclient import YClient, collab_url, join

    session = (await sandbox_client.post("/v1/sessions", json={"language": "python"})).json()
    sid = session["id"]
    ada = await join(sandbox_client, sid, "Ada")
    viewer = await join(sandbox_client, sid, "Val", role="viewer")
    client = await YClient(collab_url(sandbox_server.ws_url, sid, ada["token"])).connect()
    try:
        with client.doc.transaction():
            client.code.clear()
            client.code.insert(0, "print('typed live')\n")
        runs = client.doc.get("runs", type=Array)
        # What the editor sees right now is what runs, even before it is mirrored to the database.
        registry = sandbox_server.server.config.app.state.collab
        for _ in range(500):
            if "typed live" in registry.peek(sid).shared.text():
                break
            await asyncio.sleep(0.01)
        url = f"/v1/sessions/{sid}/execute"
        r = await sandbox_client.post(url, json={}, headers={"X-Participant-Token": ada["token"]})
        assert r.status_code == 200, r.text
        assert r.json()["stdout"] == "typed live\n"
        await client.wait_for(lambda: len(runs) == 1)
        run = runs[0]
        assert run["by"] == {"participantId": ada["id"], "name": "Ada", "color": ada["color"]}
        assert run["stdout"] == "typed live\n"

        r = await sandbox_client.post(url, json={}, headers={"X-Participant-Token": viewer["token"]})
        assert r.status_code == 403 and r.json()["error"] == "read_only_participant"
        r = await sandbox_client.post(url, json={}, headers={"X-Participant-Token": "not-a-token"})
        assert r.status_code == 403 and r.json()["error"] == "participant_token_invalid"
        other = (await sandbox_client.post("/v1/sessions", json={})).json()
        stranger = await join(sandbox_client, other["id"], "Eve")
        r = await sandbox_client.post(url, json={}, headers={"X-Participant-Token": stranger["token"]})
        assert r.status_code == 403 and r.json()["error"] == "participant_token_invalid"
        assert len(runs) == 1
    finally:
        await client.close()


async def test_a_crashed_program_is_recorded_with_its_signal_name(
    sandbox_server: LiveServer, sandbox_client: httpx.AsyncClient
) -> None:
    sink = RecordingSink()
    sandbox_server.server.config.app.state.run_sink = sink
    code = "int main() { volatile int* p = nullptr; return *p; }\n"
    session = (await sandbox_client.post("/v1/sessions", json={"language": "cpp", "code": code})).json()
    r = await sandbox_client.post(f"/v1/sessions/{session['id']}/execute", json={})
    assert r.status_code == 200, r.text
    [(_, run)] = sink.runs
    assert (run["exitCode"], run["signal"], run["signalName"]) == (None, 11, "SIGSEGV"), run
    assert run["outcome"] == "crashed"
