"""Seek latency of history playback, and what history costs to store. Not a test.

Generates a one-hour session of steady typing by three people (about 20,000 changes, a keystroke every 0.18 s on
average; each typist works in a region of their own, with backspaces and now and then a jump elsewhere), each
change a real Yjs update made by that person's own document, with its time and author. The session is written
straight to the database through the app's own import (``history.transfer.import_session``), then served by
``codeconnect serve``; the first history read replays it (timed: the one-off cost per process), then
``GET .../history/at?index=`` at random points measures seeks (p50/p99, over HTTP on 127.0.0.1). Also reported:
the bytes of history per hour of typing (the stored updates with their time and author).

    .venv/bin/python bench/history_bench.py            # SQLite and PostgreSQL
    .venv/bin/python bench/history_bench.py --only sqlite --seeks 500
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Doc, Text, TransactionEvent

sys.path.insert(0, str(Path(__file__).parent))
from liveload import ServerProcess  # noqa: E402
from rest_bench import pg_database  # noqa: E402

from codeconnect.collab.document import initial_update  # noqa: E402
from codeconnect.config import Settings  # noqa: E402
from codeconnect.db import create_engine, create_sessionmaker, run_migrations  # noqa: E402
from codeconnect.history.schemas import SessionImport  # noqa: E402
from codeconnect.history.transfer import import_session  # noqa: E402
from codeconnect.workspaces.schemas import Policy  # noqa: E402

WORDS = "def for in return if else while print range len self value total index result append".split()


def generate(changes: int, seconds: float, seed: int = 7) -> dict[str, Any]:
    """An export of a session typed by three people over ``seconds``: ``changes`` keystrokes in all."""
    rng = random.Random(seed)
    first = initial_update("", "python", "Interview")
    docs: list[Doc[Any]] = []
    for _ in range(3):
        doc: Doc[Any] = Doc()
        doc.apply_update(first)
        docs.append(doc)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    people = [f"person{i}" for i in range(3)]
    history: list[dict[str, Any]] = [{"at": start.isoformat(), "author": None, "update": _b64(first)}]
    cursors = [0, 0, 0]
    # Each typist starts on a line of their own.
    texts = [doc.get("code", type=Text) for doc in docs]
    pending: list[str] = []
    step = seconds / changes
    at = start
    for i in range(changes - 1):
        k = rng.randrange(3)
        doc, text = docs[k], texts[k]
        n = len(text)
        cursor = min(cursors[k], n)
        if rng.random() < 0.005 or (i < 3 and cursor == 0):
            cursor = n  # a jump: to the end
        if not pending:
            pending.extend(rng.choice(WORDS) + (" " if rng.random() < 0.8 else "\n"))
        updates: list[bytes] = []

        def collect(event: TransactionEvent, into: list[bytes] = updates) -> None:
            into.append(event.update)

        sub = doc.observe(collect)
        if rng.random() < 0.08 and cursor > 0:
            del text[cursor - 1 : cursor]
            cursor -= 1
        else:
            ch = pending.pop(0)
            text.insert(cursor, ch)
            cursor += 1
        doc.unobserve(sub)
        cursors[k] = cursor
        update = updates[0]
        for j, other in enumerate(docs):
            if j != k:
                other.apply_update(update)
                # Others' cursors after this edit's position move with it (typists keep their place).
                if cursors[j] >= cursor:
                    cursors[j] += 1 if len(texts[k]) >= n else -1
        at = at + timedelta(seconds=rng.expovariate(1 / step))
        history.append({"at": at.isoformat(), "author": people[k], "update": _b64(update)})
    code = str(texts[0])
    return {
        "exportedAt": datetime.now(UTC).isoformat(),
        "session": {"title": "Interview", "language": "python", "code": code, "createdAt": start.isoformat(),
                    "updatedAt": at.isoformat()},
        "participants": [
            {"id": p, "name": f"Person {i}", "color": "#336699", "role": "editor", "joinedAt": start.isoformat()}
            for i, p in enumerate(people)
        ],
        "base": [],
        "history": history,
        "runs": [],
        "notes": {"text": "", "version": 0},
    }  # fmt: skip


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


async def store(database_url: str, export: dict[str, Any]) -> tuple[str, str]:
    """The session written through the app's own import; returns its id and owner key."""
    await run_migrations(database_url)
    settings = Settings(database_url=database_url)
    engine = create_engine(database_url)
    try:
        done = await import_session(
            create_sessionmaker(engine), asyncio.Semaphore(1), settings, "default", Policy(),
            SessionImport.model_validate(export),
        )  # fmt: skip
    finally:
        await engine.dispose()
    return done.session_id, done.owner_key


def history_bytes(export: dict[str, Any], seconds: float) -> float:
    """Bytes of history per hour: each change's update, time (8) and author id (22)."""
    import base64

    total = sum(len(base64.b64decode(c["update"])) + 8 + (22 if c["author"] else 0) for c in export["history"])
    return total * 3600 / seconds


async def measure(name: str, database_url: str, export: dict[str, Any], seeks: int) -> dict[str, float]:
    session_id, owner_key = await store(database_url, export)
    server = await ServerProcess.start({"CODECONNECT_DATABASE_URL": database_url})
    try:
        headers = {"X-Owner-Key": owner_key}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120, headers=headers) as client:
            r = await client.get(f"/v1/sessions/{session_id}")  # loads the room: its compaction moves the log
            r.raise_for_status()
            started = time.perf_counter()
            r = await client.get(f"/v1/sessions/{session_id}/history", params={"limit": 10})
            r.raise_for_status()
            first_read = time.perf_counter() - started
            total = r.json()["total"]
            rng = random.Random(1)
            latencies = []
            final = ""
            for _ in range(seeks):
                index = rng.randrange(total)
                started = time.perf_counter()
                r = await client.get(f"/v1/sessions/{session_id}/history/at", params={"index": index})
                latencies.append(time.perf_counter() - started)
                r.raise_for_status()
            r = await client.get(f"/v1/sessions/{session_id}/history/at", params={"index": total - 1})
            final = r.json()["code"]
            assert final == export["session"]["code"], "the last point is not the typed text"
        latencies.sort()
        replay = await in_process(database_url, session_id, seeks)
        return {
            "in_process_p50_ms": replay[0],
            "in_process_p99_ms": replay[1],
            "changes": total,
            "first_read_s": first_read,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "max_ms": 1000 * latencies[-1],
            "rss_mib": server.rss_mib(),
            "text_chars": len(final),
        }
    finally:
        if server.tracebacks():
            print(server.log_tail(), file=sys.stderr)
        server.stop()


async def in_process(database_url: str, session_id: str, seeks: int) -> tuple[float, float]:
    """The seek alone, as the server computes it (``Timeline.point``), without HTTP and the database: p50, p99."""
    from codeconnect.history.service import stored_history
    from codeconnect.history.timeline import Timeline

    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            base, changes = await stored_history(db, session_id)
    finally:
        await engine.dispose()
    timeline = Timeline(base, (0, 0), Settings().history_checkpoint_every)
    timeline.extend(changes)
    rng = random.Random(2)
    times = []
    for _ in range(seeks):
        index = rng.randrange(len(changes))
        started = time.perf_counter()
        timeline.point(index)
        times.append(time.perf_counter() - started)
    times.sort()
    return 1000 * statistics.median(times), 1000 * times[min(len(times) - 1, int(0.99 * len(times)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--seeks", type=int, default=300)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    started = time.perf_counter()
    export = generate(args.changes, args.seconds)
    print(f"generated {len(export['history'])} changes in {time.perf_counter() - started:.1f} s; "
          f"history: {history_bytes(export, args.seconds) / 1024:.0f} KiB per hour of typing "
          f"(final text {len(export['session']['code'])} chars)")
    results = {}
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory(prefix="ccl-history-") as tmp:
            results["SQLite"] = await measure("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", export, args.seeks)
    if args.only in (None, "postgres"):
        async with pg_database() as url:
            results["PostgreSQL"] = await measure("postgres", url, export, args.seeks)
    print("| Database | Changes | First read (replay) | Seek p50 | Seek p99 | Seek max | Replay alone p50 / p99 "
          "| Server RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['changes']:.0f} | {r['first_read_s']:.2f} s | {r['p50_ms']:.1f} ms | "
              f"{r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms | {r['in_process_p50_ms']:.1f} / "
              f"{r['in_process_p99_ms']:.1f} ms | {r['rss_mib']:.0f} MiB |")


if __name__ == "__main__":
    asyncio.run(main())
