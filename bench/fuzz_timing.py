"""What a fuzzer attacking some sessions costs the others: an honest room's fan-out latency, quiet vs attacked.

Not a test. Starts ``codeconnect serve`` on a free port of 127.0.0.1 with a fresh SQLite database (per-connection
rate limit and refusal cooldown raised, as in the fuzz test, so the fuzzer's messages reach the parsers), opens
one honest room (one writer typing stamped edits, several readers), and measures its fan-out latency (an edit's
send time until the last reader applied it) in ``--rounds`` pairs of phases of ``--seconds`` each: quiet, then
while the fuzzer of ``tests/adversarial`` (a separate process) attacks other sessions. Alternating the phases
keeps a change in the machine's other load from landing on one side only. It prints p50/p95/p99 of all quiet and
all fuzzed edits and their ratio (target: fuzzed p99 within 2x of quiet):

    .venv/bin/python bench/fuzz_timing.py                     # 3 rounds of 10 s + 10 s, unlimited fuzzer
    .venv/bin/python bench/fuzz_timing.py --fuzz-rate 500 --pin     # a fuzzer held to 500 messages/s
    .venv/bin/python bench/fuzz_timing.py --defences default  # the server's own rate limit and cooldown

By default the machine's cores are shared by the server, the fuzzer and the honest clients: the attacked phase
then also measures the fuzzer taking CPU from everyone, as an attacker on the same host would. ``--pin`` puts the
fuzzer on the last core and the server and honest clients on the others, as an attacker on another host would
be: what is left is what the attack costs inside the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from liveload import (  # noqa: E402
    DEFENCES,
    AttackerProcess,
    HonestClient,
    Latencies,
    ServerProcess,
    converged,
    cpu_seconds,
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


def line(name: str, samples: list[float], cpu: float, attacker_cpu: float | None = None) -> str:
    p50, p95, p99 = percentiles(samples)
    text = (
        f"{name:<8} edits {len(samples):>6}   p50 {p50:7.2f}   p95 {p95:7.2f}   p99 {p99:7.2f} ms   "
        f"server CPU {100 * cpu:5.1f} %"
    )
    if attacker_cpu is not None:
        text += f"   fuzzer CPU {100 * attacker_cpu:5.1f} %"
    return text


def pin(pid: int, cpus: set[int]) -> None:
    """Keep ``pid``, its threads and the threads it starts later on ``cpus``."""
    tasks = Path(f"/proc/{pid or os.getpid()}/task")
    for task in tasks.iterdir() if tasks.exists() else ():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:
            pass  # a thread that ended meanwhile
    os.sched_setaffinity(pid, cpus)


async def provision_targets(http: httpx.AsyncClient) -> list[dict[str, str]]:
    targets = []
    for s in range(FUZZ_SESSIONS):
        sid = await new_session(http, f"fuzzed {s}")
        for t in range(TOKENS_PER_SESSION):
            role = "viewer" if t == TOKENS_PER_SESSION - 1 else "editor"
            targets.append({"session_id": sid, "token": await new_token(http, sid, f"F{s}-{t}", role), "role": role})
    return targets


async def fuzzed_phase(
    args: argparse.Namespace,
    server: ServerProcess,
    targets: list[dict[str, str]],
    seed: int,
    writer: HonestClient,
    latencies: Latencies,
    fuzzer_cores: set[int],
) -> tuple[list[float], float, float, dict[str, Any]]:
    """The honest room's latencies while the fuzzer attacks ``server``'s ``targets``; the CPU seconds ``server``
    and the fuzzer used meanwhile, and the fuzzer's report."""
    # The fuzzer runs a little longer than the measured phase, which starts once it is attacking.
    attacker = AttackerProcess(
        server.ws_url,
        targets,
        args.seconds + 3,
        ["--connections", str(args.fuzzers), "--seed", str(seed), "--rate", str(args.fuzz_rate)],
    )
    await attacker.start()
    assert attacker.process is not None
    if args.pin or args.server_core:
        pin(attacker.process.pid, fuzzer_cores)
    if args.attacker_nice:
        os.setpriority(os.PRIO_PROCESS, attacker.process.pid, args.attacker_nice)
    await asyncio.sleep(1)  # past its first connections' handshakes
    cpu, cpu_a, started = server.cpu_seconds(), cpu_seconds(attacker.process.pid), time.monotonic()
    measured = await measure(writer, latencies, args.seconds, args.rate)
    cpu = server.cpu_seconds() - cpu
    cpu_a = cpu_seconds(attacker.process.pid) - cpu_a
    span = time.monotonic() - started
    result = await attacker.wait() or {}
    return measured, cpu * args.seconds / span, cpu_a * args.seconds / span, result


async def main(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    cores = sorted(os.sched_getaffinity(0))
    if (args.pin or args.server_core) and len(cores) < 2:
        raise SystemExit("--pin and --server-core need at least two cores")
    if args.pin and args.server_core:
        raise SystemExit("--pin and --server-core are two different layouts: choose one")
    fuzzer_cores, others = {cores[-1]}, set(cores[:-1])
    if args.server_core:
        # The measured server alone on the first core; the fuzzer, the second server and the honest clients share
        # the others, as when the attacker and the honest people are on machines of their own.
        fuzzer_cores, others = set(cores[1:]), set(cores[1:])
    server = await ServerProcess.start(DEFENCES[args.defences])
    if args.pin:
        pin(server.process.pid, others)
        pin(0, others)
    if args.server_core:
        pin(server.process.pid, {cores[0]})
        pin(0, others)
    clients: list[HonestClient] = []
    decoy: ServerProcess | None = None
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
            targets = await provision_targets(http)
        if args.control:
            decoy = await ServerProcess.start(DEFENCES[args.defences])
            if args.server_core:
                pin(decoy.process.pid, others)
            async with httpx.AsyncClient(base_url=decoy.base_url, timeout=30) as http:
                decoy_targets = await provision_targets(http)

        await measure(writer, latencies, min(3.0, args.seconds), args.rate)  # warm-up, not reported
        rss_quiet = server.rss_mib()
        quiet: list[float] = []
        fuzzed: list[float] = []
        control: list[float] = []
        cpu_control = 0.0
        cpu_quiet = cpu_fuzzed = cpu_attacker = span_quiet = span_fuzzed = 0.0
        results: list[dict[str, Any]] = []
        for round_ in range(args.rounds):
            cpu, started = server.cpu_seconds(), time.monotonic()
            quiet += await measure(writer, latencies, args.seconds, args.rate)
            cpu_quiet += server.cpu_seconds() - cpu
            span_quiet += time.monotonic() - started

            if decoy is not None:
                # The same fuzzer against another server process: the machine as loaded, this server not.
                latencies_d, cpu_d, _, _ = await fuzzed_phase(
                    args, decoy, decoy_targets, seed + round_, writer, latencies, fuzzer_cores
                )
                control += latencies_d
                cpu_control += cpu_d
            lat, cpu_s, cpu_a, result = await fuzzed_phase(
                args, server, targets, seed + round_, writer, latencies, fuzzer_cores
            )
            fuzzed += lat
            cpu_fuzzed += cpu_s
            cpu_attacker += cpu_a
            span_fuzzed += args.seconds
            results.append(result)
        rss_fuzzed = server.rss_mib()
        stuck = await converged([clients])

        print(
            f"honest room: 1 writer, {args.readers} readers, {args.rate:g} edits/s; {args.rounds} rounds of "
            f"{args.seconds:g} s quiet + {args.seconds:g} s fuzzed; defences {args.defences}; "
            + (
                f"fuzzer pinned to CPU {cores[-1]}"
                if args.pin
                else f"server alone on CPU {cores[0]}"
                if args.server_core
                else "cores shared"
            )
        )
        print(line("quiet", quiet, cpu_quiet / span_quiet))
        print(line("fuzzed", fuzzed, cpu_fuzzed / span_fuzzed, cpu_attacker / span_fuzzed))
        q, f = percentiles(quiet), percentiles(fuzzed)
        print(
            "ratio    "
            + "   ".join(f"{name} {b / a:5.2f}x" for name, a, b in zip(("p50", "p95", "p99"), q, f, strict=True))
        )
        print(f"target: fuzzed p99 within 2x of quiet: {'met' if f[2] <= 2 * q[2] else 'NOT met'}")
        if control:
            c = percentiles(control)
            print(
                line("control", control, cpu_control / (args.seconds * args.rounds))
                + "   (the fuzzer attacking another process)"
            )
            print(
                "fuzzed / control   "
                + "   ".join(f"{name} {b / a:5.2f}x" for name, a, b in zip(("p50", "p95", "p99"), c, f, strict=True))
            )
        closes: Counter[str] = Counter()
        findings: Counter[str] = Counter()
        for r in results:
            closes.update(r.get("closes", {}))
            findings.update(r.get("finding_counts", {}))
        delivered = sum(r.get("delivered") or 0 for r in results)
        print(
            f"fuzzer (seed {seed}, {args.fuzzers} connections, rate {args.fuzz_rate or 'unlimited'}): sent "
            f"{sum(r.get('sent') or 0 for r in results)}, delivered {delivered} "
            f"({delivered / max(1e-9, sum(r.get('seconds', 0) for r in results)):.0f}/s), "
            f"{sum(r.get('connections') or 0 for r in results)} connections, closes {json.dumps(dict(closes))}, "
            f"findings {json.dumps(dict(findings))}"
        )
        for r in results:
            for finding in r.get("findings", []):
                batch = finding.get("batch") or [{}]
                brief = {k: v for k, v in finding.items() if k not in ("batch", "previous_batch")}
                print(f"finding: {json.dumps(brief)}; last of {len(batch)} messages: {json.dumps(batch[-1])}")
        print(
            f"server RSS: {rss_quiet:.0f} MiB before, {rss_fuzzed:.0f} MiB after; tracebacks in its log: "
            f"{server.tracebacks()}; honest room converged: {'yes' if not stuck else 'NO'}; honest clients closed: "
            f"{sum(c.closed.is_set() for c in clients)}"
        )
        return 0 if not stuck else 1
    finally:
        for c in clients:
            await c.close()
        server.stop()
        if decoy is not None:
            decoy.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of quiet and fuzzed phases (default 3)")
    parser.add_argument("--pin", action="store_true", help="the fuzzer on a core of its own")
    parser.add_argument(
        "--server-core",
        action="store_true",
        help="the measured server on a core of its own; the fuzzer, the control server and the honest clients on "
        "the others (use --attacker-nice so the fuzzer does not delay the honest clients on their shared core)",
    )
    parser.add_argument(
        "--attacker-nice", type=int, default=0, help="the fuzzer's nice value (19: it gets only idle CPU)"
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="also a third phase a round: the same fuzzer against a second server process (the machine loaded "
        "as much, this server not), to tell what the attack costs inside the server from what it costs the machine",
    )
    parser.add_argument("--readers", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20, help="the writer's edits per second (default 20)")
    parser.add_argument("--fuzzers", type=int, default=32, help="fuzzing connections (default 32)")
    parser.add_argument("--fuzz-rate", type=float, default=0, help="fuzz messages a second (default: unlimited)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--defences",
        choices=tuple(DEFENCES),
        default="none",
        help="none: per-connection rate limit and refusal cooldown out of the fuzzer's way, as in the fuzz test "
        "(default); cooldown: only the cooldown; default: the server's own settings, which refuse most of the "
        "fuzzer's reconnects",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
