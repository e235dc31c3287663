"""A soak: S1-shaped honest load with attackers mixed in, reported every minute.

Not a test. Starts ``codeconnect serve`` on a free port of 127.0.0.1 with a fresh SQLite database, provisions
S1's shape over REST (200 rooms x 2 clients, each typing 2 stamped edits a second at a random phase), and runs,
in a separate process, the attackers of ``tests/adversarial``: fuzzing connections, slow readers that never
read, reconnect loops, ping floods and oversized frames, against sessions of their own. Every ``--report-every``
seconds it prints the server's RSS and open sockets, the honest load's fan-out p50/p99 over that interval
(an edit's send time until the other member applied it), honest edits and errors, and the attackers' counts.
At the end every room must have converged.

    .venv/bin/python bench/soak.py                          # 600 s
    .venv/bin/python bench/soak.py --seconds 120 --report-every 30
    .venv/bin/python bench/soak.py --defences default       # the server's own rate limit and cooldown

With ``--defences cooldown`` (the default) the cooldown after rule-breaking closes is shortened, so the fuzzer's
reconnects reach the parsers instead of being refused at the door; the per-connection message rate limit stays
as shipped (it is what holds a ping flood back).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import time
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
    new_session,
    new_token,
    percentiles,
)

ATTACKED_SESSIONS = 6
TOKENS_PER_SESSION = 6


async def provision(server: ServerProcess, rooms: int, per_room: int, latencies: Latencies) -> list[list[HonestClient]]:
    """Honest rooms, each client connected and synced; 32 handshakes at a time."""
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        urls: list[list[str]] = []
        for r in range(rooms):
            sid = await new_session(http, f"soak {r}")
            urls.append([
                f"{server.ws_url}/v1/collab/{sid}?token={await new_token(http, sid, f'Typist {c}')}"
                for c in range(per_room)
            ])

    async def join(url: str) -> HonestClient:
        async with gate:
            return await HonestClient(url, latencies).connect()

    return [list(await asyncio.gather(*(join(u) for u in room))) for room in urls]


def stored_mib(server: ServerProcess, attacked: set[str]) -> tuple[float, float]:
    """The update log's bytes of the attacked sessions and of the others (read-only, beside the server)."""
    db = sqlite3.connect(f"file:{server.workdir.name}/bench.db?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT session_id, SUM(LENGTH(data)) FROM doc_updates GROUP BY session_id").fetchall()
    finally:
        db.close()
    hit = sum(n for sid, n in rows if sid in attacked)
    rest = sum(n for sid, n in rows if sid not in attacked)
    return hit / 2**20, rest / 2**20


def stored_column(server: ServerProcess, attacked: set[str]) -> str:
    hit, rest = stored_mib(server, attacked)
    return f"{hit:8.1f} / {rest:6.1f}"


async def attack_targets(server: ServerProcess) -> list[dict[str, str]]:
    targets = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        for s in range(ATTACKED_SESSIONS):
            sid = await new_session(http, f"attacked {s}")
            for t in range(TOKENS_PER_SESSION):
                role = "viewer" if t == TOKENS_PER_SESSION - 1 else "editor"
                token = await new_token(http, sid, f"A{s}-{t}", role)
                targets.append({"session_id": sid, "token": token, "role": role})
    return targets


async def typist(client: HonestClient, rate: float, until: float, counts: dict[str, int]) -> None:
    """``rate`` edits a second at a random phase; a slot missed by more than one interval is skipped, not
    made up in a burst (as yload does)."""
    interval = 1 / rate
    next_at = time.monotonic() + random.random() * interval
    while next_at < until and not client.closed.is_set():
        now = time.monotonic()
        if now < next_at:
            await asyncio.sleep(next_at - now)
        elif now - next_at > interval:
            skipped = int((now - next_at) / interval)
            counts["skipped"] += skipped
            next_at += skipped * interval
        next_at += interval
        await client.type("x")
        counts["edits"] += 1


async def main(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    server = await ServerProcess.start(DEFENCES[args.defences])
    latencies = Latencies(expected=args.clients_per_room - 1)
    rooms: list[list[HonestClient]] = []
    attacker: AttackerProcess | None = None
    try:
        started = time.monotonic()
        rooms = await provision(server, args.rooms, args.clients_per_room, latencies)
        targets = await attack_targets(server)
        clients = [c for room in rooms for c in room]
        print(f"{len(clients)} honest clients in {len(rooms)} rooms connected in {time.monotonic() - started:.1f} s; "
              f"server RSS {server.rss_mib():.0f} MiB", flush=True)
        attacker = AttackerProcess(server.ws_url, targets, args.seconds, [
            "--seed", str(seed), "--connections", str(args.fuzzers), "--slow-readers", str(args.slow_readers),
            "--reconnectors", str(args.reconnectors), "--pingers", str(args.pingers),
            "--oversizers", str(args.oversizers), "--report-every", str(min(5.0, args.report_every / 4)),
        ])
        await attacker.start()
        begin = time.monotonic()
        until = begin + args.seconds
        counts = {"edits": 0, "skipped": 0}
        typing = [asyncio.create_task(typist(c, args.edits_per_sec, until, counts)) for c in clients]
        print(f"attackers started (seed {seed}, defences {args.defences}); every {args.report_every:g} s:", flush=True)
        attacked = {t["session_id"] for t in targets}
        print("  t(s)  RSS MiB  sockets  fan-out p50/p99 ms  edits  skipped  honest closed  tracebacks  "
              "stored MiB attacked/honest  attackers")
        previous: dict[str, Any] = {}
        edits_before = skipped_before = 0
        next_report = begin + args.report_every
        while (now := time.monotonic()) < until:
            await asyncio.sleep(min(next_report, until) - now)
            if time.monotonic() < next_report:
                break
            next_report += args.report_every
            p50, p99 = percentiles(latencies.take(), (0.5, 0.99))
            progress = attacker.progress
            print(
                f"{time.monotonic() - begin:6.0f}  {server.rss_mib():7.0f}  {server.sockets():7d}  "
                f"{p50:8.2f} / {p99:7.2f}  {counts['edits'] - edits_before:6d}  {counts['skipped'] - skipped_before:7d}"
                f"  {sum(c.closed.is_set() for c in clients):13d}  {server.tracebacks():10d}  "
                f"{stored_column(server, attacked)}  {json.dumps(_delta(progress, previous))}",
                flush=True,
            )
            previous = progress
            edits_before, skipped_before = counts["edits"], counts["skipped"]
        await asyncio.gather(*typing)
        result = await attacker.wait() or {}
        attacker = None
        tail = latencies.take()
        stuck = await converged(rooms, 60)
        undelivered = len(latencies.pending)
        closed = sum(c.closed.is_set() for c in clients)
        print(f"end: rooms not converged {stuck} of {len(rooms)}; edits {counts['edits']} (skipped slots "
              f"{counts['skipped']}); edits never delivered {undelivered}; last interval's p99 "
              f"{percentiles(tail, (0.99,))[0]:.2f} ms; honest clients closed {closed}; "
              f"server RSS {server.rss_mib():.0f} MiB, sockets {server.sockets()}, tracebacks {server.tracebacks()}")
        print("attackers: " + json.dumps({k: result.get(k) for k in (
            "sent", "delivered", "connections", "closes", "stalls", "finding_counts", "nuisances")}))
        for finding in result.get("findings", []):
            # The batch's last shot is the risky one; the others are benign (or the finding says otherwise).
            batch = finding.get("batch") or [{}]
            brief = {k: v for k, v in finding.items() if k not in ("batch", "previous_batch")}
            print(f"finding: {json.dumps(brief)}; last of {len(batch)} messages: {json.dumps(batch[-1])}")
        if args.findings_out and result.get("findings"):
            Path(args.findings_out).write_text(json.dumps(result["findings"], indent=1))
            print(f"findings with their whole batches: {args.findings_out}")
        # What stays once everyone has left and the rooms have unloaded tells growth from a leak: the documents
        # are then only in the database.
        for room in rooms:
            for c in room:
                await c.close()
        rss_loaded = server.rss_mib()
        await asyncio.sleep(args.unload_wait)
        print(f"after everyone left: server RSS {rss_loaded:.0f} MiB, {args.unload_wait:g} s later (rooms unloaded) "
              f"{server.rss_mib():.0f} MiB; stored attacked/honest {stored_column(server, attacked).strip()} "
              f"MiB; sockets {server.sockets()}")
        if server.tracebacks():
            print("server log (end):\n" + server.log_tail(4000))
        return 0 if not stuck and not server.tracebacks() else 1
    finally:
        if attacker is not None:
            attacker.stop()
            await attacker.wait()
        for room in rooms:
            for c in room:
                await c.close()
        server.stop()


def _delta(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What the attackers did in the last interval (their counts are totals since they started)."""
    out: dict[str, Any] = {}
    for key in ("sent", "delivered", "connections", "stalls"):
        out[key] = now.get(key, 0) - before.get(key, 0)
    out["findings"] = now.get("findings", {})
    nuisances, earlier = now.get("nuisances", {}), before.get("nuisances", {})
    for key in ("slow_readers_dropped", "reconnects", "pings_written", "pongs_received", "oversized_sent"):
        out[key] = nuisances.get(key, 0) - earlier.get(key, 0)
    out["slow_readers_never_dropped"] = nuisances.get("slow_readers_never_dropped", 0)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600, help="length of the soak (default 600)")
    parser.add_argument("--report-every", type=float, default=60, help="seconds between reports (default 60)")
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--clients-per-room", type=int, default=2)
    parser.add_argument("--edits-per-sec", type=float, default=2, help="per client (default 2)")
    parser.add_argument("--fuzzers", type=int, default=8, help="fuzzing connections (default 8)")
    parser.add_argument("--slow-readers", type=int, default=4)
    parser.add_argument("--reconnectors", type=int, default=4)
    parser.add_argument("--pingers", type=int, default=2)
    parser.add_argument("--oversizers", type=int, default=2)
    parser.add_argument(
        "--defences", choices=tuple(DEFENCES), default="cooldown",
        help="cooldown: the refusal cooldown shortened so the fuzzer's reconnects get in (default); default: the "
        "server's own settings; none: the per-connection rate limit raised too (a ping flood then takes the loop)",
    )
    parser.add_argument("--unload-wait", type=float, default=20,
                        help="seconds to wait after everyone left before the last RSS (default 20; rooms unload "
                        "10 s after their last peer)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--findings-out", help="write the attackers' findings (whole batches, hex) to this JSON file")
    sys.exit(asyncio.run(main(parser.parse_args())))
