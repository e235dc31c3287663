"""Pieces the live-endpoint benchmarks share: a server in a subprocess, REST provisioning, honest Yjs clients
whose edits carry their send time, latency percentiles, and the attacker subprocess.

Used by ``fuzz_timing.py`` and ``soak.py``; not a benchmark itself. Everything listens on and connects to
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the message encoders and the attacker live with the adversarial tests

from tests.adversarial.fuzzing import read_var_uint, sync_step1, sync_step2, sync_update  # noqa: E402

# Settings that get the server's defences out of an attacker's way (each defence has tests of its own):
# the cooldown that refuses a participant's reconnects after a rule-breaking close would turn most of the fuzzer's
# connections away at the door; the per-connection message rate would slow its long-lived connections (and it is
# also what stops a ping flood). Honest clients stay far below both.
SHORT_COOLDOWN = {
    "CODECONNECT_WS_REFUSAL_COOLDOWN_MAX_SECONDS": "0.05",
    # ...and the rate of new connections per participant, which would do the same to its reconnect loop.
    "CODECONNECT_WS_CONNECTS_PER_MINUTE": "1000000",
    "CODECONNECT_WS_CONNECT_BURST": "1000000",
}
NO_RATE_LIMIT = {"CODECONNECT_WS_RATE_PER_SECOND": "1000000", "CODECONNECT_WS_RATE_BURST": "1000000"}
# A benchmark provisions its sessions and participants from one address, faster than any person: the REST rate
# limits (30 creations and 120 joins a minute per address) would refuse most of them. Off unless the environment
# sets them.
NO_REST_LIMITS = {"CODECONNECT_RATE_SESSIONS_PER_MINUTE": "0", "CODECONNECT_RATE_JOINS_PER_MINUTE": "0"}
DEFENCES = {"default": {}, "cooldown": SHORT_COOLDOWN, "none": {**SHORT_COOLDOWN, **NO_RATE_LIMIT}}
_STAMP = re.compile(rb"\[t(\d{9,20})\]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """``codeconnect serve`` on a free port of 127.0.0.1 with a fresh SQLite database; its log in a file."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    workdir: tempfile.TemporaryDirectory[str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, env: dict[str, str] | None = None) -> ServerProcess:
        workdir = tempfile.TemporaryDirectory(prefix="ccl-bench-")
        port = free_port()
        log_path = Path(workdir.name) / "server.log"
        full_env = {
            **NO_REST_LIMITS,
            **os.environ,
            "CODECONNECT_DATABASE_URL": f"sqlite+aiosqlite:///{workdir.name}/bench.db",
            "CODECONNECT_LOG_LEVEL": "warning",
            **(env or {}),
        }
        with open(log_path, "wb") as log:
            # The same interpreter as this script: `.venv/bin/python -m codeconnect` is `.venv/bin/codeconnect`.
            process = subprocess.Popen(
                [sys.executable, "-m", "codeconnect", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir.name,
            )
        server = cls(process, port, log_path, workdir)
        deadline = time.monotonic() + 120  # start-up on a busy 2-core machine can take tens of seconds
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    tail = server.log_tail()
                    server.stop()
                    raise RuntimeError(f"the server exited with {process.returncode}: {tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{server.base_url}/healthz")).status_code == 200:
                        return server
                await asyncio.sleep(0.1)
        tail = server.log_tail()
        server.stop()
        raise RuntimeError(f"the server did not answer /healthz in 120 s: {tail}")

    def log_tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def tracebacks(self) -> int:
        return self.log_path.read_text(errors="replace").count("Traceback")

    def rss_mib(self) -> float:
        return rss_mib(self.process.pid)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        return cpu_seconds(self.process.pid)

    def sockets(self) -> int:
        """Open sockets of the server process (listening one included): connections it still holds."""
        fd_dir = Path(f"/proc/{self.process.pid}/fd")
        count = 0
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                count += os.readlink(fd).startswith("socket:")
        return count

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.workdir.cleanup()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process ``pid`` has used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def new_session(http: httpx.AsyncClient, title: str) -> str:
    r = await http.post("/v1/sessions", json={"title": title, "language": "python"})
    r.raise_for_status()
    return str(r.json()["id"])


async def new_token(http: httpx.AsyncClient, session_id: str, name: str, role: str = "editor") -> str:
    r = await http.post(f"/v1/sessions/{session_id}/participants", json={"name": name, "role": role})
    r.raise_for_status()
    return str(r.json()["token"])


def percentiles(samples: list[float], qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[float]:
    if not samples:
        return [float("nan")] * len(qs)
    ordered = sorted(samples)
    return [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in qs]


@dataclass
class Latencies:
    """Fan-out latency of stamped edits: per edit, until the last of its ``expected`` receivers applied it."""

    expected: int
    pending: dict[int, tuple[int, float]] = field(default_factory=dict)  # stamp -> (receivers so far, max ms)
    done: list[float] = field(default_factory=list)
    deliveries: int = 0

    def received(self, stamp: int, now_ns: int) -> None:
        self.deliveries += 1
        count, worst = self.pending.get(stamp, (0, 0.0))
        count, worst = count + 1, max(worst, (now_ns - stamp) / 1e6)
        if count >= self.expected:
            self.pending.pop(stamp, None)
            self.done.append(worst)
        else:
            self.pending[stamp] = (count, worst)

    def take(self) -> list[float]:
        """The fan-out latencies completed since the last call (ms)."""
        done, self.done = self.done, []
        return done


class HonestClient:
    """A y-websocket client on a pycrdt Doc, as a stock provider behaves: syncs, then sends each local edit as an
    update and applies what the server relays. Edits made with :meth:`type` carry their send time
    (CLOCK_MONOTONIC, shared by every process of the machine), which receivers report to ``latencies``."""

    def __init__(self, url: str, latencies: Latencies | None = None) -> None:
        self.url = url
        self.doc: Doc[Any] = Doc()
        self.code = self.doc.get("code", type=Text)
        self.latencies = latencies
        self.ws: ClientConnection | None = None
        self.synced = asyncio.Event()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._cursor = 0

    async def connect(self, timeout: float = 30) -> HonestClient:
        self.ws = await connect(self.url, max_size=None, compression=None, open_timeout=timeout)
        self._task = asyncio.create_task(self._read())
        await self.ws.send(sync_step1(self.doc.get_state()))
        await asyncio.wait_for(self.synced.wait(), timeout)
        return self

    async def type(self, text: str = "") -> None:
        """Insert ``text`` and a stamp at this client's cursor, as one update message."""
        if self.ws is None or self.closed.is_set():
            return
        length = len(self.code)
        if self._cursor > length:
            self._cursor = length
        before = self.doc.get_state()
        piece = f"{text}[t{time.monotonic_ns()}]"
        self.code.insert(self._cursor, piece)
        self._cursor += len(piece)
        update = self.doc.get_update(before)
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(sync_update(update))

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for data in self.ws:
                if isinstance(data, bytes):
                    self._message(data)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    def _message(self, data: bytes) -> None:
        if len(data) < 3 or data[0] != 0:
            return  # awareness and the rest: an honest editor here does not show presence
        try:
            size, pos = read_var_uint(data, 2)
        except ValueError:
            self.errors += 1
            return
        payload = data[pos : pos + size]
        if data[1] == 0:  # the server's step 1: answer with what it lacks
            assert self.ws is not None
            asyncio.get_running_loop().create_task(self._send(sync_step2(self.doc.get_update(payload))))
            return
        self.doc.apply_update(payload)
        if data[1] == 1:
            self.synced.set()
        elif self.latencies is not None:
            now = time.monotonic_ns()
            for match in _STAMP.finditer(payload):
                self.latencies.received(int(match.group(1)), now)

    async def _send(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            assert self.ws is not None
            await self.ws.send(data)

    @property
    def text(self) -> str:
        return str(self.code)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def converged(rooms: list[list[HonestClient]], timeout: float = 30) -> int:
    """Wait until every room's clients hold the same text; the number of rooms that did not in ``timeout``."""
    deadline = time.monotonic() + timeout
    pending = list(rooms)
    while pending and time.monotonic() < deadline:
        pending = [room for room in pending if len({c.text for c in room}) > 1]
        if pending:
            await asyncio.sleep(0.1)
    return len(pending)


class AttackerProcess:
    """``python -m tests.adversarial.attacker`` against a server, its progress lines read as they come."""

    def __init__(self, ws_url: str, targets: list[dict[str, str]], seconds: float, args: list[str]) -> None:
        self._targets = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
        json.dump(targets, self._targets)
        self._targets.close()
        self.command = [
            sys.executable, "-m", "tests.adversarial.attacker", "--ws", ws_url, "--targets", self._targets.name,
            "--seconds", str(seconds), *args,
        ]
        self.process: asyncio.subprocess.Process | None = None
        self.progress: dict[str, Any] = {}
        self.result: dict[str, Any] | None = None
        self.started = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, on_line: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=None
        )
        self._reader = asyncio.create_task(self._read(on_line))
        await asyncio.wait_for(self.started.wait(), 60)

    async def _read(self, on_line: Callable[[dict[str, Any]], None] | None) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                if "started" in line:
                    self.started.set()
                elif "progress" in line:
                    self.progress = line["progress"]
                elif "result" in line:
                    self.result = line["result"]
                if on_line is not None:
                    on_line(line)
        self.started.set()

    async def wait(self) -> dict[str, Any] | None:
        if self.process is not None:
            await self.process.wait()
        if self._reader is not None:
            await self._reader
        os.unlink(self._targets.name)
        return self.result

    def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
