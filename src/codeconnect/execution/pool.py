"""Admission control for runs: a bounded number executing, a bounded queue, and a per-client rate (the window is
``rates.ClientRate``, shared with the REST limits)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from codeconnect import metrics
from codeconnect.config import Settings


def total_memory_mb(settings: Settings) -> int:
    """Memory all runs together may hold: the setting, or every slot's budget."""
    if settings.exec_total_memory_mb is not None:
        return settings.exec_total_memory_mb
    return (settings.exec_concurrency or os.cpu_count() or 1) * settings.exec_run_memory_mb


def admitted_runs(settings: Settings) -> int:
    """Runs that may execute at once: the concurrency, lowered until every run's full memory budget fits in the
    memory of all runs together (never below one; the cgroup of all runs still holds the total then)."""
    wanted = settings.exec_concurrency or os.cpu_count() or 1
    return max(1, min(wanted, total_memory_mb(settings) // settings.exec_run_memory_mb))


class PoolBusy(Exception):
    """Every slot is taken and the queue is full."""


class SlotAbandoned(Exception):
    """The run was stopped while it waited for a slot."""


class RunnerPool:
    """At most ``concurrency`` runs at once and at most ``queue_size`` waiting; anything more is refused."""

    def __init__(self, concurrency: int, queue_size: int) -> None:
        self.concurrency = concurrency
        self.queue_size = queue_size
        self._slots = asyncio.Semaphore(concurrency)
        self._waiting = 0
        self._running = 0
        self._free = list(range(concurrency - 1, -1, -1))

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def slot(self, abandon: asyncio.Event | None = None) -> AsyncIterator[int]:
        """Wait for a free slot and hold it; yields the slot's number (0 .. concurrency-1). Setting ``abandon``
        while waiting gives the queue place up (:class:`SlotAbandoned`): a stopped run must not wait its turn."""
        # Checked synchronously (no await in between), so two requests cannot both take the last queue place.
        if self._slots.locked() and self._waiting >= self.queue_size:
            raise PoolBusy()
        self._waiting += 1
        metrics.SANDBOX_QUEUE.inc()
        try:
            await self._acquire(abandon)
        finally:
            self._waiting -= 1
            metrics.SANDBOX_QUEUE.dec()
        self._running += 1
        metrics.SANDBOX_ACTIVE.inc()
        number = self._free.pop()
        try:
            yield number
        finally:
            self._free.append(number)
            self._running -= 1
            metrics.SANDBOX_ACTIVE.dec()
            self._slots.release()

    async def _acquire(self, abandon: asyncio.Event | None) -> None:
        if abandon is not None and abandon.is_set():
            raise SlotAbandoned()
        if abandon is None or not self._slots.locked():
            # A free slot is taken without suspending, so the next request already sees it taken.
            await self._slots.acquire()
            return
        acquiring: asyncio.Future[bool] = asyncio.ensure_future(self._slots.acquire())
        abandoned: asyncio.Future[bool] = asyncio.ensure_future(abandon.wait())
        try:
            await asyncio.wait({acquiring, abandoned}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await self._give_up(acquiring)
            raise
        finally:
            abandoned.cancel()
        if acquiring.done() and not abandon.is_set():
            return
        await self._give_up(acquiring)
        raise SlotAbandoned()

    async def _give_up(self, acquiring: asyncio.Future[bool]) -> None:
        # A cancelled waiter that was already handed the slot passes it on; one it finished taking is ours to
        # give back.
        acquiring.cancel()
        [got] = await asyncio.gather(acquiring, return_exceptions=True)
        if got is True:
            self._slots.release()
