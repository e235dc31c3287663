"""What a fuzzer attacking some sessions costs the others: an honest room's fan-out latency, quiet vs attacked.

Not a test. Starts ``codeconnect serve`` on a free port of 127.0.0.1 with a fresh SQLite database (per-connection
rate limit and refusal cooldown raised, as in the fuzz test, so the fuzzer's messages reach the parsers), opens
one honest room (one writer typing stamped edits, several readers), measures its fan-out latency (an edit's send
time until the last reader applied it) for ``--seconds`` quietly, then again for ``--seconds`` while the fuzzer
of ``tests/adversarial`` (a separate process) attacks other sessions, and prints p50/p95/p99 of both phases and
their ratio (target: fuzzed p99 within 2x of quiet):

    .venv/bin/python bench/fuzz_timing.py                     # 30 s per phase, 5 readers, 20 edits/s
    .venv/bin/python bench/fuzz_timing.py --seconds 10 --fuzzers 16 --seed 7
    .venv/bin/python bench/fuzz_timing.py --fuzz-rate 1000          # a fuzzer held to 1,000 messages/s
    .venv/bin/python bench/fuzz_timing.py --defences default  # the server's own rate limit and cooldown

The machine's two cores are shared by the server, the fuzzer and the honest clients: the attacked phase also
measures the fuzzer taking CPU from everyone, as an attacker on the same host would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from liveload import (  # noqa: E402
    DEFENCES,
    AttackerProcess,
    HonestClient,
    Latencies,
    ServerProcess,
    converged,
    new_session,
    new_token,
    percentiles,
)

FUZZ_SESSIONS = 6
TOKENS_PER_SESSION = 6


async def measure(writer: HonestClient, latencies: Latencies, seconds: float, rate: float) -> list[float]:
    """Type ``rate`` stamped edits a second for ``seconds``; the fan-out latencies of those edits (ms)."""
    latencies.take()
    interval = 1 / rate
    next_at = time.monotonic()
    end = next_at + seconds
    while (now := time.monotonic()) < end:
        if now < next_at:
            await asyncio.sleep(next_at - now)
        next_at += interval
        await writer.type("x")
    drain_until = time.monotonic() + 10
    while latencies.pending and time.monotonic() < drain_until:
        await asyncio.sleep(0.05)  # the last edits' fan-out, bounded
    return latencies.take()


def line(name: str, samples: list[float]) -> str:
    p50, p95, p99 = percentiles(samples)
    return f"{name:<8} edits {len(samples):>6}   p50 {p50:7.2f}   p95 {p95:7.2f}   p99 {p99:7.2f} ms"


async def main(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    server = await ServerProcess.start(DEFENCES[args.defences])
    clients: list[HonestClient] = []
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            honest = await new_session(http, "honest room")
            latencies = Latencies(expected=args.readers)
            writer = await HonestClient(
                f"{server.ws_url}/v1/collab/{honest}?token={await new_token(http, honest, 'Writer')}"
            ).connect()
            readers = [
                await HonestClient(
                    f"{server.ws_url}/v1/collab/{honest}?token={await new_token(http, honest, f'Reader {i}')}",
                    latencies,
                ).connect()
                for i in range(args.readers)
            ]
            clients = [writer, *readers]
            targets = []
            for s in range(FUZZ_SESSIONS):
                sid = await new_session(http, f"fuzzed {s}")
                for t in range(TOKENS_PER_SESSION):
                    role = "viewer" if t == TOKENS_PER_SESSION - 1 else "editor"
                    targets.append({"session_id": sid, "token": await new_token(http, sid, f"F{s}-{t}", role),
                                    "role": role})

        await measure(writer, latencies, min(3.0, args.seconds), args.rate)  # warm-up, not reported
        rss_quiet = server.rss_mib()
        cpu, started = server.cpu_seconds(), time.monotonic()
        quiet = await measure(writer, latencies, args.seconds, args.rate)
        cpu_quiet = (server.cpu_seconds() - cpu) / (time.monotonic() - started)

        # The fuzzer runs a little longer than the measured phase, which starts once it is attacking.
        attacker = AttackerProcess(server.ws_url, targets, args.seconds + 3, [
            "--connections", str(args.fuzzers), "--seed", str(seed), "--rate", str(args.fuzz_rate),
        ])
        await attacker.start()
        await asyncio.sleep(1)  # past its first connections' handshakes
        rss_start = server.rss_mib()
        cpu, started = server.cpu_seconds(), time.monotonic()
        fuzzed = await measure(writer, latencies, args.seconds, args.rate)
        cpu_fuzzed = (server.cpu_seconds() - cpu) / (time.monotonic() - started)
        rss_fuzzed = server.rss_mib()
        result = await attacker.wait() or {}
        stuck = await converged([clients])

        print(f"honest room: 1 writer, {args.readers} readers, {args.rate:g} edits/s, {args.seconds:g} s per phase; "
              f"defences {args.defences}")
        print(line("quiet", quiet) + f"   server CPU {100 * cpu_quiet:5.1f} %")
        print(line("fuzzed", fuzzed) + f"   server CPU {100 * cpu_fuzzed:5.1f} %")
        q, f = percentiles(quiet), percentiles(fuzzed)
        print("ratio    " + "   ".join(f"{name} {b / a:5.2f}x" for name, a, b in zip(("p50", "p95", "p99"), q, f,
                                                                                       strict=True)))
        print(f"target: fuzzed p99 within 2x of quiet: {'met' if f[2] <= 2 * q[2] else 'NOT met'}")
        print(
            f"fuzzer (seed {seed}, {args.fuzzers} connections, rate {args.fuzz_rate or 'unlimited'}): sent "
            f"{result.get('sent')}, delivered "
            f"{result.get('delivered')} in {result.get('seconds', 0):.1f} s, {result.get('connections')} "
            f"connections, closes {json.dumps(result.get('closes', {}))}, findings "
            f"{json.dumps(result.get('finding_counts', {}))}"
        )
        for finding in result.get("findings", []):
            batch = finding.get("batch") or [{}]
            brief = {k: v for k, v in finding.items() if k not in ("batch", "previous_batch")}
            print(f"finding: {json.dumps(brief)}; last of {len(batch)} messages: {json.dumps(batch[-1])}")
        print(
            f"server RSS: {rss_quiet:.0f} MiB quiet, {rss_start:.0f} -> {rss_fuzzed:.0f} MiB fuzzed; tracebacks in "
            f"its log: {server.tracebacks()}; honest room converged: {'yes' if not stuck else 'NO'}; honest "
            f"clients closed: {sum(c.closed.is_set() for c in clients)}"
        )
        return 0 if not stuck else 1
    finally:
        for c in clients:
            await c.close()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="length of each phase (default 30)")
    parser.add_argument("--readers", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20, help="the writer's edits per second (default 20)")
    parser.add_argument("--fuzzers", type=int, default=32, help="fuzzing connections (default 32)")
    parser.add_argument("--fuzz-rate", type=float, default=0, help="fuzz messages a second (default: unlimited)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--defences", choices=tuple(DEFENCES), default="none",
        help="none: per-connection rate limit and refusal cooldown out of the fuzzer's way, as in the fuzz test "
        "(default); cooldown: only the cooldown; default: the server's own settings, which refuse most of the "
        "fuzzer's reconnects",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
