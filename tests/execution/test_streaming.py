"""A server run's output while it is made (`Accept: application/x-ndjson`): seen before the run ends, stoppable
from what was seen, stopped when the client leaves, refused before the stream starts."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx
import pytest

from codeconnect.execution.streaming import LiveRun
from tests.conftest import ServerFactory
from tests.execution.conftest import require_language, require_sandbox
from tests.execution.test_stop import (
    STOP_LIMITS,
    marked_processes,
    new_marker,
    new_session,
    nothing_more_arrives,
    record_runs,
    sleeper,
    wait_for,
)

NDJSON = {"Accept": "application/x-ndjson"}


async def _lines(response: httpx.Response) -> Any:
    async for line in response.aiter_lines():
        if line:
            yield json.loads(line)


@pytest.mark.sandbox
async def test_output_arrives_while_the_run_goes_on_and_it_can_be_stopped_from_there(
    server_factory: ServerFactory,
) -> None:
    """Before: the answer came only once the run ended (here: never, short of the wall clock), so a program that
    printed and then waited showed nothing. Pass: its first line arrives while it runs; stopped then, it ends
    "stopped" (a run answered only at its end would say "time limit"), its output kept, one shared record."""
    require_sandbox()
    require_language("cpp")
    server = await server_factory(**STOP_LIMITS)
    sink = record_runs(server)
    marker = new_marker("cpp")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        session = await new_session(client, "cpp", sleeper("cpp", marker))
        run_id = secrets.token_hex(16)
        url = f"/v1/sessions/{session['id']}/execute"
        async with client.stream("POST", url, json={"runId": run_id}, headers=NDJSON) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/x-ndjson")
            lines = _lines(response)
            first = await anext(lines)
            assert first == {"type": "output", "stream": "stdout", "text": "started\n"}
            started = asyncio.get_running_loop().time()
            stop = await client.post(f"/v1/sessions/{session['id']}/runs/{run_id}/stop")
            assert stop.json() == {"runId": run_id, "running": True}
            rest = [line async for line in lines]
        assert rest[-1]["type"] == "result", rest
        result = rest[-1]["result"]
        assert result["outcome"] == "stopped" and result["stdout"] == "started\n", result
        await wait_for(lambda: not marked_processes(marker), 5, "the sandbox was killed")
        [record] = sink.runs
        assert record["id"] == run_id and record["outcome"] == "stopped"
        await nothing_more_arrives(sink, started)


@pytest.mark.sandbox
async def test_a_streaming_client_that_leaves_stops_its_run(server_factory: ServerFactory) -> None:
    require_sandbox()
    require_language("cpp")
    server = await server_factory(**STOP_LIMITS)
    sink = record_runs(server)
    marker = new_marker("cpp")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        session = await new_session(client, "cpp", sleeper("cpp", marker))
    leaving = httpx.AsyncClient(base_url=server.base_url, timeout=60)
    run_id = secrets.token_hex(16)
    url = f"/v1/sessions/{session['id']}/execute"
    async with leaving.stream("POST", url, json={"runId": run_id}, headers=NDJSON) as response:
        first = await anext(_lines(response))
        assert first["text"] == "started\n"
        started = asyncio.get_running_loop().time()
    await leaving.aclose()  # the tab is gone
    await wait_for(lambda: not marked_processes(marker), 10, "the sandbox was killed when the client left")
    await wait_for(lambda: len(sink.runs) == 1, 10, "the run was recorded")
    assert sink.runs[0]["id"] == run_id and sink.runs[0]["outcome"] == "stopped", sink.runs
    await nothing_more_arrives(sink, started)


@pytest.mark.sandbox
async def test_refusals_come_before_the_stream_as_plain_errors(server_factory: ServerFactory) -> None:
    require_sandbox()
    server = await server_factory(**STOP_LIMITS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        session = await new_session(client, "python", "print(1)\n")
        owner = {"X-Owner-Key": session["ownerKey"]}
        settings_url = f"/v1/sessions/{session['id']}/settings"
        assert (await client.put(settings_url, json={"executionEnabled": False}, headers=owner)).is_success
        r = await client.post(f"/v1/sessions/{session['id']}/execute", json={}, headers=NDJSON)
        assert r.status_code == 403 and r.json()["error"] == "execution_disabled_for_session"
        r = await client.post("/v1/sessions/missing/execute", json={}, headers=NDJSON)
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")


async def test_a_character_split_across_two_reads_arrives_whole() -> None:
    live = LiveRun()
    live.hear("stdout", "é".encode()[:1])
    live.hear("stderr", b"!")
    live.hear("stdout", "é".encode()[1:] + b"\n")

    async def result() -> Any:
        from codeconnect.execution.schemas import ExecuteResult

        return ExecuteResult.model_validate(
            {"stdout": "é\n", "stderr": "!", "exitCode": 0, "signal": None, "timedOut": False,
             "outputTruncated": False, "compileOutput": "", "durationMs": 1, "language": "python",
             "outcome": "ok", "signalName": None}
        )  # fmt: skip

    task = live.start(result())
    lines = [json.loads(line) async for line in live.lines(task)]
    assert [(x["stream"], x["text"]) for x in lines if x["type"] == "output"] == [("stderr", "!"), ("stdout", "é\n")]
    assert lines[-1]["type"] == "result" and lines[-1]["result"]["stdout"] == "é\n"
