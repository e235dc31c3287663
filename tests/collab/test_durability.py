"""kill -9 during a stream of edits: what the server received a commit window before is on disk after a
restart, and a reconnecting client brings back the rest from its own state, without duplicates."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.collab.yclient import YClient, collab_url, join, new_session

WINDOW_MS = 25
# The promise is about updates *received* a commit window before the kill. The observer below sees an
# update after the server received it, so its timestamps are conservative; this slack covers the commit
# itself (the write and, on PostgreSQL, its fsync), not a longer window.
COMMIT_SLACK_S = 0.1
BIN = Path(sys.executable).with_name("codeconnect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Process:
    def __init__(self, database_url: str, port: int, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODECONNECT_")}
        env.update(
            CODECONNECT_DATABASE_URL=database_url,
            PORT=str(port),
            HOST="127.0.0.1",
            CODECONNECT_COMMIT_WINDOW_MS=str(WINDOW_MS),
            CODECONNECT_LOG_LEVEL="warning",
        )
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen([str(BIN), "serve"], env=env, stdout=self._log, stderr=self._log)

    async def ready(self) -> None:
        # Start-up (imports, migrations) can take tens of seconds on a loaded 2-core machine.
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(timeout=30, base_url=self.base_url) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        p.kill()


@pytest.fixture
def migrated_sqlite(sqlite_url: str) -> str:
    return sqlite_url  # `codeconnect serve` migrates on start


@pytest.mark.slow
async def test_kill_9_loses_nothing_older_than_a_commit_window(
    database_url: str, processes: list[Process], tmp_path: Path
) -> None:
    port = _free_port()
    first = Process(database_url, port, tmp_path / "server.log")
    processes.append(first)
    await first.ready()
    async with httpx.AsyncClient(timeout=30, base_url=first.base_url) as client:
        s = await new_session(client, code="")
        writer_joined = await join(client, s["id"], "Writer")
        writer_token = writer_joined["token"]
        observer_token = (await join(client, s["id"], "Observer"))["token"]
    writer = await YClient(collab_url(first.ws_url, s["id"], writer_token)).connect()
    observer = await YClient(collab_url(first.ws_url, s["id"], observer_token)).connect()
    seen_at: dict[str, float] = {}

    def note() -> None:
        now = time.monotonic()
        for line in observer.text.splitlines():
            seen_at.setdefault(line, now)

    def settled(now: float) -> int:
        """Lines the observer has held for longer than a commit window: the ones that must survive a kill now."""
        return sum(1 for seen in seen_at.values() if seen < now - WINDOW_MS / 1000 - COMMIT_SLACK_S)

    lines: list[str] = []
    # Edits go on until more than 100 of them are past their commit window, however long a busy machine takes
    # (bounded, to fail rather than hang), so the kill lands in a running stream with the newest still in flight.
    deadline = time.monotonic() + 60
    i = 0
    while settled(time.monotonic()) <= 100:
        assert time.monotonic() < deadline, f"only {settled(time.monotonic())} edits settled within 60 s"
        line = f"edit {i}"
        writer.code += line + "\n"
        lines.append(line)
        i += 1
        await asyncio.sleep(0.004)
        note()  # polled: a line's time is when the observer is known to hold it (never earlier)
    killed_at = time.monotonic()
    first.kill()
    await writer.closed.wait()
    await observer.close()

    must_survive = [ln for ln in lines if seen_at.get(ln, killed_at) < killed_at - WINDOW_MS / 1000 - COMMIT_SLACK_S]
    assert len(must_survive) > 100  # the stream really ran before the kill

    second = Process(database_url, port, tmp_path / "server.log")
    processes.append(second)
    await second.ready()
    # REST first, before anyone reconnects: it must read through the log, not a mirror the kill left behind.
    async with httpx.AsyncClient(timeout=30, base_url=second.base_url) as client:
        rest_lines = (await client.get(f"/v1/sessions/{s['id']}")).json()["code"].splitlines()
    assert not [ln for ln in must_survive if ln not in rest_lines]
    # And in the history, as the writer's.
    async with httpx.AsyncClient(timeout=30, base_url=second.base_url) as client:
        owner = {"X-Owner-Key": s["ownerKey"]}
        total = (await client.get(f"/v1/sessions/{s['id']}/history", headers=owner)).json()["total"]
        at = f"/v1/sessions/{s['id']}/history/at"
        last = (await client.get(at, params={"index": total - 1}, headers=owner)).json()
    assert last["code"] == "\n".join(rest_lines) + "\n"
    assert not [ln for ln in must_survive if ln not in last["code"].splitlines()]
    assert {r["author"] for r in last["authors"]} == {writer_joined["id"]}
    fresh = await YClient(collab_url(second.ws_url, s["id"], observer_token)).connect()
    stored = fresh.text.splitlines()
    missing = [ln for ln in must_survive if ln not in stored]
    assert not missing, f"{len(missing)} committed edits lost, e.g. {missing[:3]}"
    assert len(stored) == len(set(stored))

    # The writer comes back with its own copy: the server gets what it never committed, once.
    again = await YClient(collab_url(second.ws_url, s["id"], writer_token), doc=writer.doc).connect()
    await fresh.wait_for(lambda: len(fresh.text.splitlines()) == len(lines))
    assert fresh.text.splitlines() == lines
    assert again.text == fresh.text
    async with httpx.AsyncClient(timeout=30, base_url=second.base_url) as client:
        r = await client.get(f"/v1/sessions/{s['id']}")
        assert r.json()["code"] == fresh.text
    await again.close()
    await fresh.close()


@pytest.mark.slow
async def test_sigterm_flushes_every_room(migrated_sqlite: str, processes: list[Process], tmp_path: Path) -> None:
    port = _free_port()
    first = Process(migrated_sqlite, port, tmp_path / "server.log")
    processes.append(first)
    await first.ready()
    async with httpx.AsyncClient(timeout=30, base_url=first.base_url) as client:
        s = await new_session(client, code="")
        token = (await join(client, s["id"], "Writer"))["token"]
        observer_token = (await join(client, s["id"], "Observer"))["token"]
    writer = await YClient(collab_url(first.ws_url, s["id"], token)).connect()
    observer = await YClient(collab_url(first.ws_url, s["id"], observer_token)).connect()
    for i in range(50):
        writer.code += f"line {i}\n"
    # Relayed to another client, so received by the server; not necessarily committed yet.
    await observer.wait_for(lambda: observer.text == writer.text)
    await observer.close()
    first.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal: the exit status is "killed by SIGTERM".
    assert await asyncio.to_thread(first.proc.wait, 20) in (0, -signal.SIGTERM)
    await writer.close()
    second = Process(migrated_sqlite, port, tmp_path / "server.log")
    processes.append(second)
    await second.ready()
    async with httpx.AsyncClient(timeout=30, base_url=second.base_url) as client:
        # No room is loaded: this read comes from the mirror columns, written at shutdown.
        r = await client.get(f"/v1/sessions/{s['id']}")
        assert r.status_code == 200, r.text
        assert r.json()["code"] == writer.text
    fresh = await YClient(collab_url(second.ws_url, s["id"], token)).connect()
    assert fresh.text == writer.text
    await fresh.close()
