"""Attack: text no database column can hold, typed into a live document or printed by a run.

PostgreSQL ``text``/``varchar`` cannot hold NUL; no driver can encode a lone surrogate. A Yjs document can hold
NUL (and a hostile client can craft lone surrogates into an update), and a program can print any bytes. The
document (binary, in ``bytea``) stays the truth; the ``sessions`` columns copied from it are cleaned; and one
session's unstorable value never holds up anyone else's writes.

Each test runs on SQLite and PostgreSQL (the point is PostgreSQL; SQLite shows the same guarantees hold there).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pycrdt import Array, Doc, Map, Text
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from codeconnect.collab import protocol as p
from codeconnect.collab.protocol import CloseCode
from codeconnect.collab.records import Mirror
from codeconnect.config import Settings
from codeconnect.db import create_engine
from codeconnect.execution.toolchains import Toolchains
from codeconnect.models import SessionRow, utcnow
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory, skip_or_fail

C0 = "".join(map(chr, range(0x20)))  # every C0 control, NUL first
PAYLOAD = f"start {C0} end\n"
CONTROLS = f"start {C0[1:]} end\n"  # valid text everywhere
MARKER = "marker\n"


def storable(text: str) -> str:
    """What a session row may hold of ``text``: NUL is not storable text; the other controls are valid everywhere."""
    return text.replace("\x00", "\ufffd")


CLEANED = storable(PAYLOAD)
FAST = {"mirror_interval_seconds": 0.1, "commit_window_ms": 10}
DEADLINE_S = 15.0  # for every condition waited on; the expected case takes well under a second


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A connection pool of the test's own to look at the stored rows."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def row_of(engine: AsyncEngine, session_id: str) -> tuple[str, str, str]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(SessionRow.code, SessionRow.title, SessionRow.language).where(SessionRow.id == session_id)
            )
        ).one()
    return row.code, row.title, row.language


@dataclass
class Bystanders:
    """Other sessions, written to while the attack goes on: REST writes to one, live edits to another."""

    client: httpx.AsyncClient
    rest_id: str
    live_id: str
    live_token: str
    live: YClient
    writes: int = 0
    last_code: str = ""
    last_title: str = ""
    lines: int = 0

    @classmethod
    async def start(cls, server: LiveServer, client: httpx.AsyncClient) -> Bystanders:
        rest_id = (await new_session(client, code=""))["id"]
        live_id = (await new_session(client, code=""))["id"]
        token = (await join(client, live_id, "Bystander"))["token"]
        live = await YClient(collab_url(server.ws_url, live_id, token)).connect()
        return cls(client, rest_id, live_id, token, live)

    async def write(self) -> None:
        """One REST write to another session (must be 200), one new session (201), one live edit."""
        i = self.writes
        code, title = f"rest write {i}\n", f"Title {i}"
        r = await self.client.put(f"/v1/sessions/{self.rest_id}", json={"code": code, "title": title})
        assert r.status_code == 200, f"REST write #{i} to another session answered {r.status_code}: {r.text}"
        self.last_code, self.last_title = code, title
        r = await self.client.post("/v1/sessions", json={"title": f"new {i}"})
        assert r.status_code == 201, f"creating a session answered {r.status_code}: {r.text}"
        self.live.code += f"live edit {i}\n"
        self.lines += 1
        self.writes += 1

    async def until(self, condition: Callable[[], Awaitable[bool]], at_least: int = 5) -> None:
        """Keep writing until ``condition`` holds (and at least ``at_least`` writes were acknowledged)."""
        deadline = time.monotonic() + DEADLINE_S
        while self.writes < at_least or not await condition():
            assert time.monotonic() < deadline, f"condition not reached in {DEADLINE_S} s"
            await self.write()

    @property
    def live_text(self) -> str:
        return "".join(f"live edit {i}\n" for i in range(self.lines))

    async def received(self) -> None:
        """Wait until the server holds every live edit (a REST read goes through the loaded document)."""
        deadline = time.monotonic() + DEADLINE_S
        while (await self.client.get(f"/v1/sessions/{self.live_id}")).json()["code"] != self.live_text:
            assert time.monotonic() < deadline, "the server never received the bystander's live edits"

    async def check_after_restart(self, server: LiveServer, client: httpx.AsyncClient, db: AsyncEngine) -> None:
        """Everything acknowledged before the stop is there: REST writes, live edits, their mirrors."""
        assert await row_of(db, self.live_id) == (self.live_text, "Untitled session", "python")
        body = (await client.get(f"/v1/sessions/{self.rest_id}")).json()
        assert (body["code"], body["title"]) == (self.last_code, self.last_title)
        fresh = await YClient(collab_url(server.ws_url, self.live_id, self.live_token)).connect()
        assert fresh.text == self.live_text
        await fresh.close()


async def restart(server: LiveServer, factory: ServerFactory, **settings: Any) -> LiveServer:
    await server.stop()
    return await factory(**settings)


async def send_attack(attacker: YClient, where: str, payload: str) -> None:
    """One update: a marker line (to see that the server took it) and ``payload`` in the code or the title."""
    with attacker.doc.transaction():
        attacker.code += MARKER
        if where == "code":
            attacker.code += payload
        else:
            attacker.meta["title"] = payload


@pytest.mark.parametrize("where", ["code", "title"])
@pytest.mark.parametrize("payload", [PAYLOAD, CONTROLS], ids=["nul-and-controls", "controls"])
async def test_text_typed_live_blocks_no_one(
    server_factory: ServerFactory, db: AsyncEngine, where: str, payload: str
) -> None:
    """NUL and every C0 control (or the controls alone) typed into the code, or into ``meta.title`` through Yjs.

    The live door may refuse NUL (close 4400) or take it into the document; the controls alone are valid text
    and must be taken. Pass threshold: every REST write to another session answers 200 and every new session 201
    (0 failures of >= 5) until the attack is settled (refused, or the attacked row mirrored) within 15 s; the
    attacked row never holds NUL: it holds the payload with NUL as U+FFFD (or, for a title, the last valid one);
    after a stop and restart, 0 of the other sessions' acknowledged REST writes and live edits are missing and
    the attacked document holds exactly what the server took.
    """
    server = await server_factory(**FAST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        attacked = (await new_session(client, code="", title="Attacked"))["id"]
        token = (await join(client, attacked, "Mallory"))["token"]
        attacker = await YClient(collab_url(server.ws_url, attacked, token)).connect()
        others = await Bystanders.start(server, client)
        await others.write()
        await send_attack(attacker, where, payload)

        async def settled() -> bool:
            return attacker.closed.is_set() or (await row_of(db, attacked))[0].startswith(MARKER)

        await others.until(settled)
        refused = attacker.closed.is_set()
        assert not refused or (attacker.close_code == CloseCode.BAD_MESSAGE and "\x00" in payload)
        code, title, _ = await row_of(db, attacked)
        if refused:
            assert (code, title) == ("", "Attacked")
        elif where == "code":
            assert code == MARKER + storable(payload)
        elif "\x00" in payload:
            assert title in (storable(payload), "Attacked")  # stored cleaned, or ignored as an invalid title
        else:
            assert title == payload
        await others.received()
        await attacker.close()
        await others.live.close()

        server = await restart(server, server_factory, **FAST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await others.check_after_restart(server, client, db)
        # The document keeps what the server took, NUL included.
        fresh = await YClient(collab_url(server.ws_url, attacked, token)).connect()
        if refused:
            assert (fresh.text, fresh.meta["title"]) == ("", "Attacked")
        elif where == "code":
            assert fresh.text == MARKER + payload
        else:
            assert (fresh.text, fresh.meta["title"]) == (MARKER, payload)
        body = (await client.get(f"/v1/sessions/{attacked}")).json()
        assert body["code"] == fresh.text
        await fresh.close()


async def test_rest_writes_to_a_session_holding_nul_succeed(server_factory: ServerFactory, db: AsyncEngine) -> None:
    """A REST write to the attacked session itself copies the document's code and title into its row.

    Pass threshold: after NUL in ``meta.title`` and every other control in the code, typed live, PUT language
    and PUT code answer 200 and the row never holds NUL (code as typed, title cleaned or the last valid one).
    """
    server = await server_factory(**FAST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        sid = (await new_session(client, code="", title="Attacked"))["id"]
        token = (await join(client, sid, "Mallory"))["token"]
        attacker = await YClient(collab_url(server.ws_url, sid, token)).connect()
        with attacker.doc.transaction():
            attacker.code += MARKER + CONTROLS
            attacker.meta["title"] = PAYLOAD
        deadline = time.monotonic() + DEADLINE_S
        while not attacker.closed.is_set() and (await client.get(f"/v1/sessions/{sid}")).json()["code"] == "":
            assert time.monotonic() < deadline, "the attack was neither taken nor refused"
        r = await client.put(f"/v1/sessions/{sid}/language", json={"language": "js"})
        assert r.status_code == 200, r.text
        code, title, language = await row_of(db, sid)
        assert code in ("", MARKER + CONTROLS) and title in (CLEANED, "Attacked") and language == "javascript"
        r = await client.put(f"/v1/sessions/{sid}", json={"code": "ok\n"})
        assert r.status_code == 200, r.text
        code, title, language = await row_of(db, sid)
        assert code == "ok\n" and title in (CLEANED, "Attacked") and language == "javascript"
        await attacker.close()


async def test_unstorable_mirror_reaching_the_store_blocks_no_one(
    server_factory: ServerFactory, db: AsyncEngine
) -> None:
    """Whatever the live door lets through: a mirror holding NUL, lone surrogates and every C0 control, handed to
    the running server's update log as a room would.

    Pass threshold: every REST write to another session answers 200 (0 failures of >= 5) until the row holds
    the cleaned text (within 15 s); after a stop and restart 0 acknowledged writes of other sessions are missing.
    """
    server = await server_factory(**FAST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        attacked = (await new_session(client, code=""))["id"]
        others = await Bystanders.start(server, client)
        await others.write()
        text = f"a\x00b\ud800c\udfff{C0}"
        server.server.config.app.state.collab.log.mirror(
            attacked, Mirror(code=text, language="python", title=f"T{text}", updated_at=utcnow())
        )
        cleaned = f"a\ufffdb\ufffdc\ufffd\ufffd{C0[1:]}"

        async def mirrored() -> bool:
            return await row_of(db, attacked) == (cleaned, f"T{cleaned}", "python")

        await others.until(mirrored)
        await others.received()
        await others.live.close()
        server = await restart(server, server_factory, **FAST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await others.check_after_restart(server, client, db)


def _surrogate_update(where: str) -> bytes:
    """A Yjs update whose string is a lone surrogate (CESU bytes ED A0 80), made from a real one."""
    doc: Doc[Any] = Doc()
    marker = "\u4e00"
    if where == "code":
        doc.get("code", type=Text).insert(0, f"a{marker}b")
    else:
        doc.get("meta", type=Map)["title"] = f"a{marker}b"
    update = doc.get_update()
    assert update.count(marker.encode()) == 1
    return update.replace(marker.encode(), b"\xed\xa0\x80")


@pytest.mark.parametrize("where", ["code", "title"])
async def test_lone_surrogate_sent_live_blocks_no_one(
    server_factory: ServerFactory, db: AsyncEngine, where: str
) -> None:
    """A crafted update carrying a lone surrogate in the code or in ``meta.title``.

    Pass threshold: the sender is disconnected with 4400; every REST write to another session answers 200
    (0 failures of >= 5); after a restart 0 acknowledged writes of other sessions are missing and the attacked
    session holds no surrogate (its row and its document are as before the attack).
    """
    server = await server_factory(**FAST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        attacked = (await new_session(client, code="kept\n", title="Kept"))["id"]
        token = (await join(client, attacked, "Mallory"))["token"]
        attacker = await YClient(collab_url(server.ws_url, attacked, token)).connect()
        others = await Bystanders.start(server, client)
        await attacker.send(p.sync_update(_surrogate_update(where)))

        async def attacker_closed() -> bool:
            return attacker.closed.is_set()

        await others.until(attacker_closed)
        assert attacker.close_code == CloseCode.BAD_MESSAGE
        await others.received()
        await others.live.close()
        server = await restart(server, server_factory, **FAST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await others.check_after_restart(server, client, db)
        assert await row_of(db, attacked) == ("kept\n", "Kept", "python")
        body = (await client.get(f"/v1/sessions/{attacked}")).json()
        assert (body["code"], body["title"]) == ("kept\n", "Kept")


# Every C0 control, stray continuation bytes, an encoded surrogate and a cut multi-byte sequence.
_RAW_OUTPUT = bytes(range(0x20)) + b"|\xff\xfe|\xed\xa0\x80|\xe2\x82"
_PRINTER = (
    "import sys\n"
    f"data = {_RAW_OUTPUT!r}\n"
    "sys.stdout.buffer.write(data)\nsys.stdout.flush()\nsys.stderr.buffer.write(data)\n"
)
# The one rule for output: undecodable bytes become U+FFFD, NUL too; every other control is kept.
OUTPUT = _RAW_OUTPUT.decode("utf-8", "replace").replace("\x00", "\ufffd")
SANDBOX = {
    "execution": "sandbox",
    "exec_cpu_seconds": 2,
    "exec_wall_seconds": 4.0,
    "exec_rate_per_minute": 1000,
}


def _require_python_sandbox() -> None:
    missing = Toolchains(Settings()).availability("python").missing
    if missing:
        skip_or_fail(f"server-side Python runs need {', '.join(missing)}")


@pytest.mark.sandbox
async def test_run_output_with_nul_controls_and_invalid_utf8_is_stored(
    server_factory: ServerFactory, db: AsyncEngine
) -> None:
    """A program printing NUL, every C0 control and invalid UTF-8, run directly and as a session's shared run.

    Pass threshold: both runs answer 200 with the output cleaned by the one rule (no NUL, the other controls
    intact); the run reaches the live document's ``runs``; every REST write to another session answers 200;
    after a restart the run is still in the document.
    """
    _require_python_sandbox()
    assert "\x00" not in OUTPUT and C0[1:] in OUTPUT
    server = await server_factory(**FAST, **SANDBOX)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        r = await client.post("/v1/execute", json={"language": "python", "code": _PRINTER})
        assert r.status_code == 200, r.text
        assert (r.json()["stdout"], r.json()["stderr"]) == (OUTPUT, OUTPUT)

        sid = (await new_session(client, code=_PRINTER))["id"]
        token = (await join(client, sid, "Runner"))["token"]
        watcher = await YClient(collab_url(server.ws_url, sid, token)).connect()
        runs = watcher.doc.get("runs", type=Array)
        others = await Bystanders.start(server, client)
        r = await client.post(f"/v1/sessions/{sid}/execute", json={}, headers={"X-Participant-Token": token})
        assert r.status_code == 200, r.text
        assert (r.json()["stdout"], r.json()["stderr"]) == (OUTPUT, OUTPUT)

        async def run_shared() -> bool:
            return len(runs) == 1

        await others.until(run_shared)
        assert (runs[0]["stdout"], runs[0]["stderr"]) == (OUTPUT, OUTPUT)
        await others.received()
        await watcher.close()
        await others.live.close()
        server = await restart(server, server_factory, **FAST)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await others.check_after_restart(server, client, db)
        fresh = await YClient(collab_url(server.ws_url, sid, token)).connect()
        stored = fresh.doc.get("runs", type=Array)
        assert len(stored) == 1 and (stored[0]["stdout"], stored[0]["stderr"]) == (OUTPUT, OUTPUT)
        assert await row_of(db, sid) == (_PRINTER, "Untitled session", "python")
        await fresh.close()


@pytest.mark.parametrize(("setting", "column"), [("max_title_length", "title"), ("max_name_length", "name")])
def test_text_limits_cannot_exceed_their_columns(setting: str, column: str) -> None:
    """A limit above its column would let REST accept a value PostgreSQL refuses (varchar). Pass: refused at start."""
    from pydantic import ValidationError

    from codeconnect.models import ParticipantRow

    table = SessionRow if column == "title" else ParticipantRow
    size = table.__table__.c[column].type.length
    assert Settings(**{setting: size}).model_dump()[setting] == size
    with pytest.raises(ValidationError):
        Settings(**{setting: size + 1})
