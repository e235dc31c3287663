"""kill -9 of one process of a cluster during a stream of edits: nothing any process acknowledged or held is
lost, its clients go on with another process, and nothing is duplicated."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from codeconnect.collab.document import SharedDoc
from tests.cluster.conftest import VOLUME_ENV
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import REDIS_URL, eventually, require_service
from tests.test_cli import start_serve, stop

# Renewals every 0.5 s: the dead process is noticed after 1.5 s.
ENV = {
    "CODECONNECT_REDIS_URL": REDIS_URL,
    "CODECONNECT_PROCESS_HEARTBEAT_SECONDS": "0.5",
    **VOLUME_ENV,
}


async def _logged_text(pg_url: str, session_id: str) -> str:
    """The code as the update log has it (every row applied), read beside the servers."""
    conn = await asyncpg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(False))
    try:
        rows = await conn.fetch("SELECT data FROM doc_updates WHERE session_id = $1", session_id)
    finally:
        await conn.close()
    shared = SharedDoc()
    for row in rows:
        shared.doc.apply_update(bytes(row[0]))
    return shared.text()


def _ws(base_url: str) -> str:
    return base_url.replace("http://", "ws://")


@pytest.mark.slow
async def test_kill_9_of_a_process_loses_nothing_another_holds(pg_url: str, tmp_path: Path) -> None:
    require_service("Redis", REDIS_URL, 6379)
    a_srv = start_serve(pg_url, tmp_path, **ENV)
    b_srv = start_serve(pg_url, tmp_path, **ENV)
    c_srv = None
    try:
        async with httpx.AsyncClient(base_url=a_srv.base_url, timeout=30) as http:
            s = await new_session(http, language="python")
            sid = s["id"]
            ada = await join(http, sid, "Ada")
            bob = await join(http, sid, "Bob")
        a = await YClient(collab_url(_ws(a_srv.base_url), sid, ada["token"])).connect()
        b = await YClient(collab_url(_ws(b_srv.base_url), sid, bob["token"])).connect()
        await a.set_awareness({"user": {"name": "Ada"}})
        await b.wait_for(lambda: a.doc.client_id in b.awareness)
        for i in range(20):
            a.code += f"a{i}\n"
            b.code += f"b{i}\n"
        await b.wait_for(lambda: "a19\n" in b.text)
        # The update log is locked: what Ada types now is relayed to the other process (before its commit) but
        # cannot be committed by her process before it dies.
        locker = await asyncpg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(False))
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE doc_updates IN SHARE ROW EXCLUSIVE MODE")
        for i in range(20, 40):
            a.code += f"a{i}\n"
        await b.wait_for(lambda: "a39\n" in b.text)
        os.kill(a_srv.proc.pid, signal.SIGKILL)
        a_srv.proc.wait(10)
        await lock.rollback()
        await locker.close()
        for i in range(20, 40):
            b.code += f"b{i}\n"
        await b.wait_for(lambda: "b39\n" in b.text)
        seen_by_b = b.text
        await a.wait_closed()

        # The survivor notices the dead process (its clients go offline) and stores what it left uncommitted.
        async with httpx.AsyncClient(base_url=b_srv.base_url, timeout=30) as http:

            async def ada_offline() -> bool:
                r = await http.get(f"/v1/sessions/{sid}/participants")
                return {p["name"]: p["online"] for p in r.json()} == {"Ada": False, "Bob": True}

            await eventually(ada_offline)
        await b.wait_for(lambda: a.doc.client_id not in b.awareness)  # her cursor went with her process

        async def log_holds_what_b_saw() -> bool:
            return await _logged_text(pg_url, sid) == seen_by_b

        await eventually(log_holds_what_b_saw)
        await b.close()
        stop(b_srv, signal.SIGKILL)  # no flush, no compaction at exit: the log alone must hold it all

        # A process started afterwards reads everything that was held anywhere, once.
        c_srv = start_serve(pg_url, tmp_path, **ENV)
        async with httpx.AsyncClient(base_url=c_srv.base_url, timeout=30) as http:
            code = (await http.get(f"/v1/sessions/{sid}")).json()["code"]
        assert code == seen_by_b
        lines = code.splitlines()
        for i in range(40):
            assert lines.count(f"a{i}") == 1 and lines.count(f"b{i}") == 1

        # Ada's client reconnects to another process with its document: nothing is doubled.
        again = await YClient(collab_url(_ws(c_srv.base_url), sid, ada["token"]), doc=a.doc).connect()
        again.code += "a40\n"
        async with httpx.AsyncClient(base_url=c_srv.base_url, timeout=30) as http:

            async def has_a40() -> bool:
                return "a40\n" in (await http.get(f"/v1/sessions/{sid}")).json()["code"]

            await eventually(has_a40)
            lines = (await http.get(f"/v1/sessions/{sid}")).json()["code"].splitlines()
        assert all(lines.count(f"a{i}") == 1 for i in range(41))
        await again.close()
    finally:
        for srv in (a_srv, b_srv, c_srv):
            if srv is not None:
                stop(srv, signal.SIGKILL)
