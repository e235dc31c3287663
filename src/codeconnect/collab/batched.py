"""Reads by key that arrive while one is under way, answered together by the next statement.

The live layer reads through one database connection (PostgreSQL) or one thread (SQLite); see ``writer.py``. A
class joining at once, or a burst of reads of sessions nobody has open, made one statement each, queued behind each
other on that one connection: each paid a turn at the lock, a round trip or a thread hand-off, and the driver's
per-statement work. Here the first read starts a statement at once; the reads asked for meanwhile wait for it and
then share the next one (up to ``limit`` keys each), so a quiet server answers as soon as before and a busy one
makes a statement per round trip instead of one per read.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchedReads(Generic[K, V]):
    def __init__(
        self,
        read_many: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]],
        *,
        limit: int,
        error: Callable[[Exception], Exception] = lambda exc: exc,
        name: str = "batched-reads",
    ) -> None:
        """``read_many(keys)`` returns what exists of ``keys``; a failure fails every read of its statement,
        as ``error(exc)``."""
        self._read_many = read_many
        self._limit = limit
        self._error = error
        self._name = name
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        """What ``read_many`` has for ``key`` (None: nothing)."""
        waiter: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(waiter)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name=self._name)
        return await waiter

    async def _read(self) -> None:
        batch: dict[K, list[asyncio.Future[V | None]]] = {}
        try:
            while self._waiting:
                keys = list(itertools.islice(self._waiting, self._limit))
                batch = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._read_many(keys)
                except Exception as exc:
                    error = self._error(exc)
                    for waiters in batch.values():
                        for waiter in waiters:
                            if not waiter.done():  # its reader may have gone away
                                waiter.set_exception(error)
                    continue
                for key, waiters in batch.items():
                    value = found.get(key)
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(value)
        finally:
            self._reader = None
            # Cancelled (the app is stopping): nobody may wait forever.
            for waiters in itertools.chain(batch.values(), self._waiting.values()):
                for waiter in waiters:
                    waiter.cancel()
            self._waiting.clear()
