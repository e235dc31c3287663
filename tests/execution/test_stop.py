"""Stopping a server run: the explicit stop endpoint and a client that goes away both kill the sandbox at once,
and the run ends as "stopped" exactly once (no record turns up later when its time limit would have passed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from codeconnect.languages import LanguageName
from tests.conftest import LiveServer, ServerFactory
from tests.execution.conftest import SANDBOX_LIMITS, require_language, require_sandbox

pytestmark = pytest.mark.sandbox

# Short, so the check that nothing arrives after the wall clock would have ended the run stays quick.
WALL_SECONDS = 3.0
STOP_LIMITS: dict[str, Any] = {**SANDBOX_LIMITS, "exec_wall_seconds": WALL_SECONDS}


def sleeper(language: LanguageName, marker: str) -> str:
    """A program that shows ``marker`` in the host's process table, then waits (no CPU: only a wall clock or a
    stop ends it). Java: the main class is on java's command line; C++: the process's name (comm)."""
    if language == "java":
        return (
            f"public class {marker} {{ public static void main(String[] a) throws Exception {{\n"
            '  System.out.println("started"); Thread.sleep(600_000); } }\n'
        )
    return (
        "#include <sys/prctl.h>\n#include <unistd.h>\n#include <cstdio>\n"
        f'int main() {{ prctl(PR_SET_NAME, "{marker}"); std::puts("started"); std::fflush(stdout);'
        " for (;;) pause(); }\n"
    )


def new_marker(language: LanguageName) -> str:
    # comm holds 15 bytes; a Java class name must start with a letter.
    return ("StopMe" if language == "java" else "stop") + secrets.token_hex(4)


def marked_processes(marker: str) -> list[int]:
    """Pids named ``marker`` (comm) or with ``marker`` as a whole argument (java's main class; not javac's
    ``marker.java``)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm", "rb") as f:
                comm = f.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if comm.strip() == marker.encode() or f"\0{marker}\0".encode() in cmdline:
            found.append(int(entry.name))
    return found


async def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll ``condition`` until it holds; the seconds it took. Fails the test after ``seconds``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class RecordingSink:
    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    async def append_run(self, session_id: str, run: dict[str, Any]) -> None:
        self.runs.append(run)


async def wait_started(marker: str, request: asyncio.Task[httpx.Response]) -> float:
    """Wait until the program is running in its sandbox (failing with the answer if the request ended first)."""

    def running() -> bool:
        if request.done():
            response = request.result()
            raise AssertionError(f"the run ended before it could be stopped: {response.status_code} {response.text}")
        return bool(marked_processes(marker))

    await wait_for(running, 30, "the program started")
    return time.monotonic()


def record_runs(server: LiveServer) -> RecordingSink:
    sink = RecordingSink()
    server.server.config.app.state.run_sink = sink
    return sink


async def new_session(client: httpx.AsyncClient, language: LanguageName, code: str) -> dict[str, Any]:
    r = await client.post("/v1/sessions", json={"language": language, "code": code})
    assert r.status_code == 201, r.text
    session: dict[str, Any] = r.json()
    return session


async def nothing_more_arrives(sink: RecordingSink, program_started: float) -> None:
    """Until the run's own wall clock would have ended the program, and a margin: still exactly one record."""
    deadline = program_started + WALL_SECONDS + 2.0
    while time.monotonic() < deadline:
        assert len(sink.runs) == 1, sink.runs
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("language", ["cpp", "java"])
async def test_the_stop_endpoint_kills_the_run_and_it_ends_stopped_once(
    server_factory: ServerFactory, language: LanguageName
) -> None:
    require_sandbox()
    require_language(language)
    server = await server_factory(**STOP_LIMITS)
    sink = record_runs(server)
    marker = new_marker(language)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        session = await new_session(client, language, sleeper(language, marker))
        run_id = secrets.token_hex(16)
        execute = asyncio.create_task(
            client.post(f"/v1/sessions/{session['id']}/execute", json={"runId": run_id})
        )
        started = await wait_started(marker, execute)
        stop = await client.post(f"/v1/sessions/{session['id']}/runs/{run_id}/stop")
        assert stop.status_code == 202, stop.text
        assert stop.json() == {"runId": run_id, "running": True}
        stopped_at = time.monotonic()
        response = await asyncio.wait_for(execute, 5)
        took = time.monotonic() - stopped_at
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["outcome"] == "stopped", body
        assert body["timedOut"] is False
        # Gone at once, long before the wall clock would have ended it.
        await wait_for(lambda: not marked_processes(marker), 1.0, "the sandbox was killed")
        assert took < 1.5, took
        [record] = sink.runs
        assert record["id"] == run_id
        assert record["outcome"] == "stopped"
        await nothing_more_arrives(sink, started)


async def test_a_client_that_goes_away_stops_its_run(server_factory: ServerFactory) -> None:
    require_sandbox()
    require_language("cpp")
    server = await server_factory(**STOP_LIMITS)
    sink = record_runs(server)
    marker = new_marker("cpp")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        session = await new_session(client, "cpp", sleeper("cpp", marker))
    # A connection of its own, closed while the run is in progress: what a closed tab or an aborted fetch does.
    leaving = httpx.AsyncClient(base_url=server.base_url, timeout=60)
    run_id = secrets.token_hex(16)
    execute = asyncio.create_task(leaving.post(f"/v1/sessions/{session['id']}/execute", json={"runId": run_id}))
    started = await wait_started(marker, execute)
    execute.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await execute
    await leaving.aclose()
    await wait_for(lambda: not marked_processes(marker), 1.5, "the sandbox was killed when the client left")
    await wait_for(lambda: len(sink.runs) == 1, 2.0, "the run was recorded")
    [record] = sink.runs
    assert record["id"] == run_id
    assert record["outcome"] == "stopped", record
    await nothing_more_arrives(sink, started)


async def test_a_client_that_goes_away_stops_a_plain_execute(server_factory: ServerFactory) -> None:
    require_sandbox()
    require_language("cpp")
    server = await server_factory(**STOP_LIMITS)
    marker = new_marker("cpp")
    leaving = httpx.AsyncClient(base_url=server.base_url, timeout=60)
    execute = asyncio.create_task(
        leaving.post("/v1/execute", json={"language": "cpp", "code": sleeper("cpp", marker)})
    )
    await wait_started(marker, execute)
    execute.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await execute
    await leaving.aclose()
    await wait_for(lambda: not marked_processes(marker), 1.5, "the sandbox was killed when the client left")


async def test_a_stop_that_arrives_before_its_run_still_applies(server_factory: ServerFactory) -> None:
    """The page sends Stop on its own connection; it can overtake the run it stops."""
    require_sandbox()
    require_language("cpp")
    server = await server_factory(**STOP_LIMITS)
    sink = record_runs(server)
    marker = new_marker("cpp")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        session = await new_session(client, "cpp", sleeper("cpp", marker))
        run_id = secrets.token_hex(16)
        stop = await client.post(f"/v1/sessions/{session['id']}/runs/{run_id}/stop")
        assert stop.status_code == 202
        assert stop.json() == {"runId": run_id, "running": False}
        started = time.monotonic()
        r = await client.post(f"/v1/sessions/{session['id']}/execute", json={"runId": run_id})
        assert r.json()["outcome"] == "stopped", r.text
        assert time.monotonic() - started < 1.0
        assert not marked_processes(marker)
        [record] = sink.runs
        assert record["id"] == run_id and record["outcome"] == "stopped"


async def test_stop_requests_are_checked(sandbox_client: httpx.AsyncClient) -> None:
    from tests.collab.yclient import join

    session = await new_session(sandbox_client, "python", "print(1)\n")
    sid = session["id"]
    run_id = secrets.token_hex(16)
    r = await sandbox_client.post(f"/v1/sessions/missing/runs/{run_id}/stop")
    assert r.status_code == 404
    r = await sandbox_client.post(f"/v1/sessions/{sid}/runs/short/stop")
    assert r.status_code == 422
    viewer = await join(sandbox_client, sid, "Val", role="viewer")
    r = await sandbox_client.post(
        f"/v1/sessions/{sid}/runs/{run_id}/stop", headers={"X-Participant-Token": viewer["token"]}
    )
    assert r.status_code == 403 and r.json()["error"] == "read_only_participant", r.text
    editor = await join(sandbox_client, sid, "Ada")
    r = await sandbox_client.post(
        f"/v1/sessions/{sid}/runs/{run_id}/stop", headers={"X-Participant-Token": editor["token"]}
    )
    assert r.status_code == 202
    r = await sandbox_client.post(f"/v1/sessions/{sid}/execute", json={"runId": "not an id"})
    assert r.status_code == 422
