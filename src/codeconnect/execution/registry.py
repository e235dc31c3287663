"""Server runs in progress, by session and run id, so that Stop reaches the sandbox running them.

The page chooses a run's id when it starts the run (it sends it with ``POST /v1/sessions/{id}/execute``) and
stops the run with ``POST /v1/sessions/{id}/runs/{runId}/stop``, which may arrive on another connection, before
the run itself has started, or (with several server processes) at a process that does not hold the run. So
the key is (session id, run id), both known to every process, and a stop for a run that is not running here is
remembered for a while: a run that starts later with that id is stopped at once.

This registry is per process. With several processes behind one address, the same two operations map onto
Redis unchanged: :meth:`RunRegistry.stop` becomes ``SET codeconnect:run-stop:{session}:{run} 1 EX <remember>``
plus ``PUBLISH codeconnect:run-stop {session}:{run}``; every process subscribes and sets the stop event of the
run if it holds it, and :meth:`RunRegistry.track` checks the key when a run starts (a stop that came first).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

RunKey = tuple[str, str]


class RunIdInUse(Exception):
    """A run with this id is already running in the session."""


class RunRegistry:
    """The stop events of the runs this process is running, and stops that arrived before their run."""

    def __init__(self, remember_seconds: float = 60.0, max_remembered: int = 10_000) -> None:
        self.remember_seconds = remember_seconds
        self.max_remembered = max_remembered
        self._running: dict[RunKey, asyncio.Event] = {}
        self._early: OrderedDict[RunKey, float] = OrderedDict()  # key -> when the stop stops applying

    @property
    def running(self) -> int:
        return len(self._running)

    @contextmanager
    def track(self, session_id: str, run_id: str) -> Iterator[asyncio.Event]:
        """Hold the run's stop event while the run is in progress; it is already set if a stop came first."""
        key = (session_id, run_id)
        if key in self._running:
            raise RunIdInUse(run_id)
        stop = asyncio.Event()
        self._expire(time.monotonic())
        if self._early.pop(key, None) is not None:
            stop.set()
        self._running[key] = stop
        try:
            yield stop
        finally:
            del self._running[key]

    def stop(self, session_id: str, run_id: str) -> bool:
        """Stop the run; True when it is running here, False when the stop is kept for a run that may start."""
        key = (session_id, run_id)
        stop = self._running.get(key)
        if stop is not None:
            stop.set()
            return True
        now = time.monotonic()
        self._expire(now)
        self._early[key] = now + self.remember_seconds
        self._early.move_to_end(key)
        while len(self._early) > self.max_remembered:
            self._early.popitem(last=False)
        return False

    def _expire(self, now: float) -> None:
        # Insertion order is expiry order (one fixed lifetime, re-inserted keys move to the end).
        while self._early:
            key, until = next(iter(self._early.items()))
            if until > now:
                break
            del self._early[key]
