"""What bounds a run's total memory and processes: the choice of mechanism, the run's cgroup, the fallback, and
admission against the memory of all runs together."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from pathlib import Path

import pytest

from codeconnect.config import Settings
from codeconnect.execution import sandbox as sandbox_module
from codeconnect.execution.cgroups import (
    SANDBOX_PROCESSES,
    Budget,
    cgroup_dirs,
    fallback_processes,
    open_cgroups,
    read_memberships,
    read_mounts,
)
from codeconnect.execution.pool import admitted_runs, total_memory_mb
from codeconnect.execution.sandbox import MiB, Sandbox, SandboxUnavailable
from codeconnect.execution.service import ExecutionService, check_sandbox
from codeconnect.execution.toolchains import Plan, Toolchains
from tests.conftest import skip_or_fail
from tests.execution.conftest import processes_of_uid, require_sandbox

AS_ROOT = os.geteuid() == 0
HYBRID_MOUNTINFO = (
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/cpu\\040x rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
)


def test_mounts_and_memberships_are_read() -> None:
    mounts = read_mounts(HYBRID_MOUNTINFO)
    assert [(str(m.point), m.fstype) for m in mounts] == [
        ("/sys/fs/cgroup/memory", "cgroup"),
        ("/sys/fs/cgroup/pids", "cgroup"),
        ("/sys/fs/cgroup/cpu x", "cgroup"),
        ("/sys/fs/cgroup/unified", "cgroup2"),
    ]
    assert mounts[2].options >= {"cpu", "cpuacct"}
    memberships = read_memberships("8:pids:/\n5:cpu,cpuacct:/a\n4:memory:/svc/x\n0::/\n")
    assert memberships == {"pids": "/", "cpu": "/a", "cpuacct": "/a", "memory": "/svc/x", "": "/"}


def _fake_proc(tmp_path: Path, mountinfo: str, self_cgroup: str) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mountinfo").write_text(mountinfo)
    (proc / "cgroup").write_text(self_cgroup)
    return proc


def test_delegated_v2_is_chosen_and_gets_the_limits(tmp_path: Path) -> None:
    own = tmp_path / "cg2" / "svc"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text("memory pids\n")
    proc = _fake_proc(tmp_path, f"41 31 0:38 / {tmp_path / 'cg2'} rw - cgroup2 cgroup2 rw\n", "0::/svc\n")
    tree, why = open_cgroups("auto", Budget(2048 * MiB, 128), proc)
    assert tree is not None, why
    assert tree.mechanism == "cgroup2"
    (parent,) = tree.parents
    assert parent.parent == own and parent.name.startswith("codeconnect-")
    assert (parent / "memory.max").read_text() == str(2048 * MiB)
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids"
    run = tree.new_run(Budget(512 * MiB, 64))
    assert run.dirs == (parent / "run-1",)
    assert (parent / "run-1" / "memory.max").read_text() == str(512 * MiB)
    assert (parent / "run-1" / "memory.oom.group").read_text() == "1"
    assert run.procs_files == (parent / "run-1" / "cgroup.procs",)


def test_v2_without_controllers_falls_back_to_v1(tmp_path: Path) -> None:
    # This machine's layout: a v2 hierarchy with no controllers beside writable v1 memory and pids.
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("\n")
    for controller in ("memory", "pids"):
        (tmp_path / controller / "svc").mkdir(parents=True)
    mountinfo = (
        f"35 31 0:32 / {tmp_path / 'memory'} rw - cgroup cgroup rw,memory\n"
        f"39 31 0:36 / {tmp_path / 'pids'} rw - cgroup cgroup rw,pids\n"
        f"41 31 0:38 / {tmp_path / 'unified'} rw - cgroup2 cgroup2 rw\n"
    )
    proc = _fake_proc(tmp_path, mountinfo, "8:pids:/svc\n4:memory:/svc\n0::/\n")
    tree, why = open_cgroups("auto", Budget(1024 * MiB, 64), proc)
    assert tree is not None, why
    assert tree.mechanism == "cgroup1" and tree.controllers == ("memory", "pids")
    assert [p.parent for p in tree.parents] == [tmp_path / "memory" / "svc", tmp_path / "pids" / "svc"]
    none, why = open_cgroups("v2", Budget(1024 * MiB, 64), proc)
    assert none is None and "no memory and no pids controller" in why
    assert open_cgroups("off", Budget(1024 * MiB, 64), proc)[0] is None


def test_an_explicit_cgroup_version_that_is_missing_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "open_cgroups", lambda mode, total: (None, "not delegated"))
    with pytest.raises(SandboxUnavailable, match="CODECONNECT_EXEC_CGROUP=v2 but not delegated"):
        Sandbox(Settings(execution="sandbox", exec_cgroup="v2")).bounds()
    assert Sandbox(Settings(execution="sandbox", exec_cgroup="auto")).bounds().startswith("rlimits")


def test_admission_fits_every_run_budget_into_the_total() -> None:
    settings = Settings(exec_concurrency=4, exec_run_memory_mb=256, exec_total_memory_mb=512)
    assert admitted_runs(settings) == 2
    assert ExecutionService(settings).pool.concurrency == 2
    assert total_memory_mb(Settings(exec_concurrency=3, exec_run_memory_mb=256)) == 768
    assert admitted_runs(Settings(exec_concurrency=3, exec_run_memory_mb=256)) == 3
    # A total below one run's budget still admits one run; the cgroup of all runs holds the total then.
    assert admitted_runs(Settings(exec_concurrency=2, exec_run_memory_mb=1024, exec_total_memory_mb=512)) == 1


def test_fallback_processes_times_address_space_fit_the_budget() -> None:
    for budget, step, tmpfs in [(1024, 512, 80), (1024, 64, 80), (8192, 1024, 80), (256, 512, 80)]:
        n = fallback_processes(budget, step, tmpfs, 64)
        assert n >= 1
        assert n == 1 or n * step + tmpfs <= budget
    assert fallback_processes(100_000, 64, 80, 64) == 64  # never above the process limit


# --- In the real sandbox ------------------------------------------------------------------------------------

SLEEPER = "import time\nprint('ready', flush=True)\ntime.sleep(1.5)\n"


def _python(code: str, settings: Settings) -> Plan:
    return Toolchains(settings).plan("python", code)


def _limit(folder: Path, *names: str) -> str:
    return next((folder / n).read_text().strip() for n in names if (folder / n).exists())


@pytest.mark.sandbox
async def test_a_run_lives_in_its_own_cgroup_which_is_removed_after() -> None:
    """Read from the host while the run sleeps: its processes are in a cgroup of their own with the run's memory
    and process limits, inside the cgroup of all runs with the total limit. Both are gone after the run."""
    require_sandbox()
    if not AS_ROOT:
        skip_or_fail("needs root: the run's processes are found by the uid of its slot")
    uid = 300_000 + secrets.randbelow(100_000)
    settings = Settings(
        execution="sandbox",
        exec_slot_uid_base=uid,
        exec_concurrency=1,
        exec_run_memory_mb=384,
        exec_total_memory_mb=512,
        exec_max_processes=40,
    )
    sandbox = Sandbox(settings)
    if sandbox.bounds().startswith("rlimits"):
        skip_or_fail(f"no usable cgroup on this machine: {sandbox.bounds()}")
    memory_limit = ("memory.max", "memory.limit_in_bytes")
    try:
        task = asyncio.create_task(sandbox.run(_python(SLEEPER, settings), b""))
        seen: dict[str, Path] = {}
        limits: dict[str, str] = {}
        for _ in range(500):
            pids = processes_of_uid(uid)
            if pids:
                seen = cgroup_dirs(pids[0])
                limits = {
                    "run": _limit(seen["memory"], *memory_limit),
                    "pids": _limit(seen["pids"], "pids.max"),
                    "all runs": _limit(seen["memory"].parent, *memory_limit),
                }
                break
            await asyncio.sleep(0.01)
        outcome = await task
    finally:
        await sandbox.close()
    assert outcome.exit_code == 0 and outcome.stdout == b"ready\n", outcome
    assert outcome.memory_peak_bytes and outcome.memory_peak_bytes > 0
    assert seen["memory"].name.startswith("run-") and seen["memory"].parent.name.startswith("codeconnect-"), seen
    assert limits == {"run": str(384 * MiB), "pids": "40", "all runs": str(512 * MiB)}
    assert not seen["memory"].exists() and not seen["memory"].parent.exists(), "a cgroup is left after the run"


PROBE_LIMITS = """
import ctypes, errno, json, os, resource
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.memfd_create(b"x", 0)
print(json.dumps({"nproc": resource.getrlimit(resource.RLIMIT_NPROC)[1],
                  "as": resource.getrlimit(resource.RLIMIT_AS)[1],
                  "memfd": errno.errorcode.get(ctypes.get_errno(), "-") if fd < 0 else "ok"}))
"""


@pytest.mark.sandbox
async def test_without_cgroups_processes_times_address_space_fit_the_budget() -> None:
    """Threshold: with exec_cgroup=off, (RLIMIT_NPROC - the sandbox's own processes) x RLIMIT_AS + the tmpfs
    sizes <= exec_run_memory_mb, and memfd_create (memory in no address space) is refused."""
    require_sandbox()
    settings = Settings(execution="sandbox", exec_cgroup="off", exec_run_memory_mb=2048, exec_memory_mb=256)
    sandbox = Sandbox(settings)
    try:
        assert sandbox.bounds().startswith("rlimits")
        outcome = await sandbox.run(_python(PROBE_LIMITS, settings), b"")
    finally:
        await sandbox.close()
    seen = json.loads(outcome.stdout)
    program = seen["nproc"] - SANDBOX_PROCESSES
    assert program >= 1
    tmpfs_mb = settings.exec_tmpfs_mb + settings.exec_shm_mb
    assert program * seen["as"] // MiB + tmpfs_mb <= settings.exec_run_memory_mb, seen
    if settings.exec_seccomp and os.uname().machine == "x86_64":
        assert seen["memfd"] == "EPERM", seen


@pytest.mark.sandbox
async def test_self_test_names_the_mechanism() -> None:
    require_sandbox()
    bounds = await check_sandbox(Settings(execution="sandbox"))
    assert bounds.startswith(("cgroup v2", "cgroup v1", "rlimits")), bounds
    assert (await check_sandbox(Settings(execution="sandbox", exec_cgroup="off"))).startswith("rlimits")


@pytest.mark.sandbox
async def test_self_test_fails_when_runs_are_not_in_their_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapper that skipped entering the cgroup leaves the run's cgroup empty: the self-test refuses."""
    require_sandbox()
    sandbox = Sandbox(Settings(execution="sandbox"))
    try:
        if sandbox.bounds().startswith("rlimits"):
            skip_or_fail(f"no usable cgroup on this machine: {sandbox.bounds()}")
        monkeypatch.setattr(sandbox_module, "_ENTER_CGROUP", 'n=$1; shift; shift "$n"; exec "$@"')
        with pytest.raises(SandboxUnavailable, match="not charged to its cgroup"):
            await check_sandbox(sandbox.settings, sandbox)
    finally:
        await sandbox.close()
