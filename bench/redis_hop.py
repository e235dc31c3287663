"""The floor of one update relayed through Redis: what any design with one Redis hop per change costs here.

Not a test. Two processes against the local Redis (``--url``, default 127.0.0.1:6379, database 0; loopback
only): a publisher that sends one message at a time, spaced like S1's edits so nothing is ever batched
(``--gap-ms``, default 1), and reads Redis's reply; a subscriber that reads them. Raw RESP on asyncio streams with
uvloop, no client library and no document: the least a Python process can spend on its side of the hop. Prints
the CPU per message of the publisher (less what the same paced loop costs with nothing to send), of Redis
(``INFO cpu``) and of the subscriber, for a plain ``PUBLISH`` and for a script shaped like ours (``XADD`` with a
bounded length, ``PEXPIRE``, ``TIME``, the members looked up, one ``PUBLISH``)::

    .venv/bin/python bench/redis_hop.py --count 4000
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import resource
import subprocess
import sys
from urllib.parse import urlsplit

import uvloop

_SCRIPT = (
    "local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', 1000, '*', 'd', ARGV[1]) "
    "redis.call('PEXPIRE', KEYS[1], 3600000) local t = redis.call('TIME') "
    "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], 0, '+inf')) do "
    "redis.call('PUBLISH', 'bench:hop', KEYS[1] .. id .. ARGV[1]) end return id"
)
_PAYLOAD = b"x" * 60  # about one keystroke's update with its entry's fields


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _resp(*args: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit("a load run goes to a Redis on 127.0.0.1 or ::1 only")
    reader, writer = await asyncio.open_connection(host, parts.port or 6379)
    database = parts.path.strip("/") or "0"
    writer.write(_resp("SELECT", database))  # the URL's database, as the service would use it
    if not (await reader.readline()).startswith(b"+OK"):
        raise SystemExit(f"Redis refused database {database}")
    return reader, writer


async def _redis_cpu(url: str) -> float:
    reader, writer = await _connect(url)
    writer.write(_resp("INFO", "cpu"))
    size = int((await reader.readline())[1:])
    body = (await reader.readexactly(size + 2)).decode()
    writer.close()
    fields = dict(line.split(":", 1) for line in body.split("\r\n") if ":" in line)
    return float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"])


async def subscribe(url: str, count: int) -> None:
    reader, writer = await _connect(url)
    writer.write(_resp("SUBSCRIBE", "bench:hop"))
    await reader.readuntil(b":1\r\n")
    print("ready", flush=True)
    got, started = 0, None
    while got < count:
        data = await reader.read(65536)
        if not data:
            raise SystemExit("the subscriber's connection closed")
        started = _cpu() if started is None else started
        got += data.count(b"message\r\n")
    print(f"{(_cpu() - started) / count * 1e6:.1f}", flush=True)


async def publish(url: str, mode: str, count: int, gap: float) -> tuple[float, float]:
    reader, writer = await _connect(url)
    replies = 1
    command: bytes | None = None
    if mode == "script":
        writer.write(_resp("SCRIPT", "LOAD", _SCRIPT))
        await reader.readline()
        sha = (await reader.readline()).strip()
        writer.write(_resp("ZADD", "bench:hop:m", 1, "other") + _resp("DEL", "bench:hop:s"))
        await reader.readline()
        await reader.readline()
        command, replies = _resp("EVALSHA", sha, 2, "bench:hop:s", "bench:hop:m", _PAYLOAD), 2
    elif mode == "publish":
        command = _resp("PUBLISH", "bench:hop", _PAYLOAD)
    redis_before, before = await _redis_cpu(url), _cpu()
    for _ in range(count):
        if command is not None:
            writer.write(command)
            for _reply in range(replies):
                await reader.readline()
        await asyncio.sleep(gap)
    own, redis = (_cpu() - before) / count * 1e6, (await _redis_cpu(url) - redis_before) / count * 1e6
    writer.write(_resp("DEL", "bench:hop:s", "bench:hop:m"))
    await reader.readline()
    writer.close()
    return own, redis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--gap-ms", type=float, default=1.0)
    parser.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    uvloop.install()
    if args.subscriber:
        asyncio.run(subscribe(args.url, args.count))
        return
    idle, _ = asyncio.run(publish(args.url, "idle", args.count, args.gap_ms / 1000))
    print("| message | publisher µs | Redis µs | subscriber µs | all three µs |\n|---|---|---|---|---|")
    for mode in ("publish", "script"):
        sub = subprocess.Popen(
            [sys.executable, __file__, "--subscriber", "--url", args.url, "--count", str(args.count)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert sub.stdout is not None
        sub.stdout.readline()  # "ready": subscribed before the first message
        own, redis = asyncio.run(publish(args.url, mode, args.count, args.gap_ms / 1000))
        received = float(sub.stdout.readline())
        sub.wait(timeout=60)
        sent = own - idle
        print(f"| {mode} | {sent:.1f} | {redis:.1f} | {received:.1f} | {sent + redis + received:.1f} |")


if __name__ == "__main__":
    main()
