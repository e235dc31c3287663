"""Rates per client: how many sessions one client may create and how many joins it may make in any minute.

A flood of creations or joins from one address costs a database write each and leaves rows behind; the limits
stop it long before it hurts, and sit far above what people do by hand (a class opening its sessions at once
comes through one school address: 30 new sessions and 120 joins a minute, both settings). An attempt is counted
before anything else is looked at, so malformed requests and joins of unknown sessions count too; one refused for
the rate does not, so a client retrying in a loop gets through as soon as its oldest counted request is a minute old.

Counted in one sliding window of a minute per (kind, key): in Redis when the app is clustered, so every process
counts the same requests (``Cluster.take_rate``), and in the process otherwise, or while Redis is away. Keys are
client addresses today (``clients.rate_key``); :meth:`RateLimits.check` takes several, so a request presenting a
credential can be counted under it too (pass a hash of the credential, never the credential itself: keys end up in
Redis key names).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from codeconnect.config import Settings
from codeconnect.errors import TooManyRequests

#: Counts one event under a key in a window shared by every process: 0 if taken, else the seconds until one would
#: be; None when there is nothing shared to count in (``Cluster.take_rate``).
SharedRate = Callable[[str, int], Awaitable[float | None]]

RateKind = Literal["sessions", "joins"]

_WHAT: dict[RateKind, str] = {"sessions": "sessions created", "joins": "joins (and owner-link claims)"}


class RateExceeded(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class ClientRate:
    """Sliding one-minute window of events per client key, with a bounded number of keys remembered."""

    def __init__(self, per_minute: int, max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._starts: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def clients(self) -> int:
        return len(self._starts)

    def check(self, key: str, now: float | None = None) -> None:
        """Record an event for ``key`` or raise :class:`RateExceeded` with the seconds to wait (nothing recorded)."""
        now = time.monotonic() if now is None else now
        starts = self._starts.get(key)
        if starts is None:
            starts = self._starts[key] = deque()
            while len(self._starts) > self.max_clients:
                self._starts.popitem(last=False)
        self._starts.move_to_end(key)
        while starts and now - starts[0] >= 60.0:
            starts.popleft()
        if len(starts) >= self.per_minute:
            raise RateExceeded(max(1, math.ceil(60.0 - (now - starts[0]))))
        starts.append(now)


class RateLimits:
    """The REST rate limits of one app (``CODECONNECT_RATE_*``)."""

    def __init__(
        self, settings: Settings, shared: SharedRate | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute: dict[RateKind, int] = {
            "sessions": settings.rate_sessions_per_minute,
            "joins": settings.rate_joins_per_minute,
        }
        self.shared = shared
        self.clock = clock
        self._local = {
            kind: ClientRate(limit, settings.rate_tracked_clients) for kind, limit in self.per_minute.items() if limit
        }

    async def check(self, kind: RateKind, keys: Sequence[str]) -> None:
        """Count one ``kind`` of request under each of ``keys`` in turn, or raise 429 ``rate_limited`` with
        ``Retry-After`` at the first key over its limit (the keys before it keep the attempt counted)."""
        limit = self.per_minute[kind]
        if not limit:
            return
        for key in keys:
            wait = await self._take(kind, key, limit)
            if wait:
                raise TooManyRequests(
                    f"Too many {_WHAT[kind]} from this client: at most {limit} a minute; try again in {wait} s.",
                    code="rate_limited",
                    headers={"Retry-After": str(wait)},
                )

    async def _take(self, kind: RateKind, key: str, limit: int) -> int:
        """0 if taken, else the whole seconds (at least 1) until it would be."""
        if self.shared is not None:
            wait = await self.shared(f"{kind}:{key}", limit)
            if wait is not None:
                return max(1, math.ceil(wait)) if wait > 0 else 0
        try:
            self._local[kind].check(key, self.clock())
        except RateExceeded as exc:
            return exc.retry_after
        return 0
