"""Server runs in progress, by session and run id, so that Stop reaches the sandbox running them.

The page chooses a run's id when it starts the run (it sends it with ``POST /v1/sessions/{id}/execute``) and
stops the run with ``POST /v1/sessions/{id}/runs/{runId}/stop``, which may arrive on another connection, before
the run itself has started, or (with several server processes) at a process that does not hold the run. So
the key is (session id, run id), both known to every process, and a stop for a run that is not running here is
remembered for a while: a run that starts later with that id is stopped at once.

With several processes (see ``collab/redis_cluster.py``), a stop is also told to every other process
(``share``), which applies it as its own: the run is stopped wherever it runs, and a process where it has not
started yet remembers the stop for it, as for a stop that came first here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
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
        self.share: Callable[[bytes], None] | None = None  # tells the other processes of a stop

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
        """Stop the run; True when it is running here, False when the stop is kept for a run that may start
        (here, or on another process, which is told)."""
        if self.share is not None:
            self.share(json.dumps([session_id, run_id]).encode())
        return self._stop(session_id, run_id)

    def apply_shared(self, event: bytes) -> None:
        """Another process's stop: ``[session id, run id]``."""
        session_id, run_id = json.loads(event)
        self._stop(str(session_id), str(run_id))

    def _stop(self, session_id: str, run_id: str) -> bool:
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
