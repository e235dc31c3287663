"""Admission: bounded concurrency and queue (429 `execution_busy`), per-client rate, missing toolchains (501)."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.execution.conftest import SANDBOX_LIMITS, processes_with, require_sandbox, run, wait_until_gone

pytestmark = pytest.mark.sandbox


async def test_twenty_concurrent_runs(server_factory: ServerFactory) -> None:
    require_sandbox()
    server = await server_factory(**{**SANDBOX_LIMITS, "exec_concurrency": 2, "exec_queue_size": 4})
    marker = f"storm-{uuid.uuid4().hex[:8]}"
    code = f"import os\nprint('done', flush=True)\nos.execvp('sleep', ['{marker}', '2'])\n"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        storm = [
            asyncio.create_task(client.post("/v1/execute", json={"language": "python", "code": code}))
            for _ in range(20)
        ]
        await asyncio.sleep(0.2)
        # The server keeps answering while every slot is taken and the queue is full.
        health = await client.get("/healthz", timeout=5)
        assert health.status_code == 200
        languages = await client.get("/v1/execute/languages", timeout=5)
        assert languages.status_code == 200
        responses = await asyncio.gather(*storm)
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 2 + 4
    assert statuses.count(429) >= 1
    for r in responses:
        if r.status_code == 200:
            assert r.json()["stdout"] == "done\n"
        else:
            assert r.json()["error"] == "execution_busy"
            assert int(r.headers["retry-after"]) >= 1
    assert await wait_until_gone(lambda: processes_with(marker)) == []


async def test_rate_limit_per_client(server_factory: ServerFactory) -> None:
    require_sandbox()
    server = await server_factory(**{**SANDBOX_LIMITS, "exec_rate_per_minute": 2})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        for _ in range(2):
            await run(client, "python", "print(1)")
        r = await client.post("/v1/execute", json={"language": "python", "code": "print(1)"})
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_rate_limit_per_client_behind_a_trusted_proxy(server_factory: ServerFactory) -> None:
    # The run rate counts the client the proxy names, not the proxy (the same address as the REST limits).
    require_sandbox()
    server = await server_factory(**{**SANDBOX_LIMITS, "exec_rate_per_minute": 1, "trusted_proxies": "127.0.0.1"})
    program = {"language": "python", "code": "print(1)"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        first = {"X-Forwarded-For": "198.51.100.1"}
        assert (await client.post("/v1/execute", json=program, headers=first)).status_code == 200
        r = await client.post("/v1/execute", json=program, headers=first)
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        second = {"X-Forwarded-For": "198.51.100.2"}
        assert (await client.post("/v1/execute", json=program, headers=second)).status_code == 200


async def test_missing_toolchain_is_501(server_factory: ServerFactory, tmp_path: Path) -> None:
    require_sandbox()
    server = await server_factory(**{**SANDBOX_LIMITS, "exec_typescript_dir": str(tmp_path)})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        r = await client.post("/v1/execute", json={"language": "ts", "code": "let a: number = 1;"})
        assert r.status_code == 501
        assert r.json()["error"] == "language_unavailable"
        assert "sucrase" in r.json()["detail"]
        listed = {e["language"]: e for e in (await client.get("/v1/execute/languages")).json()["languages"]}
        assert listed["typescript"] == {
            "language": "typescript",
            "available": False,
            "missing": ["sucrase"],
            "reason": "missing sucrase",
        }
        assert listed["python"]["available"] is True
        # The other languages still run.
        assert (await run(client, "javascript", "console.log(2)"))["stdout"] == "2\n"


async def test_size_limits(server_factory: ServerFactory) -> None:
    require_sandbox()
    server = await server_factory(**{**SANDBOX_LIMITS, "max_code_bytes": 100, "max_stdin_bytes": 10})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        # One rule in bytes of UTF-8, one status: one-byte characters past the limit are 413 like four-byte ones.
        r = await client.post("/v1/execute", json={"language": "python", "code": "#" * 101})
        assert r.status_code == 413
        assert r.json()["error"] == "code_too_large"
        r = await client.post("/v1/execute", json={"language": "python", "code": "", "stdin": "a" * 11})
        assert (r.status_code, r.json()["error"]) == (413, "stdin_too_large")
        r = await client.post("/v1/execute", json={"language": "python", "code": "# é" * 30})
        assert r.status_code == 413
        assert r.json()["error"] == "code_too_large"
        r = await client.post("/v1/execute", json={"language": "python", "code": "", "stdin": "éééééé"})
        assert r.status_code == 413
        assert r.json()["error"] == "stdin_too_large"
        r = await client.post("/v1/execute", json={"language": "python", "code": "x", "stdin": "a\u0000"})
        assert r.status_code == 422


@pytest.mark.skipif(os.geteuid() != 0, reason="distinct uids per slot need the server to run as root")
async def test_fork_bomb_does_not_starve_the_other_slot(server_factory: ServerFactory) -> None:
    require_sandbox()
    # RLIMIT_NPROC counts the processes of a uid: with one uid for every run, a run holding its whole budget
    # leaves none for the run beside it (bwrap cannot even fork). One uid per slot keeps them apart.
    uid_base = 200_000 + 2 * secrets.randbelow(50_000)  # uids of this test's own (see SANDBOX_LIMITS)
    server = await server_factory(**{**SANDBOX_LIMITS, "exec_concurrency": 2, "exec_slot_uid_base": uid_base})
    marker = f"hold-{uuid.uuid4().hex[:8]}"
    bomb = (
        "import os, time\n"
        "while True:\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        f"            os.execvp('sleep', ['{marker}', '300'])\n"
        "    except OSError:\n"
        "        break\n"
        "time.sleep(300)\n"
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        attack = asyncio.create_task(run(client, "python", bomb))
        counts = [0]
        for _ in range(100):  # until the bomb holds its whole process budget (the count stops growing)
            await asyncio.sleep(0.05)
            counts.append(len(processes_with(marker)))
            if len(counts) >= 3 and counts[-1] >= server.settings.exec_max_processes // 2 and counts[-1] == counts[-3]:
                break
        assert counts[-1] >= server.settings.exec_max_processes // 2, counts
        hello = await run(client, "python", "import os\nprint(os.getuid())")
        assert hello["exitCode"] == 0, hello
        assert hello["stdout"] in (f"{uid_base}\n", f"{uid_base + 1}\n")
        assert (await attack)["timedOut"] is True
    assert await wait_until_gone(lambda: processes_with(marker)) == []
