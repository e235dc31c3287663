"""Attackers of the live endpoint over raw sockets: the fuzzer (many connections writing shots from
:mod:`tests.adversarial.shots`, reconnecting after each close), and a command line that also runs the soak's
nuisances (:mod:`tests.adversarial.nuisances`).

The WebSocket client is written here on a plain asyncio stream: a client library refuses to send most of what
a fuzzer must send (unmasked frames, reserved bits, lying lengths), and framing by hand costs next to nothing,
which leaves the CPU to the server under test.

A connection does not wait for replies to what it sends: it writes a batch of shots (from
:mod:`tests.adversarial.shots`) with sync step 1 messages (*sentinels*) among them, which the server answers once
it has handled everything before them. Benign shots come first, then a sentinel, then one risky shot, then
another sentinel: a close before the first sentinel's answer was caused by a benign shot (a finding), and the
counts say how many messages the server read (``delivered``: acknowledged batches, plus the risky message a
close answered) as well as how many were written.

Run as a program, it attacks a server it did not start (the benchmarks use that):

    python -m tests.adversarial.attacker --ws ws://127.0.0.1:PORT --targets targets.json --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.adversarial.fuzzing import (
    EXPECTED_CLOSES,
    Corpus,
    awareness_entries,
    build_corpus,
    frame,
    is_valid_step1,
    read_var_uint,
    strict_json,
    sync_step1,
)
from tests.adversarial.nuisances import NuisanceStats, oversizer, ping_flood, reconnect_loop, slow_reader, upgrade
from tests.adversarial.shots import Shot, ShotFactory

STALL_SECONDS = 15.0  # a batch the server neither answers nor closes on within this is reported as a stall
MAX_FINDINGS = 30
SAMPLES_PER_FINDING = 3


@dataclass(frozen=True)
class Target:
    """A session and a participant token to attack it with."""

    session_id: str
    token: str
    role: str = "editor"


@dataclass
class FuzzStats:
    """What a fuzz run did. ``delivered`` counts messages the server certainly read; ``sent`` every one written."""

    seed: int
    seconds: float = 0.0
    sent: int = 0
    delivered: int = 0
    batches: int = 0
    acked_batches: int = 0
    connections: int = 0
    refused: int = 0  # connections refused before the upgrade completed
    refused_after_upgrade: int = 0  # closed before they were seated (a full session, a cooldown)
    stalls: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    received: int = 0
    received_bytes: int = 0
    max_step2_bytes: int = 0
    bad_relays: int = 0  # messages from the server that a y-websocket client could not read
    findings: list[dict[str, Any]] = field(default_factory=list)  # a few samples of each kind
    finding_counts: Counter[str] = field(default_factory=Counter)

    def finding(self, what: str, **details: Any) -> None:
        self.finding_counts[what] += 1
        if self.finding_counts[what] <= SAMPLES_PER_FINDING and len(self.findings) < MAX_FINDINGS:
            self.findings.append({"what": what, **details})

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["by_kind"] = dict(self.by_kind)
        out["closes"] = dict(self.closes)
        out["finding_counts"] = dict(self.finding_counts)
        return out


class RawConnection:
    """One WebSocket client connection on an asyncio stream: writes whatever it is given, reads the server's
    frames, answers its pings and its close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: FuzzStats) -> None:
        self.reader = reader
        self.writer = writer
        self.stats = stats
        self.closed = asyncio.Event()
        self.close_code: int | None = None  # None: the socket ended without a close frame
        self.close_reason = ""
        self.step2_received = 0
        self.step2_event = asyncio.Event()
        self.server_vector: bytes | None = None  # the state vector in the server's first step 1
        self.first_step1 = asyncio.Event()
        # The server's greeting is its step 1, then (for a small document) a step 2 with the whole document,
        # written together before anything we send is read: a step 2 right after that step 1 is no answer.
        self._after_step1 = False
        self.own_id = 0
        self.own_clock_seen = 0
        self.bad_relay: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, host: str, port: int, path: str, stats: FuzzStats) -> RawConnection | None:
        """Connect and upgrade; None if the server refused before the upgrade (a status other than 101)."""
        opened = await upgrade(host, port, path)
        if opened is None:
            return None
        conn = cls(*opened, stats)
        conn._task = asyncio.create_task(conn._read())
        return conn

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.writer.drain()

    def abort(self) -> None:
        self.writer.transport.abort()

    async def finish(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        reader = self.reader
        try:
            while True:
                b0, b1 = await reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(await reader.readexactly(2), "big")
                elif n == 127:
                    n = int.from_bytes(await reader.readexactly(8), "big")
                if b1 & 0x80:  # servers must not mask (RFC 6455 5.1)
                    self.stats.finding("masked frame from the server", header=bytes((b0, b1)).hex())
                    await reader.readexactly(4)
                payload = await reader.readexactly(n)
                opcode = b0 & 0x0F
                if opcode == 0x8:
                    self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    self.close_reason = payload[2:].decode("utf-8", "replace")
                    self.write(frame(payload[:2], 0x8))
                    break
                if opcode == 0x9:
                    self.write(frame(payload, 0xA))
                elif opcode == 0x2:
                    self._message(payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            self.step2_event.set()
            self.first_step1.set()
            if not self.writer.is_closing():
                self.writer.close()

    def _message(self, data: bytes) -> None:
        stats = self.stats
        stats.received += 1
        stats.received_bytes += len(data)
        if not data:
            return self._bad(data, "empty message")
        greeting, self._after_step1 = self._after_step1, False
        kind = data[0]
        if kind == 0:
            if len(data) < 3 or data[1] > 2:
                return self._bad(data, "sync message")
            try:
                size, pos = read_var_uint(data, 2)
            except ValueError:
                return self._bad(data, "sync message")
            if pos + size != len(data):
                return self._bad(data, "sync message length")
            if data[1] == 0 and self.server_vector is None:
                self.server_vector = data[pos:]
                self._after_step1 = True
                self.first_step1.set()
            elif data[1] == 1 and greeting:
                stats.max_step2_bytes = max(stats.max_step2_bytes, len(data))
            elif data[1] == 1:
                self.step2_received += 1
                stats.max_step2_bytes = max(stats.max_step2_bytes, len(data))
                self.step2_event.set()
        elif kind == 1:
            try:
                entries = awareness_entries(data)
            except ValueError:
                return self._bad(data, "awareness message")
            for client, clock, state in entries:
                if client == self.own_id:
                    self.own_clock_seen = max(self.own_clock_seen, clock)
                try:
                    strict_json(state)
                except (ValueError, RecursionError):
                    # A y-websocket client parses every state with JSON.parse: one it cannot read breaks the
                    # whole awareness update for everyone who receives it.
                    return self._bad(data, "awareness state that JSON.parse refuses", state=state[:200].hex())
        elif kind != 2:
            return self._bad(data, "unknown message type")

    def _bad(self, data: bytes, what: str, **details: Any) -> None:
        self.stats.bad_relays += 1
        if self.bad_relay is None:
            self.bad_relay = data
            self.stats.finding(f"server sent a malformed {what}", message=data[:200].hex(), **details)


class Fuzzer:
    """Fuzz connections against ``targets`` until ``deliver`` messages were delivered or ``seconds`` passed."""

    def __init__(
        self, ws_base: str, targets: list[Target], *, seed: int, connections: int = 32, batch: int = 24,
        max_message_bytes: int = 2 * 1024 * 1024, max_state_bytes: int = 16 * 1024, rate: float = 0,
    ) -> None:
        parts = urlsplit(ws_base)
        assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "the fuzzer attacks local servers only"
        self.host = parts.hostname
        self.port = parts.port or 80
        self.targets = targets
        self.seed = seed
        self.connections = connections
        self.batch = batch
        self.max_message_bytes = max_message_bytes
        self.max_state_bytes = max_state_bytes
        self.stats = FuzzStats(seed=seed)
        self.corpus: Corpus = build_corpus(random.Random(seed))
        self._deadline = self._earliest = 0.0
        self._deliver = 0
        self.rate = rate  # messages a second over all connections; 0: as fast as the server takes them
        self._next_slot = 0.0
        self.stop = asyncio.Event()

    async def _pace(self, messages: int) -> None:
        """With a ``rate``, wait for this batch's turn: the batches of all connections are spread evenly."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        slot = max(self._next_slot, now)
        self._next_slot = slot + messages / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    def done(self) -> bool:
        now = time.monotonic()
        return (
            self.stop.is_set() or now >= self._deadline
            or (0 < self._deliver <= self.stats.delivered and now >= self._earliest)
        )

    async def run(self, *, seconds: float, deliver: int = 0, min_seconds: float = 0) -> FuzzStats:
        """Fuzz for ``seconds``, or less: until ``deliver`` messages were delivered, after ``min_seconds``."""
        started = time.monotonic()
        self._deadline = started + seconds
        self._earliest = started + min_seconds
        self._deliver = deliver
        await asyncio.gather(*(self._worker(i) for i in range(self.connections)))
        self.stats.seconds = time.monotonic() - started
        return self.stats

    def _path(self, rng: random.Random) -> tuple[str, bool]:
        """The URL path of the next connection and whether it should be admitted."""
        target = rng.choice(self.targets)
        roll = rng.random()
        if roll < 0.01:
            return f"/v1/collab/{target.session_id}?token=not-a-token", False
        if roll < 0.015:
            return f"/v1/collab/{rng.randbytes(8).hex()}?token={target.token}", False
        if roll < 0.02:
            return rng.choice(("/v1/collab/", "/v1/collab/..%2f..%2fetc", f"/v1/collab/{'x' * 300}")), False
        return f"/v1/collab/{target.session_id}?token={target.token}", True

    async def _worker(self, index: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + index)
        shots = ShotFactory(
            rng, self.corpus, max_message_bytes=self.max_message_bytes, max_state_bytes=self.max_state_bytes
        )
        stats = self.stats
        while not self.done():
            path, admitted = self._path(rng)
            try:
                conn = await RawConnection.open(self.host, self.port, path, stats)
            except (OSError, TimeoutError):
                conn = None
            if conn is None:
                stats.refused += 1
                await asyncio.sleep(0.05)  # the server turns connections away: do not spin on it
                continue
            stats.connections += 1
            try:
                await self._attack(conn, shots, rng, admitted)
            finally:
                stats.closes[str(conn.close_code) if conn.close_code is not None else "none"] += 1
                await conn.finish()

    async def _attack(self, conn: RawConnection, shots: ShotFactory, rng: random.Random, admitted: bool) -> None:
        stats = self.stats
        conn.own_id = rng.randrange(1, 2**32)
        hello = shots.start(conn.own_id)
        if not admitted:
            # Messages before the refusal must be dropped, not queued: write a few and wait for the close.
            conn.write(hello.wire + b"".join(shots.benign().wire for _ in range(5)))
            await _wait(conn.closed, STALL_SECONDS)
            if conn.close_code not in (4401, 4404, 4413):
                stats.finding("a refused connection was not closed with 4401/4404", code=conn.close_code)
            return
        # Seated once the server's step 1 arrives; a refusal (a full session, a participant cooling down after
        # its last close) comes as a close instead, and nothing is sent on such a connection.
        if not await _wait(conn.first_step1, STALL_SECONDS):
            stats.stalls += 1
            stats.finding("no step 1 and no close after the upgrade", seconds=STALL_SECONDS)
            return
        if conn.server_vector is None:
            stats.refused_after_upgrade += 1
            return
        pending = [hello]
        expected = 0  # step 2 messages the server owes this connection so far
        previous: list[Shot] = []
        while not self.done() and not conn.closed.is_set():
            batch = shots.batch(self.batch, pending)
            pending = []
            *benign, last = batch
            # A sentinel after the benign shots tells a close they caused (a finding) from one the risky shot
            # caused (expected); a second one after the risky shot acknowledges the whole batch.
            sentinel = shots.sentinel(conn.server_vector)
            expected_benign = expected + sum(s.step1 for s in benign) + 1
            wire = b"".join(s.wire for s in benign) + sentinel.wire + last.wire
            if not last.terminal:
                wire += sentinel.wire
            expected = expected_benign + last.step1 + 1
            await self._pace(len(batch))
            conn.write(wire)
            stats.sent += len(batch)
            stats.batches += 1
            stats.by_kind.update(s.kind for s in batch)
            await conn.drain()
            if last.kind == "abrupt":
                conn.abort()
                return
            if not last.terminal and await self._acked(conn, expected):
                stats.acked_batches += 1
                stats.delivered += len(batch)
                if conn.own_clock_seen >= shots.clock:  # a mutated clock was accepted: stay above it
                    shots.clock = conn.own_clock_seen
                previous = batch
                continue
            closed = await _wait(conn.closed, STALL_SECONDS)
            benign_done = conn.step2_received >= expected_benign
            if closed and conn.close_code is not None and benign_done:
                stats.delivered += len(batch)
            elif benign_done:
                stats.delivered += len(benign)
            self._judge(conn, batch, previous, closed, benign_done)
            return

    async def _acked(self, conn: RawConnection, expected: int) -> bool:
        deadline = time.monotonic() + STALL_SECONDS
        while conn.step2_received < expected:
            if conn.closed.is_set():
                return conn.step2_received >= expected
            conn.step2_event.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await _wait(conn.step2_event, remaining):
                return False
        return True

    def _judge(
        self, conn: RawConnection, batch: list[Shot], previous: list[Shot], closed: bool, benign_done: bool
    ) -> None:
        """Record what a batch that ended its connection says about the server."""
        stats = self.stats
        code = conn.close_code
        shots = [s.describe() for s in batch]
        reason = conn.close_reason
        if not closed:
            stats.stalls += 1
            stats.finding("no answer and no close", seconds=STALL_SECONDS, batch=shots)
        elif code is not None and batch[-1].closes is not None:
            if code not in batch[-1].closes:
                what = f"closed with {code}, not {sorted(batch[-1].closes)}"
                stats.finding(what, code=code, reason=reason, batch=shots)
        elif code is not None and code not in EXPECTED_CLOSES:
            previous_shots = [s.describe() for s in previous]
            stats.finding(f"closed with {code}", code=code, reason=reason, batch=shots, previous_batch=previous_shots)
        elif code is None and not batch[-1].terminal:
            stats.finding("socket closed without a close frame", batch=shots)
        elif not benign_done:
            what = f"closed with {code} before the benign messages were answered"
            stats.finding(what, code=code, reason=reason, batch=shots[:-1])


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


REFUSED = -1  # what :func:`replay` returns when the connection was not seated
CUT = 1006  # ... and when the server ended the connection without a close frame (RFC 6455 7.1.5)


async def replay(ws_base: str, target: Target, messages: list[bytes], timeout: float = 10) -> int | None:
    """Send ``messages`` (binary, one frame each) on a fresh connection: the close code they got (:data:`CUT`
    without a close frame), None if the connection stayed open until a sentinel after them was answered,
    :data:`REFUSED` if it was never seated."""
    parts = urlsplit(ws_base)
    stats = FuzzStats(seed=0)
    path = f"/v1/collab/{target.session_id}?token={target.token}"
    conn = await RawConnection.open(parts.hostname or "127.0.0.1", parts.port or 80, path, stats)
    if conn is None:
        return REFUSED
    try:
        await _wait(conn.first_step1, timeout)
        if conn.server_vector is None:
            return REFUSED
        expected = sum(is_valid_step1(m) for m in messages) + 1
        mask = b"\x01\x02\x03\x04"
        conn.write(b"".join(frame(m, mask=mask) for m in messages) + frame(sync_step1(conn.server_vector), mask=mask))
        await conn.drain()
        deadline = time.monotonic() + timeout
        while conn.step2_received < expected and not conn.closed.is_set() and time.monotonic() < deadline:
            conn.step2_event.clear()
            await _wait(conn.step2_event, max(0.0, deadline - time.monotonic()))
        if conn.closed.is_set():
            return CUT if conn.close_code is None else conn.close_code
        return None
    finally:
        await conn.finish()


async def narrow(ws_base: str, targets: list[Target], stats: FuzzStats, limit: int = 8) -> None:
    """For findings of a close (an unexpected code, or a close before the benign messages were answered),
    replay each binary message of the batch alone on a fresh connection and name the first that gets the same
    close (added to the finding as ``culprit``). Participants cooling down after a close are skipped."""
    narrowed = 0
    turn = 0
    for finding in stats.findings:
        code = finding.get("code")
        if code is None or narrowed >= limit:
            continue
        narrowed += 1
        for shot in finding["batch"]:
            if shot["framing"] != "binary" or shot["kind"] == "hello":
                continue
            for _ in range(len(targets)):
                turn += 1
                got = await replay(ws_base, targets[turn % len(targets)], [bytes.fromhex(shot["hex"])])
                if got != REFUSED:
                    break
            if got == code:
                finding["culprit"] = shot
                break


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ws", required=True, help="ws://127.0.0.1:PORT of the server")
    parser.add_argument("--targets", required=True, help="JSON file: [{session_id, token, role}, ...]")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=32, help="fuzzing connections")
    parser.add_argument("--rate", type=float, default=0, help="fuzz messages a second in all (default: no limit)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--slow-readers", type=int, default=0)
    parser.add_argument("--reconnectors", type=int, default=0)
    parser.add_argument("--pingers", type=int, default=0)
    parser.add_argument("--oversizers", type=int, default=0)
    parser.add_argument("--max-message-bytes", type=int, default=2 * 1024 * 1024)
    parser.add_argument("--report-every", type=float, default=0, help="print a JSON line of counts every N s")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with open(args.targets) as f:
        targets = [Target(**t) for t in json.load(f)]

    async def main() -> dict[str, Any]:
        fuzzer = Fuzzer(
            args.ws, targets, seed=seed, connections=args.connections, max_message_bytes=args.max_message_bytes,
            rate=args.rate,
        )
        nuisance = NuisanceStats()
        host, port = fuzzer.host, fuzzer.port
        until = time.monotonic() + args.seconds
        paths = [f"/v1/collab/{t.session_id}?token={t.token}" for t in targets]
        rng = random.Random(seed)
        others = [
            *(slow_reader(host, port, rng.choice(paths), until, nuisance) for _ in range(args.slow_readers)),
            *(reconnect_loop(host, port, paths, until, nuisance) for _ in range(args.reconnectors)),
            *(ping_flood(host, port, rng.choice(paths), until, nuisance) for _ in range(args.pingers)),
            *(oversizer(host, port, rng.choice(paths), args.max_message_bytes, until, nuisance)
              for _ in range(args.oversizers)),
        ]

        def counts() -> dict[str, Any]:
            s = fuzzer.stats
            return {"sent": s.sent, "delivered": s.delivered, "connections": s.connections, "closes": dict(s.closes),
                    "stalls": s.stalls, "findings": dict(s.finding_counts), "nuisances": nuisance.as_dict()}

        async def report() -> None:
            while True:
                await asyncio.sleep(args.report_every)
                print(json.dumps({"progress": counts()}), flush=True)

        print(json.dumps({"started": True, "seed": seed}), flush=True)
        reporter = asyncio.create_task(report()) if args.report_every > 0 else None
        try:
            stats, _ = await asyncio.gather(fuzzer.run(seconds=args.seconds), asyncio.gather(*others))
        finally:
            if reporter is not None:
                reporter.cancel()
        return {**stats.as_dict(), "nuisances": nuisance.as_dict()}

    print(json.dumps({"result": asyncio.run(main())}), flush=True)


if __name__ == "__main__":
    _main()
