"""`codeconnect serve` as a real process with the sandbox on: the production event loop (uvloop when installed)
spawns sandboxes too."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codeconnect.config import Settings
from codeconnect.execution.sandbox import Sandbox
from codeconnect.execution.toolchains import Toolchains
from tests.execution.conftest import require_sandbox

pytestmark = pytest.mark.sandbox

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sandbox_serve(tmp_path: Path) -> Iterator[str]:
    require_sandbox()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODECONNECT_")}
    env.update(
        CODECONNECT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        CODECONNECT_EXECUTION="sandbox",
        HOST="127.0.0.1",
        PORT=str(port),
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "codeconnect"), "serve"], env=env, stdout=out, stderr=out, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        # The self-test compiles and runs every language (javac and the JVM included) before the server answers:
        # on a loaded 2-core machine that has taken over 30 s.
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_runs_code_in_the_sandbox(sandbox_serve: str) -> None:
    r = httpx.post(
        f"{sandbox_serve}/v1/execute",
        json={"language": "cpp", "code": '#include <cstdio>\nint main() { std::puts("served"); }\n'},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "served\n"
    assert r.json()["exitCode"] == 0


def test_sandbox_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")
    require_sandbox()
    settings = Settings(execution="sandbox")

    async def main() -> bytes:
        sandbox = Sandbox(settings)
        try:
            outcome = await sandbox.run(Toolchains(settings).plan("python", "print(input())"), b"uv\n")
        finally:
            await sandbox.close()  # removes the cgroup of its runs
        assert outcome.exit_code == 0, outcome
        return outcome.stdout

    assert uvloop.run(main()) == b"uv\n"
