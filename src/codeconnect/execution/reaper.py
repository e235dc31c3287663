"""A minimal init for a server that is PID 1 of its PID namespace (a container started without an init).

A process whose parent exits is handed to PID 1 of its namespace, and only PID 1 can reap it. Every sandbox run
leaves one: bwrap's own init inside the run outlives the bwrap process the server started and waited for. A
server that is PID 1 never reaps these: its child watcher waits for the pids it started (it must not call
``waitpid(-1)``, which would steal the exit statuses asyncio waits for). The zombies fill the process table and
count against the sandbox uid's process limit: after about 60 runs no run could fork.

So ``codeconnect serve`` that finds itself PID 1 forks: the child is the server, unchanged, and PID 1 stays
behind as an init like tini: it reaps every process that ends up its child, forwards the signals a container
runtime sends (SIGTERM on ``docker stop``) to the server, and exits with the server's status. Nothing reaps
behind asyncio's back: the server's own children stay the server's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

# What a runtime or an operator sends PID 1 to reach the service.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def serve_under_init(serve: Callable[[], int], pid: int | None = None) -> int:
    """Run ``serve`` and return its exit status; as PID 1, run it in a child and reap everything meanwhile.

    ``pid`` stands in for ``os.getpid()`` (tests).
    """
    if (os.getpid() if pid is None else pid) != 1:
        return serve()
    print(
        "codeconnect: running as PID 1: the server runs as a child; this process only reaps orphans "
        "and forwards signals",
        file=sys.stderr,
        flush=True,
    )
    # A namespace's PID 1 drops signals it has no handler for: block them until the handlers are in place, so
    # a SIGTERM sent during start-up is forwarded rather than lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    child = os.fork()
    if child == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        _take_terminal()
        return serve()

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    return reap_until(child)


def reap_until(server: int) -> int:
    """Reap every child until ``server`` ends; its exit status (128 + N for a server killed by signal N)."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1  # no children at all: the server is gone and was reaped elsewhere
        if pid == server:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def _take_terminal() -> None:
    # The server gets a process group of its own and, on a terminal, the foreground: a Ctrl-C then reaches it
    # once (from the terminal) instead of twice (terminal and forwarded), which uvicorn would take as "force".
    os.setpgid(0, 0)
    stdin = sys.stdin
    if stdin is None:
        return
    with contextlib.suppress(OSError, ValueError):
        fd = stdin.fileno()
        if os.isatty(fd):
            previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not take it
            try:
                os.tcsetpgrp(fd, os.getpgrp())
            finally:
                signal.signal(signal.SIGTTOU, previous)
