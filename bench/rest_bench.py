"""REST throughput beside the first version's design: wrk against ours (SQLite, PostgreSQL) and the reference.

Not a test. Starts, all on free ports of 127.0.0.1 and all at once: ``seed_reference.py`` (FastAPI + Pydantic,
sessions in a dict, the same uvicorn), ``codeconnect serve`` on a fresh SQLite file and ``codeconnect serve`` on a
fresh PostgreSQL database, each with every production feature on (authentication, the live rooms, the update log).
Then, round after round, each server in turn:

- ``GET /v1/sessions/{id}`` of a **loaded** session (a live client keeps its room open: no database round trip);
- ``GET`` of **unloaded** sessions (a second server process per database with ``ROOM_UNLOAD_GRACE_SECONDS=0``,
  reads spread over 300 sessions nobody has open: after the first read of each, which loads its room and lets it
  go, the next reads the session's row, marked exact as the room unloaded, and keeps it in memory: later reads
  need no database round trip until the session changes);
- the same **from the row** (a third server process per database with ``SESSION_READ_CACHE_BYTES=0`` as well:
  each read is a statement, shared with the reads in flight together);
- ``POST /v1/sessions`` (a session with its first document update, committed before the answer).

Each measurement is ``wrk -t1 -c16 -d8s``; the table gives the median requests/s over rounds and the ratio to the
reference (targets: GET at least 0.5, POST at least 0.25)::

    apt-get install -y wrk     # once
    .venv/bin/python bench/rest_bench.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import websockets

sys.path.insert(0, str(Path(__file__).parent))
from liveload import ServerProcess, free_port  # noqa: E402

BENCH = Path(__file__).parent
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
POST_LUA = """wrk.method = "POST"
wrk.body = '{"title": "wrk", "language": "python", "code": "print(1)\\\\n"}'
wrk.headers["Content-Type"] = "application/json"
"""


async def start_reference() -> ServerProcess:
    workdir = tempfile.TemporaryDirectory(prefix="ccl-ref-")
    port = free_port()
    log_path = Path(workdir.name) / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "seed_reference:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            cwd=BENCH, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = ServerProcess(process, port, log_path, workdir)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{server.base_url}/healthz")).status_code == 200:
                    return server
            await asyncio.sleep(0.1)
    server.stop()
    raise RuntimeError("the reference did not start")


@contextlib.asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    name = f"rest_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def keep_loaded(server: ServerProcess, session_id: str) -> asyncio.Task[None]:
    """A live participant on ``session_id``: its room stays loaded while this task runs."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        token = (await http.post(f"/v1/sessions/{session_id}/participants", json={"name": "Keeper"})).json()["token"]
    ws = await websockets.connect(f"{server.ws_url}/v1/collab/{session_id}?token={token}", max_size=None)
    await ws.send(bytes([0, 0, 1, 0]))  # sync step 1 with an empty state vector

    async def drain() -> None:
        try:
            async for _ in ws:
                pass
        finally:
            await ws.close()

    return asyncio.create_task(drain())


def rotating_get(paths: list[str]) -> str:
    """A wrk script that reads ``paths`` in turn."""
    listed = ", ".join(f'"{p}"' for p in paths)
    return (
        f"paths = {{{listed}}}\ni = 0\n"
        'request = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n'
    )


async def new_session(server: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        r = await http.post("/v1/sessions", json={"title": "bench", "language": "python", "code": "print(1)\n" * 20})
        r.raise_for_status()
        session_id: str = r.json()["id"]
        assert (await http.get(f"/v1/sessions/{session_id}")).status_code == 200
        return session_id


def wrk(url: str, seconds: int, script: Path | None = None) -> tuple[float, float, int]:
    """Requests/s, latency p99 in ms, and non-2xx answers of one wrk run."""
    cmd = ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, latency, int(bad.group(1)) if bad else 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    post_lua = Path(tempfile.mkdtemp(prefix="ccl-wrk-")) / "post.lua"
    post_lua.write_text(POST_LUA)
    cold = {"CODECONNECT_ROOM_UNLOAD_GRACE_SECONDS": "0"}
    row = {**cold, "CODECONNECT_SESSION_READ_CACHE_BYTES": "0"}
    async with contextlib.AsyncExitStack() as stack:
        servers: dict[str, ServerProcess] = {}
        servers["reference"] = await start_reference()
        servers["sqlite"] = await ServerProcess.start()
        servers["sqlite cold"] = await ServerProcess.start(cold)
        servers["sqlite row"] = await ServerProcess.start(row)
        if not args.no_postgres:
            url = await stack.enter_async_context(pg_database())
            servers["postgres"] = await ServerProcess.start({"CODECONNECT_DATABASE_URL": url})
            url_cold = await stack.enter_async_context(pg_database())
            servers["postgres cold"] = await ServerProcess.start({"CODECONNECT_DATABASE_URL": url_cold, **cold})
            url_row = await stack.enter_async_context(pg_database())
            servers["postgres row"] = await ServerProcess.start({"CODECONNECT_DATABASE_URL": url_row, **row})
        for server in servers.values():
            stack.callback(server.stop)

        keepers = []
        scripts: dict[str, Path] = {}
        targets: dict[str, tuple[str, str, Path | None]] = {}  # row name -> (server, url, script)
        ref = servers["reference"]
        ref_id = await new_session(ref)
        targets["reference GET"] = ("reference", f"{ref.base_url}/v1/sessions/{ref_id}", None)
        targets["reference POST"] = ("reference", f"{ref.base_url}/v1/sessions", post_lua)
        for db in ("sqlite", "postgres"):
            if db not in servers:
                continue
            warm, cold_server = servers[db], servers[f"{db} cold"]
            warm_id = await new_session(warm)
            keepers.append(await keep_loaded(warm, warm_id))
            async with httpx.AsyncClient(base_url=warm.base_url, timeout=30) as http:
                assert (await http.get(f"/v1/sessions/{warm_id}")).status_code == 200  # as a reader after the join
            for kind in ("cold", "row"):
                unloaded = servers[f"{db} {kind}"]
                ids = await asyncio.gather(*(new_session(unloaded) for _ in range(300)))
                script = post_lua.with_name(f"{kind}-{db}.lua")
                script.write_text(rotating_get([f"/v1/sessions/{sid}" for sid in ids]))
                scripts[kind] = script
            targets[f"{db} GET loaded"] = (db, f"{warm.base_url}/v1/sessions/{warm_id}", None)
            targets[f"{db} GET unloaded"] = (f"{db} cold", f"{cold_server.base_url}/v1/sessions", scripts["cold"])
            row_server = servers[f"{db} row"]
            targets[f"{db} GET unloaded, from its row"] = (
                f"{db} row", f"{row_server.base_url}/v1/sessions", scripts["row"]
            )
            targets[f"{db} POST"] = (db, f"{warm.base_url}/v1/sessions", post_lua)

        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in targets}
        for n in range(args.rounds):
            for name, (_, url, script) in targets.items():
                got = await asyncio.to_thread(wrk, url, args.seconds, script)
                results[name].append(got)
                print(f"round {n + 1} {name}: {got[0]:.0f} req/s, p99 {got[1]:.1f} ms, non-2xx {got[2]}", flush=True)
        for task in keepers:
            task.cancel()
        for name, server in servers.items():
            if server.tracebacks():
                print(f"{name}: the log has tracebacks:\n{server.log_tail()}")

    def median(name: str) -> float:
        return statistics.median(r[0] for r in results[name])

    print(f"\n{args.rounds} rounds of wrk -t1 -c16 -d{args.seconds}s; medians\n")
    print("| request | server | req/s (runs) | p99 ms | ratio to the reference | target |")
    print("|---|---|---|---|---|---|")
    for name in targets:
        kind = "GET" if "GET" in name else "POST"
        ref_rate = median(f"reference {kind}")
        runs = " · ".join(f"{r[0]:.0f}" for r in results[name])
        p99 = statistics.median(r[1] for r in results[name])
        bad = sum(r[2] for r in results[name])
        target = "" if name.startswith("reference") else ("≥ 0.50" if kind == "GET" else "≥ 0.25")
        label = name.replace("reference ", "").replace("sqlite ", "").replace("postgres ", "")
        server = name.split(" ")[0]
        ratio = median(name) / ref_rate
        note = f" ({bad} non-2xx)" if bad else ""
        print(f"| {label} | {server} | {median(name):.0f} ({runs}){note} | {p99:.1f} | {ratio:.2f} | {target} |")


if __name__ == "__main__":
    asyncio.run(main())
