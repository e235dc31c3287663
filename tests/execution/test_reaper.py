"""The minimal init `codeconnect serve` runs under as PID 1: it reaps orphans, forwards signals and exits with the
server's status. Played here by a child subreaper (orphans come to it as they come to PID 1); the real PID 1 case
is in tests/adversarial/test_sandbox.py."""

from __future__ import annotations

import signal
import subprocess
import sys

HARNESS = r"""
import ctypes, os, signal, subprocess, sys, time
from codeconnect.execution.reaper import serve_under_init

ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans now come to this process


def serve():
    mode = sys.argv[1]
    if mode == "orphan":
        # sh exits at once; its background sleep is orphaned and handed to the init, which must reap it.
        out = subprocess.run(["sh", "-c", "sleep 0.2 & echo $!"], capture_output=True, text=True, check=True)
        orphan = int(out.stdout)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{orphan}") and time.monotonic() < deadline:
            time.sleep(0.02)
        return 0 if not os.path.exists(f"/proc/{orphan}") else 1
    if mode == "signal":
        got = []
        signal.signal(signal.SIGTERM, lambda *_: got.append(1))
        print("ready", flush=True)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        return 3 if got else 1
    os.kill(os.getpid(), signal.SIGKILL)


sys.exit(serve_under_init(serve, pid=1))
"""


def _harness(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HARNESS, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_orphans_are_reaped() -> None:
    proc = _harness("orphan")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"the orphan stayed a zombie: {err}"
    assert "running as PID 1" in err


def test_sigterm_is_forwarded_and_the_server_status_returned() -> None:
    proc = _harness("signal")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)  # to the init, as `docker stop` sends it
    assert proc.wait(30) == 3


def test_a_server_killed_by_a_signal_exits_128_plus_it() -> None:
    proc = _harness("killed")
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL
