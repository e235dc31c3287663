"""Attackers that break no parser: slow readers, reconnect loops, ping floods, oversized frames.

Each runs one connection at a time until ``until`` (a ``time.monotonic()`` deadline), reconnecting whenever the
server lets it go, and counts what happened in a shared :class:`NuisanceStats`. The soak runs them beside the
fuzzer and an honest load (``bench/soak.py``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from tests.adversarial.fuzzing import QUERY_AWARENESS, awareness, frame, sync_step1

SLOW_READER_PATIENCE = 120.0  # a slow reader the server has not dropped after this long is reported


@dataclass
class NuisanceStats:
    slow_readers_dropped: int = 0
    slow_reader_seconds: list[float] = field(default_factory=list)  # time from connect to being dropped
    slow_readers_never_dropped: int = 0
    reconnects: int = 0
    pings_written: int = 0  # into our socket: the server reads them at its rate limit, drops the rest on close
    pongs_received: int = 0
    oversized_sent: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        seconds = sorted(self.slow_reader_seconds)
        return {
            "slow_readers_dropped": self.slow_readers_dropped,
            "slow_reader_drop_seconds_p50": seconds[len(seconds) // 2] if seconds else None,
            "slow_readers_never_dropped": self.slow_readers_never_dropped,
            "reconnects": self.reconnects,
            "pings_written": self.pings_written,
            "pongs_received": self.pongs_received,
            "oversized_sent": self.oversized_sent,
            "closes": dict(self.closes),
            "errors": dict(self.errors),
        }


async def upgrade(host: str, port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A TCP connection upgraded to WebSocket on ``path``; None if the server answered anything but 101."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    key = base64.b64encode(random.randbytes(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, TimeoutError):
        writer.close()
        return None
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        return None
    return reader, writer


async def _read_close(reader: asyncio.StreamReader, stats: NuisanceStats, pongs: bool = False) -> None:
    """Read the server's frames until it closes; count its close code (or ``none``) and pongs."""
    code = "none"
    try:
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            payload = await reader.readexactly(n)
            if b0 & 0x0F == 0x8:
                code = str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "1005"
                break
            if pongs and b0 & 0x0F == 0xA:
                stats.pongs_received += 1
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    stats.closes[code] += 1


async def slow_reader(host: str, port: int, path: str, until: float, stats: NuisanceStats) -> None:
    """Joins a room, then asks for the whole document and the room's presence over and over, below the message
    rate limit, and never reads a byte of the answers: the server must let it go (its send budget, its stall
    timeout) rather than hold the bytes for it. Dropped means the server cut the socket (our writes fail)."""
    mask = random.randbytes(4)
    # 150 messages a second, under the default limit of 200: this one is slow, not a flooder.
    asks = frame(sync_step1(b"\x00"), mask=mask) * 5 + frame(QUERY_AWARENESS, mask=mask) * 10
    while time.monotonic() < until:
        opened = await _open(host, port, path, stats)
        if opened is None:
            continue
        reader, writer = opened
        cast(asyncio.Transport, writer.transport).pause_reading()  # the kernel's buffers fill, then the server's
        started = time.monotonic()
        dropped = False
        try:
            me = random.randrange(1, 2**32)
            writer.write(frame(awareness([(me, 1, b'{"user":{"name":"slow"},"cursor":null}')]), mask=mask))
            while time.monotonic() < until and time.monotonic() - started < SLOW_READER_PATIENCE:
                if writer.is_closing():
                    dropped = True
                    break
                writer.write(asks)
                try:
                    await asyncio.wait_for(writer.drain(), 1.0)
                except TimeoutError:
                    continue  # our own send buffer is full: the server stopped reading us too
                await asyncio.sleep(0.1)
        except (ConnectionError, OSError):
            dropped = True
        finally:
            writer.transport.abort()
        if dropped:
            stats.slow_readers_dropped += 1
            stats.slow_reader_seconds.append(time.monotonic() - started)
        elif time.monotonic() - started >= SLOW_READER_PATIENCE:
            stats.slow_readers_never_dropped += 1


async def _open(
    host: str, port: int, path: str, stats: NuisanceStats
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        opened = await upgrade(host, port, path)
    except (OSError, TimeoutError) as exc:
        stats.errors[type(exc).__name__] += 1
        await asyncio.sleep(0.1)  # the server is refusing connections; try again shortly
        return None
    if opened is None:
        stats.errors["refused"] += 1
    return opened


async def reconnect_loop(host: str, port: int, paths: list[str], until: float, stats: NuisanceStats) -> None:
    """Connections that end as soon as they start, in every way a flaky client or a scanner ends them."""
    rng = random.Random()
    while time.monotonic() < until:
        stats.reconnects += 1
        how = rng.randrange(5)
        try:
            if how == 0:  # TCP only
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                writer.transport.abort()
                continue
            if how == 1:  # half a request line
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                writer.write(b"GET /v1/collab/x?token=")
                await writer.drain()
                writer.transport.abort()
                continue
            opened = await upgrade(host, port, rng.choice(paths))
            if opened is None:
                continue
            reader, writer = opened
            if how == 2:  # upgraded, then reset
                writer.transport.abort()
            elif how == 3:  # upgraded, synced, then a clean close
                writer.write(frame(sync_step1(b"\x00"), mask=b"\x00\x00\x00\x00"))
                writer.write(frame((1000).to_bytes(2, "big"), 0x8, mask=b"\x00\x00\x00\x00"))
                await asyncio.wait_for(_read_close(reader, stats), 10)
                writer.close()
            else:  # upgraded, then the TCP connection half-closed
                writer.write_eof()
                await asyncio.wait_for(_read_close(reader, stats), 10)
                writer.close()
        except (OSError, TimeoutError) as exc:
            stats.errors[type(exc).__name__] += 1


async def ping_flood(host: str, port: int, path: str, until: float, stats: NuisanceStats) -> None:
    """Pings as fast as the socket takes them, reading the pongs."""
    mask = random.randbytes(4)
    pings = b"".join(frame(random.randbytes(random.randrange(126)), 0x9, mask=mask) for _ in range(100))
    while time.monotonic() < until:
        opened = await _open(host, port, path, stats)
        if opened is None:
            continue
        reader, writer = opened
        reading = asyncio.create_task(_read_close(reader, stats, pongs=True))
        try:
            while time.monotonic() < until and not reading.done():
                writer.write(pings)
                stats.pings_written += 100
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            with contextlib.suppress(asyncio.CancelledError):
                reading.cancel()
                await reading


async def oversizer(host: str, port: int, path: str, max_bytes: int, until: float, stats: NuisanceStats) -> None:
    """Messages over the size limit: mostly a header announcing one (refused as soon as it arrives), now and then
    the whole message."""
    rng = random.Random()
    mask = random.randbytes(4)
    while time.monotonic() < until:
        opened = await _open(host, port, path, stats)
        if opened is None:
            continue
        reader, writer = opened
        try:
            if rng.random() < 0.05:
                writer.write(frame(b"\x00\x02" + b"\x00" * (max_bytes + 8), mask=mask))
            else:
                size = rng.choice((max_bytes + 1, 4 * max_bytes, 2**40))
                writer.write(frame(b"\x00\x02" + b"\x00" * 1000, mask=mask, length=size)[: 14 + 1000])
            stats.oversized_sent += 1
            await writer.drain()
            await asyncio.wait_for(_read_close(reader, stats), 15)
        except (ConnectionError, OSError, TimeoutError) as exc:
            stats.errors[type(exc).__name__] += 1
        finally:
            writer.transport.abort()
        await asyncio.sleep(0.2)  # a few a second is plenty: each is refused by its header alone
