"""The sandbox: one bubblewrap container per run, as an unprivileged uid, with rlimits and a wall clock.

Layers, outermost first:

* a ``sh`` run as the server's user writes itself into the run's cgroup (``cgroups.py``) and only then becomes
  what follows, so bwrap and everything the program forks are in it from the start: the run's total memory and
  processes are bounded there; without cgroups the driver lowers RLIMIT_NPROC per step instead
  (:func:`cgroups.fallback_processes`);
* then ``setpriv ... prlimit ... -- bwrap ...`` runs as ``exec_uid`` (65534) when the server runs as root:
  RLIMIT_NPROC is not enforced for processes that are root outside the namespace, and nothing inside may be root-owned
  (``exec_slot_uid_base`` gives each run slot its own uid, so runs do not share one process budget);
* ``prlimit`` sets the limits of the whole container: processes, open files, file size, no core dumps;
* ``bwrap --unshare-all`` gives new user/pid/net/ipc/uts/cgroup namespaces (network: only ``lo``), a read-only
  ``/usr`` (``/usr/local`` hidden), a few files of ``/etc``, a fresh size-limited tmpfs at ``/work`` (``/tmp``
  points there) and one at ``/dev/shm``, and a clean environment; ``/``, ``/dev`` and ``/usr/local`` are
  memory-backed too, so they are remounted read-only: nothing writable is without a size; no nested user
  namespaces; ``--die-with-parent`` + the pid namespace mean killing the bwrap process we started kills every
  process of the run;
* a seccomp filter (``seccomp.py``) denies system calls ordinary programs never need (without a cgroup, also
  those that make memory no address space shows: memfd, SysV shared memory and message queues);
* a bash driver inside sets CPU seconds and address space per step (compile, then run), and reports the
  compile status on a private pipe so the host can switch from the compile to the run wall clock.

The host reads stdout, stderr and compiler output concurrently, keeps at most ``max_output_bytes`` of each and
kills the container when one overflows, a wall clock expires or the run is stopped (its ``stop`` event is set:
Stop on the page, or the client that asked for the run went away).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codeconnect.config import Settings
from codeconnect.execution.cgroups import (
    SANDBOX_PROCESSES,
    Budget,
    RunCgroup,
    RunCgroups,
    fallback_processes,
    open_cgroups,
)
from codeconnect.execution.pool import admitted_runs, total_memory_mb
from codeconnect.execution.seccomp import FALLBACK_DENIED, sandbox_filter
from codeconnect.execution.toolchains import SANDBOX_PATH, Plan, Step

WORK = "/work"
_READ_CHUNK = 64 * 1024
# After the container is gone every pipe is closed; this only bounds a pathological wait for EOF.
_DRAIN_SECONDS = 2.0
MiB = 1024 * 1024
# Run as the server's user before anything of the run: the process writes itself ("0") into each of the run's
# cgroup.procs files, then becomes setpriv/prlimit/bwrap. It is in the cgroup before the first exec, so nothing
# of the run ever runs outside it.
_ENTER_CGROUP = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo 0 > "$1" || { echo "sandbox: cannot enter the cgroup $1" >&2;'
    ' exit 125; }; shift; n=$((n - 1)); done; exec "$@"'
)


class SandboxUnavailable(RuntimeError):
    """bwrap (or prlimit) is missing, or the sandbox does not behave as it must."""


@dataclass(slots=True)
class Outcome:
    """What happened, as raw bytes; the service decodes and shapes it."""

    stdout: bytes = b""
    stderr: bytes = b""
    compile_output: bytes = b""
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    output_truncated: bool = False
    compiled: bool = True
    duration_ms: int = 0
    memory_peak_bytes: int | None = None  # from the run's cgroup, where there is one
    oom_kills: int = 0
    stopped: bool = False  # ended by its stop event, not by itself or a limit


def signal_name(number: int | None) -> str | None:
    """``SIGSEGV`` for 11: what people look up when a program crashes (the number alone is opaque)."""
    if number is None:
        return None
    if signal.SIGRTMIN < number <= signal.SIGRTMAX:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


OutputListener = Callable[[str, bytes], None]
"""Hears a run's kept output as it is read: the stream's name ("stdout", "stderr", "compile") and the bytes."""


class _Capture:
    """Reads one pipe to EOF, keeping the first ``limit`` bytes; signals ``overflow`` past it. ``on_chunk`` hears
    each kept piece as it arrives (never more than what is kept)."""

    def __init__(
        self, limit: int, overflow: asyncio.Event, on_chunk: Callable[[bytes], None] | None = None
    ) -> None:
        self.limit = limit
        self.overflow = overflow
        self.on_chunk = on_chunk
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    async def drain(self, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(_READ_CHUNK):
            room = self.limit - self.size
            if room > 0:
                kept = chunk[:room]
                self.chunks.append(kept)
                self.size += len(kept)
                if self.on_chunk is not None:
                    self.on_chunk(kept)
            if len(chunk) > room:
                self.truncated = True
                self.overflow.set()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def _memfd(name: str, content: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    _write_all(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


async def _pipe_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_READ_CHUNK * 2)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0)
    )
    return reader, transport


def _ulimits(step: Step, processes: int | None = None) -> str:
    # Hard limits are set too, so the program cannot raise them back. The CPU hard limit is one second past
    # the soft one: the soft limit sends SIGXCPU (reported as a time-out), the hard one SIGKILL.
    limits = (
        f"ulimit -S -t {step.cpu_seconds} && ulimit -H -t {step.cpu_seconds + 1}"
        f" && ulimit -v {step.memory_mb * 1024}"
    )
    return limits if processes is None else f"{limits} && ulimit -u {processes}"


def driver_script(
    plan: Plan, compile_fd: int, status_fd: int, processes: Callable[[Step, int], int] | None = None
) -> str:
    """The bash program bwrap runs: the compile step (output and status on private pipes), then the run.

    ``processes(step, sandbox_own)``, when given, is the RLIMIT_NPROC of a step (no cgroup bounds the run);
    ``sandbox_own`` counts the sandbox's processes beside the step's.
    """

    def nproc(step: Step, own: int) -> int | None:
        return None if processes is None else processes(step, own)

    lines = ["set +e"]
    if plan.compile is not None:
        cmd = shlex.join(plan.compile.argv)
        lines += [
            f"exec 3>&{compile_fd} 4>&{status_fd} {compile_fd}>&- {status_fd}>&-",
            # The waiting driver is one more process of the sandbox's own during the compile.
            f"( {_ulimits(plan.compile, nproc(plan.compile, SANDBOX_PROCESSES + 1))} && exec {cmd} )"
            " </dev/null >&3 2>&3",
            "rc=$?",
            'echo "$rc" >&4',
            # CPU time of the compiler and its children (cc1plus, ...): tells a CPU-limit kill from an error.
            "times >&4",
            "exec 3>&- 4>&-",
            '[ "$rc" -eq 0 ] || exit "$rc"',
        ]
    lines += [
        f"{_ulimits(plan.run, nproc(plan.run, SANDBOX_PROCESSES))} || exit 125",
        f"exec {shlex.join(plan.run.argv)}",
    ]
    return "\n".join(lines)


class Sandbox:
    """Runs :class:`Plan` objects in bubblewrap. Stateless apart from the set of live containers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._live: set[asyncio.subprocess.Process] = set()
        self._cgroups: RunCgroups | None = None
        self._bounds: str | None = None

    # --- What bounds a run's total memory and processes -----------------------------------------------------

    def bounds(self) -> str:
        """Choose, once, what bounds every run's total memory and processes, and say what it is.

        Raises :class:`SandboxUnavailable` when ``exec_cgroup`` names a cgroup version that cannot be used here.
        """
        if self._bounds is not None:
            return self._bounds
        s = self.settings
        runs = admitted_runs(s)
        total_mb = total_memory_mb(s)
        try:
            cgroups, why = open_cgroups(s.exec_cgroup, Budget(total_mb * MiB, runs * s.exec_max_processes))
        except OSError as exc:
            cgroups, why = None, f"cannot read this process's cgroups: {exc}"
        if cgroups is None and s.exec_cgroup in ("v1", "v2"):
            raise SandboxUnavailable(f"CODECONNECT_EXEC_CGROUP={s.exec_cgroup} but {why}")
        self._cgroups = cgroups
        per_run = f"{s.exec_run_memory_mb} MB and {s.exec_max_processes} processes per run"
        if cgroups is not None:
            self._bounds = f"{cgroups.describe()}: {per_run}, {total_mb} MB for all runs ({runs} at once)"
        else:
            single = fallback_processes(
                s.exec_run_memory_mb, s.exec_memory_mb, s.exec_tmpfs_mb + s.exec_shm_mb, s.exec_max_processes
            )
            unmapped = "denied" if s.exec_seccomp else "NOT bounded (CODECONNECT_EXEC_SECCOMP is off)"
            self._bounds = (
                f"rlimits, no cgroup ({why}): a run's processes x address space stay within {s.exec_run_memory_mb}"
                f" MB (e.g. {single} processes or threads of {s.exec_memory_mb} MB; memfd and SysV shared memory "
                f"{unmapped}); {runs} runs at once"
            )
        return self._bounds

    @property
    def cgroups(self) -> RunCgroups | None:
        """The cgroup of all runs (after :meth:`bounds`), None when runs are bounded by rlimits."""
        return self._cgroups

    @property
    def mechanism(self) -> str:
        """``cgroup2``, ``cgroup1`` or ``rlimits`` (after :meth:`bounds`)."""
        return self._cgroups.mechanism if self._cgroups is not None else "rlimits"

    def _fallback_processes(self, step: Step, sandbox_own: int) -> int:
        s = self.settings
        room = fallback_processes(
            s.exec_run_memory_mb, step.memory_mb, s.exec_tmpfs_mb + s.exec_shm_mb, s.exec_max_processes
        )
        return room + sandbox_own

    # --- Construction of the command line -------------------------------------------------------------------

    def _drop_privileges(self) -> bool:
        return os.geteuid() == 0

    def runs_as_other_user(self) -> bool:
        """Runs get an unprivileged uid of their own (the server is root): what they read must be readable to
        every user."""
        return self._drop_privileges()

    def _identity(self, slot: int) -> tuple[int, int]:
        if not self._drop_privileges():
            return os.getuid(), os.getgid()
        base = self.settings.exec_slot_uid_base
        uid = self.settings.exec_uid if base is None else base + slot
        return uid, uid

    def _etc_binds(self) -> list[str]:
        args: list[str] = []
        # Alternatives (java, javac), the JDK's configuration (its conf/ links into /etc/java-*), the loader
        # cache. Nothing else of /etc: no passwd database, no shadow, no resolver configuration.
        etc = Path("/etc")
        candidates = [etc / "alternatives", etc / "ld.so.cache", etc / "localtime"]
        candidates += sorted(etc.glob("java-*"))
        for path in candidates:
            if path.exists():
                args += ["--ro-bind", str(path), str(path)]
        return args

    def _root_binds(self) -> list[str]:
        args = ["--ro-bind", "/usr", "/usr", "--tmpfs", "/usr/local", "--remount-ro", "/usr/local"]
        for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{top}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{top}"]
        return args

    def command(
        self,
        plan: Plan,
        file_fds: Sequence[tuple[int, str]],
        script: str,
        seccomp_fd: int | None = None,
        slot: int = 0,
        cgroup_procs: Sequence[Path] = (),
    ) -> list[str]:
        s = self.settings
        enter: list[str] = []
        if cgroup_procs:
            enter = ["sh", "-c", _ENTER_CGROUP, "sh", str(len(cgroup_procs)), *map(str, cgroup_procs)]
        # setpriv, not subprocess's user=/group=: uvloop (uvicorn's loop when installed) does not support those,
        # and preexec_fn is unsafe in a threaded process. setpriv and prlimit exec in place: no extra process.
        setpriv: list[str] = []
        if self._drop_privileges():
            uid, gid = self._identity(slot)
            setpriv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
        prlimit = [
            "prlimit",
            f"--nproc={s.exec_max_processes}",
            f"--nofile={s.exec_max_open_files}",
            f"--fsize={s.exec_max_file_bytes}",
            "--core=0",
            "--",
        ]
        bwrap = [
            s.exec_bwrap_path,
            "--unshare-all",
            "--unshare-user",
            # No nested user namespaces: they would give the program a root-like view and more kernel surface.
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            *self._root_binds(),
            *self._etc_binds(),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            # bwrap's /dev is a tmpfs without a size, like its root: both become read-only once set up. /dev/shm
            # gets a tmpfs of its own, with a size.
            "--size",
            str(s.exec_shm_mb * MiB),
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--size",
            str(s.exec_tmpfs_mb * MiB),
            "--tmpfs",
            WORK,
            "--symlink",
            WORK,
            "/tmp",
        ]
        for fd, dest in file_fds:
            bwrap += ["--file", str(fd), dest]
        if seccomp_fd is not None:
            bwrap += ["--seccomp", str(seccomp_fd)]
        for host, dest in plan.ro_binds:
            bwrap += ["--ro-bind", host, dest]
        bwrap += ["--remount-ro", "/"]  # after the last mount and file placed in it
        env = {
            "PATH": SANDBOX_PATH,
            "HOME": WORK,
            "TMPDIR": WORK,
            "LANG": "C.UTF-8",
            "USER": "sandbox",
            **plan.env,
        }
        bwrap += ["--clearenv"]
        for key, value in env.items():
            bwrap += ["--setenv", key, value]
        bwrap += ["--chdir", WORK, "/usr/bin/bash", "--noprofile", "--norc", "-c", script]
        return enter + setpriv + prlimit + bwrap

    # --- Running -------------------------------------------------------------------------------------------

    async def run(
        self,
        plan: Plan,
        stdin: bytes,
        slot: int = 0,
        stop: asyncio.Event | None = None,
        on_output: OutputListener | None = None,
    ) -> Outcome:
        """Run ``plan`` in a new container; ``slot`` (from the pool) picks the uid when uids are per slot.

        Setting ``stop`` kills the container at once; the outcome is then ``stopped`` (nothing starts if it is
        already set). ``on_output`` hears the output as the program writes it (what the outcome keeps).
        """
        if stop is not None and stop.is_set():
            return Outcome(stopped=True)
        self.bounds()
        tree, group = self._cgroups, None
        if tree is not None:
            s = self.settings
            try:
                group = tree.new_run(Budget(s.exec_run_memory_mb * MiB, s.exec_max_processes))
            except OSError as exc:
                raise SandboxUnavailable(f"cannot create the run's cgroup: {exc}") from exc
        try:
            outcome = await self._run(plan, stdin, slot, group, stop, on_output)
            if group is not None:
                outcome.memory_peak_bytes = group.peak_memory()
                outcome.oom_kills = group.oom_kills()
            return outcome
        finally:
            if tree is not None and group is not None:
                await tree.end_run(group)

    async def _run(
        self,
        plan: Plan,
        stdin: bytes,
        slot: int,
        cgroup: RunCgroup | None,
        stop: asyncio.Event | None,
        on_output: OutputListener | None,
    ) -> Outcome:
        uid, gid = self._identity(slot)
        passwd = f"sandbox:x:{uid}:{gid}:sandbox:{WORK}:/usr/sbin/nologin\n".encode()
        group = f"sandbox:x:{gid}:\n".encode()
        owned: list[int] = []  # fds to close in the parent once the child has them
        try:
            file_fds: list[tuple[int, str]] = []
            for name, content in {**plan.files}.items():
                fd = _memfd(name, content)
                owned.append(fd)
                file_fds.append((fd, f"{WORK}/{name}"))
            for dest, content in (("/etc/passwd", passwd), ("/etc/group", group)):
                fd = _memfd(dest.rsplit("/", 1)[1], content)
                owned.append(fd)
                file_fds.append((fd, dest))
            extra_fds: list[int] = []
            # Without a cgroup nothing would count memory that is in no address space: deny making such memory.
            denied = FALLBACK_DENIED if cgroup is None else ()
            program = sandbox_filter(denied) if self.settings.exec_seccomp else None
            if program is not None:
                seccomp_fd = _memfd("seccomp", program)
                owned.append(seccomp_fd)
                extra_fds.append(seccomp_fd)
            compile_r, compile_w = os.pipe()
            status_r, status_w = os.pipe()
            owned += [compile_w, status_w]
            parent_only = [compile_r, status_r]
            script = driver_script(plan, compile_w, status_w, None if cgroup else self._fallback_processes)
            argv = self.command(
                plan, file_fds, script, extra_fds[0] if extra_fds else None, slot, cgroup.procs_files if cgroup else ()
            )
            started = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    pass_fds=[fd for fd, _ in file_fds] + extra_fds + [compile_w, status_w],
                    start_new_session=True,
                    env={"PATH": SANDBOX_PATH},
                )
            except BaseException:
                for fd in parent_only:
                    os.close(fd)
                raise
        finally:
            for fd in owned:
                os.close(fd)
        self._live.add(proc)
        try:
            return await self._supervise(
                proc, plan, stdin, compile_r, status_r, started, stop or asyncio.Event(), on_output
            )
        finally:
            self._live.discard(proc)
            if proc.returncode is None:
                _kill(proc)
                await proc.wait()

    async def _supervise(
        self,
        proc: asyncio.subprocess.Process,
        plan: Plan,
        stdin: bytes,
        compile_r: int,
        status_r: int,
        started: float,
        stop: asyncio.Event,
        on_output: OutputListener | None = None,
    ) -> Outcome:
        s = self.settings
        assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
        overflow = asyncio.Event()

        def listener(stream: str) -> Callable[[bytes], None] | None:
            return None if on_output is None else functools.partial(on_output, stream)

        out = _Capture(s.exec_max_output_bytes, overflow, listener("stdout"))
        err = _Capture(s.exec_max_output_bytes, overflow, listener("stderr"))
        comp = _Capture(s.exec_max_output_bytes, overflow, listener("compile"))
        compile_reader, compile_transport = await _pipe_reader(compile_r)
        status_reader, status_transport = await _pipe_reader(status_r)
        readers = [
            asyncio.create_task(out.drain(proc.stdout)),
            asyncio.create_task(err.drain(proc.stderr)),
            asyncio.create_task(comp.drain(compile_reader)),
        ]
        feeder = asyncio.create_task(_feed(proc.stdin, stdin))
        exited = asyncio.create_task(proc.wait())
        overflowed = asyncio.create_task(overflow.wait())
        stopping = asyncio.create_task(stop.wait())
        outcome = Outcome()
        killed = False
        try:
            if plan.compile is not None:
                status = asyncio.create_task(status_reader.readline())
                done, _ = await asyncio.wait(
                    {status, exited, overflowed, stopping},
                    timeout=plan.compile.wall_seconds,
                    return_when="FIRST_COMPLETED",
                )
                line = status.result() if status in done else b""
                if not status.done():
                    status.cancel()
                if not done:
                    outcome.timed_out = killed = True
                    outcome.compiled = False
                elif stopping in done and exited not in done:
                    outcome.stopped = killed = True
                    outcome.compiled = line.strip() == b"0"
                elif line.strip():
                    rc = int(line.strip() or b"1")
                    outcome.compiled = rc == 0
                elif exited in done:
                    # The driver ended without reporting: bwrap itself failed to set the container up.
                    outcome.compiled = False
                if overflowed in done:
                    killed = True
                    if not line.strip():
                        outcome.compiled = False
            if not killed:
                # After a failed compile the driver exits at once; the run's wall clock still bounds the wait.
                done, _ = await asyncio.wait(
                    {exited, overflowed, stopping}, timeout=plan.run.wall_seconds, return_when="FIRST_COMPLETED"
                )
                if not done:
                    outcome.timed_out = killed = True
                elif stopping in done and exited not in done:
                    outcome.stopped = killed = True
                elif overflowed in done and exited not in done:
                    killed = True
            if killed and proc.returncode is None:
                _kill(proc)
            await exited
            outcome.duration_ms = int((time.monotonic() - started) * 1000)
            if plan.compile is not None and not outcome.compiled and not killed:
                with contextlib.suppress(TimeoutError, ValueError):
                    async with asyncio.timeout(_DRAIN_SECONDS):
                        cpu = _children_cpu_seconds(await status_reader.read())
                    # g++ reports a cc1plus killed by SIGXCPU as an ordinary failure (exit 4). rusage is
                    # tick-sampled and reads ~0.9 s for a kill at 1 s, hence the margin.
                    outcome.timed_out = cpu >= plan.compile.cpu_seconds * 0.8
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DRAIN_SECONDS):
                    await asyncio.gather(*readers, return_exceptions=True)
        finally:
            for task in (*readers, feeder, overflowed, stopping, exited):
                if not task.done():
                    task.cancel()
            compile_reader.feed_eof()
            await asyncio.gather(*readers, feeder, overflowed, stopping, return_exceptions=True)
            compile_transport.close()
            status_transport.close()
        outcome.stdout, outcome.stderr, outcome.compile_output = out.data, err.data, comp.data
        outcome.output_truncated = out.truncated or err.truncated or comp.truncated
        rc = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        if killed or rc < 0:
            outcome.exit_code, outcome.signal = None, (-rc if rc < 0 else signal.SIGKILL)
        elif rc > 128:
            # bwrap reports a child killed by signal N as exit status 128 + N.
            outcome.exit_code, outcome.signal = None, rc - 128
        else:
            outcome.exit_code = rc
        if outcome.signal == signal.SIGXCPU:
            outcome.timed_out = True  # the CPU-seconds limit is a time limit too
        return outcome

    async def close(self) -> None:
        """Kill every live container (shutdown)."""
        for proc in list(self._live):
            _kill(proc)
        for proc in list(self._live):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
        if self._cgroups is not None:
            await self._cgroups.close()
        self._cgroups, self._bounds = None, None


def _kill(proc: asyncio.subprocess.Process) -> None:
    # Killing bwrap is enough: --die-with-parent kills its init, and the pid namespace ends every process.
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _children_cpu_seconds(times_output: bytes) -> float:
    """User + system seconds of the children from bash's ``times`` (its last line: ``0m1.020s 0m0.104s``)."""
    lines = times_output.decode().strip().splitlines()
    if not lines:
        return 0.0  # the driver never reported: bwrap could not set the container up
    last = lines[-1]
    total = 0.0
    for field in last.split():
        minutes, _, seconds = field.rstrip("s").partition("m")
        total += int(minutes) * 60 + float(seconds)
    return total


async def _feed(writer: asyncio.StreamWriter, data: bytes) -> None:
    # A program that never reads stdin, or exits early, closes the pipe: that is not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
