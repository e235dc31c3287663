"""Attacks on the host through the sandbox: memory a run piles up, zombies a PID 1 server collects.

* Memory: every writable or memory-backed mount of the sandbox has a size, and a run's *total* memory (all its
  processes, its tmpfs pages, memory no address space shows) is held to ``exec_run_memory_mb`` by its cgroup (or,
  without cgroups, by a process limit lowered so that processes x address space fits the budget).
* Zombies: with the server as PID 1 and no init (a container), every orphan of a run is reparented to it; the
  server must reap them or the process table (and the sandbox uid's process budget) fills up.

Each test states its pass threshold. They need bubblewrap (skipped with the reason without it; a failure under
CI=true); the ones that find a run's processes by uid or start a PID namespace need root.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, ServerFactory, migrated_sqlite, skip_or_fail
from tests.execution.conftest import SANDBOX_LIMITS, processes_of_uid, require_sandbox, run

pytestmark = pytest.mark.sandbox

AS_ROOT = os.geteuid() == 0
RUN_MB = 512  # the per-run budget the memory attacks are held to
SHM_MB = 16  # the size of the run's /dev/shm in these tests
SLACK_MB = 50  # what measuring from outside may add (page tables, the moment between a sample and a kill)


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """SQLite only: these attacks are on the sandbox, not on storage."""
    yield await migrated_sqlite(tmp_path / "codeconnect.db")


@pytest.fixture(params=["auto", "off"], ids=["cgroup", "rlimits"])
async def bounded(request: pytest.FixtureRequest, server_factory: ServerFactory) -> LiveServer:
    """One slot, a uid of its own (so this test's processes are told apart from any other run on the machine);
    with the cgroup this machine offers, and with the fallback that has none."""
    require_sandbox()
    return await server_factory(
        **{**SANDBOX_LIMITS, "exec_wall_seconds": 10.0},  # touching memory is slow on some virtual machines
        exec_run_memory_mb=RUN_MB,
        exec_shm_mb=SHM_MB,
        exec_cgroup=request.param,
        exec_concurrency=1,
        exec_slot_uid_base=300_000 + secrets.randbelow(100_000),
        # The attacks are Python programs. The other languages' start-up self-tests cannot run in one process of
        # this budget's address space (rlimits): they would only time out, for most of a minute per server.
        exec_languages="python",
    )


@pytest.fixture
async def client(bounded: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=bounded.base_url, timeout=60) as c:
        yield c


def require_root(why: str) -> None:
    if not AS_ROOT:
        skip_or_fail(f"needs root: {why}")


# --- Mounts ------------------------------------------------------------------------------------------------


async def test_dev_shm_is_size_limited(client: httpx.AsyncClient) -> None:
    """Threshold: writing 200 MB to /dev/shm (as 8 MB files, each under the file-size limit) stops with ENOSPC
    by ``exec_shm_mb`` (16 MB here)."""
    code = (
        "import errno\nwritten = 0\n"
        "try:\n"
        "    for i in range(25):\n"
        "        with open(f'/dev/shm/part{i}', 'wb') as f:\n"
        "            f.write(b'0' * (8 << 20))\n"
        "        written += 8\n"
        "    print('WROTE', written)\n"
        "except OSError as e:\n"
        "    print('refused', errno.errorcode[e.errno], written)\n"
    )
    body = await run(client, "python", code)
    verdict, *rest = body["stdout"].split()
    assert verdict == "refused", f"/dev/shm took {rest[-1] if rest else '?'} MB: {body}"
    assert rest[0] == "ENOSPC", body
    assert int(rest[1]) <= SHM_MB, body


MOUNT_PROBE = r"""
import json, os
mounts = []
for line in open('/proc/self/mountinfo'):
    left, right = line.split(' - ')
    fields, (fstype, source, super_opts) = left.split(), right.split()
    mounts.append({'at': fields[4], 'opts': fields[5].split(','), 'fstype': fstype, 'super': super_opts.split(',')})
created = {}
for place in ('/', '/dev', '/usr/local', '/etc', '/work', '/dev/shm'):
    try:
        open(os.path.join(place, 'probe'), 'wb').close()
        created[place] = 'created'
    except OSError as e:
        created[place] = type(e).__name__
print(json.dumps({'mounts': mounts, 'created': created}))
"""


async def test_every_writable_memory_mount_has_a_size(client: httpx.AsyncClient, bounded: LiveServer) -> None:
    """Threshold: inside the sandbox no memory-backed mount (tmpfs, ramfs) is writable without a size, none is
    larger than the work directory (64 MB); a new file in /, /dev, /usr/local or /etc is refused."""
    body = await run(client, "python", MOUNT_PROBE)
    seen = json.loads(body["stdout"])
    largest = bounded.settings.exec_tmpfs_mb * 1024
    for mount in seen["mounts"]:
        if mount["fstype"] not in ("tmpfs", "ramfs") or "rw" not in mount["opts"]:
            continue
        sizes = [int(o.removeprefix("size=").removesuffix("k")) for o in mount["super"] if o.startswith("size=")]
        assert sizes, f"{mount['at']} is writable memory without a size: {mount}"
        assert sizes[0] <= largest, mount
    created = seen["created"]
    assert created["/work"] == created["/dev/shm"] == "created", created
    assert all(created[p] != "created" for p in ("/", "/dev", "/usr/local", "/etc")), created


# --- Memory of the whole run --------------------------------------------------------------------------------


def _run_memory_kb(uid: int) -> int:
    """Anonymous and shared-memory pages of every process of ``uid``, proportionally (PSS: pages a forked child
    shares with its parent count once)."""
    total = 0
    for pid in processes_of_uid(uid):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            continue  # gone (or a kernel thread) between the scan and the read
    return total


async def _peak_while(task: asyncio.Task[dict[str, object]], uid: int) -> int:
    peak = 0
    while not task.done():
        peak = max(peak, _run_memory_kb(uid))
        await asyncio.sleep(0.01)
    return peak


async def test_many_processes_cannot_add_up_past_the_run_budget(
    client: httpx.AsyncClient, bounded: LiveServer
) -> None:
    """Threshold: 8 processes touching 400 MB each (each within its own 512 MB address space): allocations fail or
    the run is killed, and the run's resident memory, sampled every 10 ms from the host, never exceeds the
    per-run budget (512 MB here) + 50 MB."""
    require_root("the run's processes are found by the uid of its slot")
    code = (
        "import os, time\nkids = []\n"
        "for i in range(8):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = b'\\x01' * (400 << 20)\n"
        "        print('touched', i, flush=True)\n"
        "        time.sleep(1)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "for pid in kids:\n"
        "    os.waitpid(pid, 0)\n"
        "print('done', flush=True)\n"
    )
    uid = bounded.settings.exec_slot_uid_base
    assert uid is not None
    task = asyncio.create_task(run(client, "python", code))
    peak_mb = await _peak_while(task, uid) // 1024
    body = task.result()
    assert peak_mb <= RUN_MB + SLACK_MB, f"the run held {peak_mb} MB: {body}"
    assert str(body["stdout"]).count("touched") < 8, body
    assert (await client.get("/healthz", timeout=10)).status_code == 200


HOLD_OUTSIDE_ADDRESS_SPACE = {
    # memfd pages written with write(2) are never mapped: no address-space limit sees them.
    "memfd": (
        "import os\nfds = []\nheld = 0\n"
        "for i in range(100):\n"
        "    try:\n"
        "        fd = os.memfd_create('hold')\n"
        "        os.write(fd, b'\\x01' * (8 << 20))\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno, flush=True)\n"
        "        break\n"
        "    fds.append(fd)\n"
        "    held += 8\n"
        "    print(held, flush=True)\n"
    ),
    # SysV segments outlive their mapping: attach, touch, detach, repeat.
    "sysv-shm": (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.shmat.restype = ctypes.c_void_p\n"
        "libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]\n"
        "libc.shmdt.argtypes = [ctypes.c_void_p]\nheld = 0\n"
        "for i in range(100):\n"
        "    sid = libc.shmget(0, 8 << 20, 0o1600)\n"
        "    if sid < 0:\n"
        "        print('refused', ctypes.get_errno(), flush=True)\n"
        "        break\n"
        "    addr = libc.shmat(sid, None, 0)\n"
        "    ctypes.memset(addr, 1, 8 << 20)\n"
        "    libc.shmdt(addr)\n"
        "    held += 8\n"
        "    print(held, flush=True)\n"
    ),
}


@pytest.mark.parametrize("how", list(HOLD_OUTSIDE_ADDRESS_SPACE))
async def test_memory_outside_the_address_space_is_bounded(client: httpx.AsyncClient, how: str) -> None:
    """Threshold: one process holding 8 MB pieces of memory it never keeps mapped (800 MB asked) is stopped
    (killed, or refused) before it holds more than the per-run budget (512 MB here)."""
    body = await run(client, "python", HOLD_OUTSIDE_ADDRESS_SPACE[how])
    held = [int(line) for line in str(body["stdout"]).split("\n") if line.isdigit()]
    most = max(held, default=0)
    assert most <= RUN_MB, f"{how}: the run held {most} MB: {body}"
    assert (await client.get("/healthz", timeout=10)).status_code == 200


# --- PID 1 ---------------------------------------------------------------------------------------------------

BIN = Path(sys.executable).parent


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task.name}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _descendants(pid: int) -> list[int]:
    out, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += _children(child)
    return out


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def zombies_under(pid: int) -> list[int]:
    """Zombie (Z) processes among the descendants of ``pid`` (host pids)."""
    return [p for p in _descendants(pid) if _state(p) == "Z"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pid1Server:
    def __init__(self, proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.proc, self.base_url, self.log = proc, base_url, log

    @property
    def init(self) -> int:
        """Host pid of the namespace's PID 1 (the child `unshare` forked)."""
        children = _children(self.proc.pid)
        assert children, self.log.read_text()
        return children[0]


@pytest.fixture
def pid1_server(tmp_path: Path) -> Iterator[Pid1Server]:
    """`codeconnect serve` as PID 1 of a PID namespace of its own, as in a container started without an init."""
    require_sandbox()
    require_root("a new PID namespace (unshare -p)")
    if shutil.which("unshare") is None:
        skip_or_fail("unshare (util-linux) is not installed")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODECONNECT_")}
    env.update(
        CODECONNECT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'pid1.db'}",
        CODECONNECT_EXECUTION="sandbox",
        CODECONNECT_EXEC_CONCURRENCY="2",
        CODECONNECT_EXEC_QUEUE_SIZE="16",
        CODECONNECT_EXEC_RATE_PER_MINUTE="1000",
        CODECONNECT_EXEC_LANGUAGES="python",  # the orphans are made by Python programs; no other self-test needed
        HOST="127.0.0.1",
        PORT=str(port),
    )
    log = tmp_path / "pid1.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child", str(BIN / "codeconnect"), "serve"],
            env=env,
            stdout=out,
            stderr=out,
            cwd=tmp_path,
        )
    server = Pid1Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            for init in _children(proc.pid):  # a graceful stop first: the server removes its cgroups
                os.kill(init, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()  # --kill-child: the namespace's PID 1 gets SIGKILL, and with it every process inside
                proc.wait(15)


async def test_pid1_server_reaps_every_run(pid1_server: Pid1Server) -> None:
    """Threshold: 80 runs against a server that is PID 1 of its namespace all succeed, and afterwards at most 1
    zombie is left among the server's descendants; SIGTERM to PID 1 then stops the server cleanly within 15 s."""
    code = (
        "import os\n"
        "if os.fork() == 0:\n"  # a child the program does not wait for
        "    os._exit(0)\n"
        "print('ok')\n"
    )
    gate = asyncio.Semaphore(2)
    async with httpx.AsyncClient(base_url=pid1_server.base_url, timeout=60) as client:

        async def one(i: int) -> str:
            async with gate:
                r = await client.post("/v1/execute", json={"language": "python", "code": code})
            body = r.json()
            ok = r.status_code == 200 and body.get("exitCode") == 0 and body.get("stdout") == "ok\n"
            return "" if ok else f"run {i}: {r.status_code} {str(body)[:300]}"

        failures = [f for f in await asyncio.gather(*(one(i) for i in range(80))) if f]
    init = pid1_server.init
    deadline = time.monotonic() + 5
    zombies = zombies_under(init)
    while len(zombies) > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        zombies = zombies_under(init)
    assert not failures, f"{len(failures)} of 80 runs failed, first: {failures[0]}; zombies: {len(zombies)}"
    assert len(zombies) <= 1, f"{len(zombies)} zombies under the PID 1 server after 80 runs"
    os.kill(init, signal.SIGTERM)
    # uvicorn re-raises the signal it stopped for once it is done, so a clean stop may also read 128 + SIGTERM.
    status = await asyncio.to_thread(pid1_server.proc.wait, 15)
    assert status in (0, 128 + signal.SIGTERM), pid1_server.log.read_text()[-2000:]
    assert "Application shutdown complete" in pid1_server.log.read_text()
