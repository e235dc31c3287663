"""Two processes compacting the same session's log again and again while both append: no row is lost."""

from __future__ import annotations

import asyncpg
import httpx
from pycrdt import Text, merge_updates
from sqlalchemy.engine import make_url

from codeconnect.collab.document import CODE, SharedDoc, initial_update
from codeconnect.collab.records import NewSession
from codeconnect.collab.writer import batch_writer
from codeconnect.models import utcnow
from tests.cluster.conftest import session_on
from tests.cluster.test_crash import _logged_text
from tests.collab.yclient import YClient, collab_url
from tests.conftest import LiveServer, ServerFactory, eventually
from tests.test_metrics import Scrape, moved, scrape


async def test_compactions_on_two_processes_lose_no_row(cluster: ServerFactory, pg_url: str) -> None:
    # Each process compacts after every 3 of its own rows: with 2 x 150 edits, about a hundred compactions race
    # with the other process's appends.
    a_srv: LiveServer = await cluster(compact_after_updates=3, mirror_interval_seconds=0.05)
    b_srv: LiveServer = await cluster(compact_after_updates=3, mirror_interval_seconds=0.05)
    sid, people = await session_on(a_srv, "Ada", "Bob", language="python")
    before = await _scrape(a_srv)
    a = await YClient(collab_url(a_srv.ws_url, sid, people["Ada"]["token"])).connect()
    b = await YClient(collab_url(b_srv.ws_url, sid, people["Bob"]["token"])).connect()
    for i in range(150):
        a.code += f"a{i}\n"
        b.code += f"b{i}\n"
        if i % 10 == 9:  # let the servers' compactions interleave with the typing
            await a.wait_for(lambda i=i: f"b{i}\n" in a.text)
    await a.wait_for(lambda: "b149\n" in a.text)
    await b.wait_for(lambda: "a149\n" in b.text)
    assert a.text == b.text
    for srv in (a_srv, b_srv):
        await srv.server.config.app.state.collab.log.flush()

    async def log_holds_everything() -> bool:
        return await _logged_text(pg_url, sid) == a.text

    await eventually(log_holds_everything)
    # Both processes of this test count into one set of metrics: every edit came from a client once, and each
    # reached the other process (maybe more than once: healing and compaction merge stored rows too).
    after = await _scrape(b_srv)
    assert moved(before, after, "codeconnect_live_updates_received_total", origin="client") == 300
    assert moved(before, after, "codeconnect_live_updates_received_total", origin="cluster") >= 300
    assert moved(before, after, "codeconnect_update_log_compactions_total", outcome="compacted") >= 1
    assert moved(before, after, "codeconnect_update_log_compactions_total", outcome="failed") == 0
    await a.close()
    await b.close()


async def _scrape(server: LiveServer) -> Scrape:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        return await scrape(http)


def _session(sid: str) -> NewSession:
    return NewSession(
        id=sid, title="T", language="python", code="", owner_key_hash="h" * 64, viewer_id=f"v-{sid}",
        created_at=utcnow(), first_update=initial_update("start\n", "python", "T"),
    )  # fmt: skip


async def test_a_shared_compaction_keeps_rows_its_document_never_received(pg_url: str) -> None:
    """A row another process committed, whose relay has not reached this process yet: compacting from this
    process's document alone would delete it unseen; the shared compaction merges the rows it replaces."""
    writer = batch_writer(pg_url)
    assert writer is not None
    try:
        await writer.create_sessions([_session("s1")])
        here = SharedDoc()
        for update in (await writer.load(["s1"]))["s1"].updates:
            here.doc.apply_update(update)
        there = SharedDoc()
        there.doc.apply_update(here.doc.get_update())
        # This process's own edit, and one of another process that was stored but not relayed here.
        own = _edit(here, "mine\n")
        foreign = _edit(there, "theirs\n")
        await writer.write([("s1", own), ("s1", foreign)], [])

        def fold(rows: list[bytes]) -> bytes:
            for row in rows:
                here.doc.apply_update(row)
            return here.doc.get_update()

        assert await writer.compact_rows("s1", fold) > 0
        logged = SharedDoc()
        stored = (await writer.load(["s1"]))["s1"].updates
        assert len(stored) == 1
        for update in stored:
            logged.doc.apply_update(update)
        assert "mine" in logged.text() and "theirs" in logged.text()
    finally:
        await writer.close()


async def test_a_compaction_skips_its_turn_while_another_process_compacts(pg_url: str) -> None:
    writer = batch_writer(pg_url)
    assert writer is not None
    holder = await asyncpg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(False))
    try:
        await writer.create_sessions([_session("s2")])
        doc = SharedDoc()
        await writer.write([("s2", _edit(doc, "x\n")), ("s2", _edit(doc, "y\n"))], [])
        # Another process's compaction of the same session holds its lock.
        await holder.execute("SELECT pg_advisory_lock(hashtextextended('s2', 2026))")
        assert await writer.compact_rows("s2", lambda rows: merge_updates(*rows)) == 0
        assert len((await writer.load(["s2"]))["s2"].updates) == 3
        # A compaction of another session is not held up.
        await writer.create_sessions([_session("s3")])
        await writer.write([("s3", _edit(SharedDoc(), "z\n"))], [])
        assert await writer.compact_rows("s3", lambda rows: merge_updates(*rows)) > 0
        await holder.execute("SELECT pg_advisory_unlock(hashtextextended('s2', 2026))")
        assert await writer.compact_rows("s2", lambda rows: merge_updates(*rows)) > 0
        assert len((await writer.load(["s2"]))["s2"].updates) == 1
    finally:
        await holder.close()
        await writer.close()


def _edit(shared: SharedDoc, text: str) -> bytes:
    updates: list[bytes] = []
    sub = shared.doc.observe(lambda event: updates.append(event.update))
    code = shared.doc.get(CODE, type=Text)
    code += text
    shared.doc.unobserve(sub)
    return b"".join(updates[:1])
