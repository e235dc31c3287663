"""What bounds a run's *total* memory and processes: a cgroup per run, under one cgroup for all runs.

Per-process limits do not add up to a bound: RLIMIT_AS is per process (64 processes of 512 MB each), and memory
a run never keeps mapped (memfd pages written with write(2), SysV segments after shmdt, tmpfs files) is in no
address space at all. A cgroup counts every page its processes are charged for, whatever the kind, and every
process a run forks is in its run's cgroup from the start.

Mechanisms (``exec_cgroup``; ``auto`` takes the first that works here, in this order):

* ``cgroup2``: the server's own cgroup v2 must offer the ``memory`` and ``pids`` controllers (delegated to it).
  Each run gets ``memory.max``, ``memory.swap.max`` 0, ``pids.max`` and ``memory.oom.group`` 1 (an OOM kills the
  whole run). If the server is alone in its cgroup but the controllers are not enabled for children, it moves
  itself into a leaf ``codeconnect-server`` first (cgroup v2 lets only a cgroup without processes hand
  controllers to children).
* ``cgroup1``: the ``memory`` (and, when mounted, ``pids``) hierarchies, writable (as root): each run gets
  ``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes`` when swap is accounted, and ``pids.max``.
* neither: :func:`fallback_processes` (the sandbox lowers RLIMIT_NPROC so that processes x address space fits).

Layout: ``<the server's own cgroup>/codeconnect-<pid>-<token>/run-<n>``, per hierarchy. Runs stay under the
server's own cgroup rather than the root: whatever bounds the host put on the server still holds, and
delegation (systemd ``Delegate=``, a container's cgroup namespace) gives a service exactly its own subtree. The
``codeconnect-...`` cgroup carries the limit of all runs together (``exec_total_memory_mb``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# The program's own processes run beside these, which RLIMIT_NPROC counts too: bwrap outside and bwrap as the
# namespace's init during the run, plus the waiting driver shell during a compile. All three are ours and small.
SANDBOX_PROCESSES = 2
_DESTROY_SECONDS = 5.0


class CgroupUnavailable(RuntimeError):
    """This mechanism cannot be used here; the message says why."""


@dataclass(frozen=True, slots=True)
class Budget:
    """What one cgroup may hold: bytes of memory (RAM; swap is not allowed on top) and processes (threads)."""

    memory_bytes: int
    pids: int


@dataclass(frozen=True, slots=True)
class Mount:
    root: str  # the folder of the hierarchy that is mounted (mountinfo field 4)
    point: Path
    fstype: str
    options: frozenset[str]  # super options: the controllers of a v1 hierarchy


def read_mounts(mountinfo: str) -> list[Mount]:
    """The cgroup mounts of ``/proc/self/mountinfo``."""
    mounts = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            options = frozenset(tail[2].split(","))
            mounts.append(Mount(_unescape(fields[3]), Path(_unescape(fields[4])), tail[0], options))
    return mounts


def read_memberships(self_cgroup: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as controller -> path; the cgroup v2 line is under ``""``."""
    found: dict[str, str] = {}
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _own(mount: Mount, path: str) -> Path:
    # /proc/self/cgroup paths start at the hierarchy's root; a mount may show only a subtree of it.
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        path = path[len(mount.root) :]
    return mount.point / path.lstrip("/")


def cgroup_dirs(pid: int | str = "self") -> dict[str, Path]:
    """Where a process's ``memory`` and ``pids`` cgroups are in the file system (controller -> folder)."""
    memberships = read_memberships(Path(f"/proc/{pid}/cgroup").read_text())
    mounts = read_mounts(Path("/proc/self/mountinfo").read_text())
    found: dict[str, Path] = {}
    for controller in ("memory", "pids"):
        v1 = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        v2 = next((m for m in mounts if m.fstype == "cgroup2"), None)
        if v1 is not None and controller in memberships:
            found[controller] = _own(v1, memberships[controller])
        elif v2 is not None and "" in memberships:
            found[controller] = _own(v2, memberships[""])
    return found


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class RunCgroup:
    """One run's cgroup: a folder in each hierarchy. The run's first process writes itself into
    :attr:`procs_files` before it executes anything else."""

    def __init__(self, version: int, dirs: tuple[Path, ...]) -> None:
        self.version = version
        self.dirs = dirs  # the memory hierarchy's first

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self.dirs)

    def peak_memory(self) -> int | None:
        """Most memory the run held at once, in bytes (None where the kernel does not say)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(_read(self.dirs[0] / name))
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int:
        """Processes of the run the kernel killed for exceeding its memory."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in _read(self.dirs[0] / name).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            try:
                found.update(int(p) for p in _read(procs).split())
            except (OSError, ValueError):  # removed meanwhile
                continue
        return found

    async def destroy(self, seconds: float = _DESTROY_SECONDS) -> bool:
        """Kill whatever is left in the run's cgroup and remove it; False if it is still there after ``seconds``."""
        # Normally nothing is left: bwrap's exit ends its PID namespace. This is for what escaped that.
        kill = self.dirs[0] / "cgroup.kill"
        if self.version == 2 and kill.exists():
            try:
                _write(kill, "1")
            except OSError:
                pass
        deadline = time.monotonic() + seconds
        while True:
            left = self.pids()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if not left and self._remove():
                return True
            if time.monotonic() > deadline:
                log.warning("could not remove the run cgroup %s (processes left: %s)", self.dirs[0], sorted(left))
                return False
            await asyncio.sleep(0.01)

    def _remove(self) -> bool:
        for d in self.dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno == errno.EBUSY:  # the last exits are still being accounted
                    return False
                # Never worth losing the run's result over: the folder stays, empty, and is reported.
                log.warning("could not remove the run cgroup %s: %s", d, exc.strerror)
        return True


class RunCgroups:
    """The cgroup of all runs of one sandbox (it holds the limit of them all) and the runs' own ones in it.

    The cgroup of all runs exists while runs do: the first run makes it, the last one removes it, so a sandbox
    that is never closed leaves nothing behind.
    """

    def __init__(self, version: int, parents: tuple[Path, ...], controllers: tuple[str, ...], total: Budget) -> None:
        self.version = version
        self.parents = parents  # the memory hierarchy's first
        self.controllers = controllers
        self.total = total
        self._active: set[RunCgroup] = set()
        self._count = 0

    @property
    def mechanism(self) -> str:
        return f"cgroup{self.version}"

    def describe(self) -> str:
        return f"cgroup v{self.version} ({', '.join(self.controllers)}) under {', '.join(map(str, self.parents))}"

    def probe(self) -> None:
        """Make and remove the cgroup of all runs once: raises :class:`CgroupUnavailable` if the kernel refuses."""
        try:
            self._make_parents()
        except OSError as exc:
            self._remove_parents()
            raise CgroupUnavailable(f"cannot set up {self.parents[0]}: {exc.strerror}") from exc
        self._remove_parents()

    def new_run(self, budget: Budget) -> RunCgroup:
        """Create the cgroup of one run with its limits (raises OSError if the kernel refuses); end it with
        :meth:`end_run`."""
        if not self._active:
            self._make_parents()
        self._count += 1
        dirs: list[Path] = []
        try:
            for parent in self.parents:
                d = parent / f"run-{self._count}"
                d.mkdir()
                dirs.append(d)
            group = RunCgroup(self.version, tuple(dirs))
            _set_limits(self.version, group.dirs, budget)
            if self.version == 2:
                # An OOM kill takes the whole run down, not one process that the rest of the run then waits for.
                _write(group.dirs[0] / "memory.oom.group", "1")
        except OSError:
            for d in reversed(dirs):
                try:
                    d.rmdir()
                except OSError:
                    pass
            if not self._active:
                self._remove_parents()
            raise
        self._active.add(group)
        return group

    async def end_run(self, group: RunCgroup) -> None:
        """Kill what is left of a run and remove its cgroup (and, after the last run, the cgroup of all runs)."""
        await group.destroy()
        if group in self._active:
            self._active.discard(group)
            if not self._active:
                self._remove_parents()

    async def close(self) -> None:
        """End every run still here and remove the cgroup of all runs."""
        for group in list(self._active):
            await self.end_run(group)
        self._remove_parents()

    def _make_parents(self) -> None:
        for parent in self.parents:
            parent.mkdir(exist_ok=True)
        if self.version == 2:
            _write(self.parents[0] / "cgroup.subtree_control", "+memory +pids")
        _set_limits(self.version, self.parents, self.total)

    def _remove_parents(self) -> None:
        for parent in self.parents:
            try:
                parent.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:  # a run's cgroup that could not be removed; the next run reuses this one
                log.warning("could not remove %s: %s", parent, exc.strerror)


def _set_limits(version: int, dirs: tuple[Path, ...], budget: Budget) -> None:
    for d in dirs:
        if version == 2:
            _write(d / "memory.max", str(budget.memory_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
        elif (d / "memory.limit_in_bytes").exists():
            _write(d / "memory.limit_in_bytes", str(budget.memory_bytes))
            # memsw is memory + swap; the memory limit goes first (memsw may never be below it).
            if (d / "memory.memsw.limit_in_bytes").exists():
                _write(d / "memory.memsw.limit_in_bytes", str(budget.memory_bytes))
        if (d / "pids.max").exists():
            _write(d / "pids.max", str(budget.pids))


def open_cgroups(mode: str, total: Budget, proc_self: Path = Path("/proc/self")) -> tuple[RunCgroups | None, str]:
    """The cgroups runs go into, per ``mode`` (``auto``, ``v2``, ``v1``, ``off``), or None and why not.

    ``total`` becomes the limit of the cgroup of all runs. ``proc_self`` is only replaced by tests.
    """
    if mode == "off":
        return None, "cgroups are off (CODECONNECT_EXEC_CGROUP=off)"
    memberships = read_memberships((proc_self / "cgroup").read_text())
    mounts = read_mounts((proc_self / "mountinfo").read_text())
    name = f"codeconnect-{os.getpid()}-{secrets.token_hex(3)}"
    reasons: list[str] = []
    for version, opener in ((2, _open_v2), (1, _open_v1)):
        if mode not in ("auto", f"v{version}"):
            continue
        try:
            return opener(memberships, mounts, name, total), ""
        except CgroupUnavailable as exc:
            reasons.append(f"cgroup v{version}: {exc}")
    return None, "; ".join(reasons)


def _open_v2(memberships: dict[str, str], mounts: list[Mount], name: str, total: Budget) -> RunCgroups:
    mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if mount is None or "" not in memberships:
        raise CgroupUnavailable("not mounted")
    own = _own(mount, memberships[""])
    try:
        offered = set(_read(own / "cgroup.controllers").split())
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read {own / 'cgroup.controllers'}: {exc.strerror}") from exc
    missing = [c for c in ("memory", "pids") if c not in offered]
    if missing:
        raise CgroupUnavailable(f"{own} offers no {' and no '.join(missing)} controller (not delegated to this server)")
    _enable_controllers(own)
    tree = RunCgroups(2, (own / name,), ("memory", "pids"), total)
    tree.probe()
    return tree


def _enable_controllers(own: Path) -> None:
    control = own / "cgroup.subtree_control"
    if {"memory", "pids"} <= set(_read(control).split()):
        return
    try:
        _write(control, "+memory +pids")
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise CgroupUnavailable(f"cannot enable memory and pids for children of {own}: {exc.strerror}") from exc
    # EBUSY: the cgroup holds processes. Only a cgroup without any may hand controllers to children; if they are
    # all this server, it moves into a leaf of its own. Other processes are not ours to move.
    me = str(os.getpid())
    if _read(own / "cgroup.procs").split() != [me]:
        raise CgroupUnavailable(f"{own} holds other processes than this server; controllers cannot be enabled")
    try:
        leaf = own / "codeconnect-server"
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", me)
        _write(control, "+memory +pids")
    except OSError as exc:
        raise CgroupUnavailable(f"cannot move this server into a leaf of {own}: {exc.strerror}") from exc
    log.info("moved this server into %s so that its runs can have memory and pids controllers", leaf)


def _open_v1(memberships: dict[str, str], mounts: list[Mount], name: str, total: Budget) -> RunCgroups:
    parents: list[Path] = []
    controllers: list[str] = []
    for controller in ("memory", "pids"):
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        if mount is None or controller not in memberships:
            if controller == "memory":
                raise CgroupUnavailable("the memory controller is not mounted")
            continue  # RLIMIT_NPROC still bounds the processes
        parents.append(_own(mount, memberships[controller]) / name)
        controllers.append(controller)
    tree = RunCgroups(1, tuple(parents), tuple(controllers), total)
    tree.probe()
    return tree


def fallback_processes(run_budget_mb: int, step_memory_mb: int, tmpfs_mb: int, max_processes: int) -> int:
    """RLIMIT_NPROC of a step when no cgroup bounds the run: its processes (threads count) times the step's
    address-space limit, plus the tmpfs mounts it can fill, stay within the run's budget.

    At least one: the program itself. The sandbox's own processes (:data:`SANDBOX_PROCESSES`) come on top.
    """
    room = run_budget_mb - tmpfs_mb
    return max(1, min(max_processes, room // step_memory_mb))
