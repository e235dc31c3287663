"""Fixtures of the execution tests: a server with the sandbox on (tight limits, so attacks end quickly)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeconnect.config import Settings
from codeconnect.execution.toolchains import Toolchains
from codeconnect.languages import LanguageName
from tests.conftest import LiveServer, ServerFactory, migrated_sqlite, skip_or_fail

# Small enough that every attack ends within a few seconds, large enough for javac and g++ on a loaded box.
SANDBOX_LIMITS: dict[str, Any] = {
    "execution": "sandbox",
    "exec_cpu_seconds": 2,
    "exec_wall_seconds": 4.0,
    "exec_max_output_bytes": 64 * 1024,
    "exec_rate_per_minute": 1000,
    # A uid of this test process's own (as root): the kernel counts processes per uid (RLIMIT_NPROC), so a fork
    # bomb under a uid shared with the other worker, or with another run of the suite on the same host, would
    # leave their sandboxes unable to start (bwrap: "Creating new namespace failed: Resource temporarily
    # unavailable").
    "exec_uid": 400_000 + secrets.randbelow(100_000),
}


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """SQLite only: these tests are about the sandbox; the session reads are plain SQLAlchemy."""
    yield await migrated_sqlite(tmp_path / "codeconnect.db")


def require_sandbox() -> None:
    """Skip when bubblewrap is not installed (with the reason); under CI=true that is a failure."""
    missing = [tool for tool in ("bwrap", "prlimit") if shutil.which(tool) is None]
    if not missing:
        return
    skip_or_fail(f"{', '.join(missing)} not installed (Debian: bubblewrap, util-linux)")


def require_language(language: LanguageName) -> None:
    """Skip when this machine lacks a language's toolchain (with the tools named); a failure under CI=true."""
    missing = Toolchains(Settings()).availability(language).missing
    if not missing:
        return
    skip_or_fail(f"{language} toolchain missing here: {', '.join(missing)}")


@pytest.fixture
async def sandbox_server(server_factory: ServerFactory) -> LiveServer:
    require_sandbox()
    return await server_factory(**SANDBOX_LIMITS)


@pytest.fixture
async def sandbox_client(sandbox_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_server.base_url, timeout=60) as c:
        yield c


async def run(client: httpx.AsyncClient, language: str, code: str, stdin: str = "") -> dict[str, Any]:
    """POST /v1/execute and return the 200 body (any other status fails the test with the body)."""
    response = await client.post("/v1/execute", json={"language": language, "code": code, "stdin": stdin})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def processes_with(marker: str) -> list[int]:
    """Pids whose command line contains ``marker``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def processes_of_uid(uid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            found.append(int(entry.name))
                        break
        except OSError:
            continue
    return found


async def wait_until_gone(probe: Any, seconds: float = 5.0) -> list[int]:
    """Poll ``probe()`` until it returns nothing (pid namespace teardown is asynchronous); the last result."""
    deadline = time.monotonic() + seconds
    left: list[int] = probe()
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        left = probe()
    return left
