"""Who may open another live connection: seats per participant and per session, and a cooldown for
participants whose connections keep getting closed for breaking a rule.

A stock y-websocket client reconnects forever (backoff capped at a few seconds) and re-sends, on every
reconnect, whatever got it closed: a refused update would cost the server an authentication and a full sync
every few seconds, for as long as the tab stays open. Each such close is a strike against the participant;
while a participant is cooling down (1 s after the first strike, doubling up to
``ws_refusal_cooldown_max_seconds``) its new connections are refused right after the handshake, before any
database or document work. A legitimate client breaks no rule, so it never meets a cooldown; a strike
expires after a quiet period as long as the longest cooldown.

A client can also reconnect in a loop without breaking any rule: every new connection gets its first sync (the
whole document, encoded) free and a full token bucket. So each participant also has a rate of new connections
(``ws_connects_per_minute``, with a burst of ``ws_connect_burst``), far above what a browser reconnecting after
network trouble needs (y-websocket backs off to a few seconds between attempts).

In a cluster, each process tells the others of every connection it admits and every strike it counts
(``share``), and applies theirs to its own counts (:meth:`Admission.apply_shared`): a participant reconnecting
in a loop, or breaking a rule, is held back on every process, within the time an event takes to cross (a few
milliseconds; that much is the slack).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from codeconnect.collab.protocol import CloseCode
from codeconnect.config import Settings

# Closes that mean the peer broke a rule (the others: the server restarting, the peer leaving, a slow link).
STRIKE_CODES = frozenset(
    {CloseCode.BAD_MESSAGE, CloseCode.TOO_LARGE, CloseCode.TOO_MANY, CloseCode.UNSUPPORTED_DATA, 1002, 1007}
)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last: float


@dataclass(slots=True)
class _Strikes:
    count: int
    until: float
    last: float


class Admission:
    """Seats and cooldowns of this process's live connections."""

    __slots__ = ("settings", "_strikes", "_connects", "_share")

    def __init__(self, settings: Settings, share: Callable[[bytes], None] | None = None) -> None:
        self.settings = settings
        self._strikes: OrderedDict[str, _Strikes] = OrderedDict()
        self._connects: OrderedDict[str, _Bucket] = OrderedDict()
        self._share = share

    def apply_shared(self, event: bytes) -> None:
        """Count another process's admission event: ``["c", participant]`` (a connection it admitted) or
        ``["s", participant, close code]`` (a close it counted as a strike)."""
        kind, participant, *rest = json.loads(event)
        if kind == "c":
            self._take(str(participant), force=True)
        elif kind == "s" and rest:
            self._strike(str(participant), int(rest[0]))

    def connect_wait(self, participant_id: str) -> float:
        """Take one new connection from ``participant_id``'s rate: 0 if it may connect now, else the seconds
        until it may (nothing is taken then)."""
        wait = self._take(participant_id, force=False)
        if wait == 0.0 and self._share is not None:
            self._share(json.dumps(["c", participant_id]).encode())
        return wait

    def _take(self, participant_id: str, *, force: bool) -> float:
        s = self.settings
        rate = s.ws_connects_per_minute / 60.0
        now = time.monotonic()
        bucket = self._connects.pop(participant_id, None)
        if bucket is None:
            bucket = _Bucket(float(s.ws_connect_burst), now)
        tokens = min(float(s.ws_connect_burst), bucket.tokens + (now - bucket.last) * rate)
        bucket.last = now
        if tokens >= 1.0 or force:
            # A connection another process admitted counts even past the burst (down to one burst of debt).
            bucket.tokens = max(-float(s.ws_connect_burst), tokens - 1.0)
            wait = 0.0
        else:
            bucket.tokens = tokens
            wait = (1.0 - tokens) / rate
        self._connects[participant_id] = bucket  # most recently used last
        if len(self._connects) > self.settings.ws_admission_tracked_participants:
            self._connects.popitem(last=False)
        return wait

    def cooling_down(self, participant_id: str) -> float:
        """Seconds left before ``participant_id`` may connect again (0: it may now)."""
        entry = self._strikes.get(participant_id)
        if entry is None:
            return 0.0
        now = time.monotonic()
        if now - entry.last > self.settings.ws_refusal_cooldown_max_seconds:
            del self._strikes[participant_id]
            return 0.0
        return max(0.0, entry.until - now)

    def strike(self, participant_id: str, code: int | None) -> None:
        """Count a close of ``participant_id``'s connection, if it was for breaking a rule."""
        if code not in STRIKE_CODES:
            return
        self._strike(participant_id, code)
        if self._share is not None:
            self._share(json.dumps(["s", participant_id, code]).encode())

    def _strike(self, participant_id: str, code: int) -> None:
        if code not in STRIKE_CODES:
            return
        now = time.monotonic()
        entry = self._strikes.pop(participant_id, None)
        longest = self.settings.ws_refusal_cooldown_max_seconds
        count = 1 if entry is None or now - entry.last > longest else entry.count + 1
        delay = min(longest, 2.0 ** (count - 1))
        self._strikes[participant_id] = _Strikes(count, now + delay, now)
        if len(self._strikes) > self.settings.ws_admission_tracked_participants:
            self._strikes.popitem(last=False)

    def seat_refusal(self, peers: list[tuple[str, bool]], participant_id: str, readonly: bool) -> str | None:
        """Why a new connection of ``participant_id`` may not join a room whose peers are ``peers``
        (participant id, read-only) — None when it may. Viewers never take the seats kept for editors."""
        s = self.settings
        if len(peers) >= s.max_connections_per_session:
            return "too many connections to this session"
        if sum(1 for pid, _ in peers if pid == participant_id) >= s.max_connections_per_participant:
            return "too many connections of this participant"
        if readonly:
            viewers = sum(1 for _, ro in peers if ro)
            if viewers >= s.max_connections_per_session - s.session_seats_kept_for_editors:
                return "the session's viewer seats are taken"
        return None
