"""Reading a loaded session from memory: the cards, alone and behind the session API."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from codeconnect.collab.document import SharedDoc
from codeconnect.collab.records import ParticipantCardRecord
from codeconnect.sessions.cards import SessionCard, SessionCards
from tests.conftest import ServerFactory, eventually

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeRoom:
    """Stands for one loading of a room: cards only compare its identity."""


def card(session_id: str, room: FakeRoom, *names: str) -> SessionCard:
    people = tuple(ParticipantCardRecord(f"p-{n}", n, "#000000", "editor", T0) for n in names)
    return SessionCard(session_id, T0, T0, f"v-{session_id}", people, weakref.ref(room))  # type: ignore[arg-type]


def test_a_card_belongs_to_one_loading_of_its_room() -> None:
    cards = SessionCards(10)
    first, second = FakeRoom(), FakeRoom()
    cards.keep(card("s", first), cards.epoch())
    assert cards.get("s", first) is not None  # type: ignore[arg-type]
    assert cards.get("s", second) is None  # type: ignore[arg-type]
    del first
    gc.collect()
    assert cards.get("s", second) is None  # type: ignore[arg-type]


def test_a_read_that_overlapped_a_write_is_not_kept() -> None:
    cards = SessionCards(10)
    room = FakeRoom()
    epoch = cards.epoch()  # a read begins
    cards.forget("other")  # any write commits meanwhile
    cards.keep(card("s", room, "Ada"), epoch)
    assert cards.get("s", room) is None  # type: ignore[arg-type]
    cards.keep(card("s", room, "Ada"), cards.epoch())
    assert cards.get("s", room) is not None  # type: ignore[arg-type]
    cards.forget("s")
    assert cards.get("s", room) is None  # type: ignore[arg-type]


def test_cards_are_bounded_least_recently_read_first_out() -> None:
    cards = SessionCards(3)
    room = FakeRoom()
    for sid in "abc":
        cards.keep(card(sid, room), cards.epoch())
    assert cards.get("a", room) is not None  # type: ignore[arg-type]
    cards.keep(card("d", room), cards.epoch())
    assert len(cards) == 3
    assert cards.get("b", room) is None  # type: ignore[arg-type]
    assert all(cards.get(sid, room) is not None for sid in "acd")  # type: ignore[arg-type]
    off = SessionCards(0)
    off.keep(card("a", room), off.epoch())
    assert len(off) == 0


@contextmanager
def counted_database_work(app: Any) -> Iterator[list[str]]:
    """Every statement the app sends through its ORM engine or its driver-level writer, by name."""
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split()[0])

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    driver = app.state.collab.log.driver
    names = ("session_exists", "load", "participants", "session_card", "stored_sessions")
    originals = {name: getattr(driver, name) for name in names}

    def counting(name: str) -> Any:
        async def call(*args: Any) -> Any:
            seen.append(f"driver.{name}")
            return await originals[name](*args)

        return call

    for name in originals:
        setattr(driver, name, counting(name))
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        for name, original in originals.items():
            setattr(driver, name, original)


async def append_behind_the_row(live: Any, session_id: str, text: str) -> None:
    """Commit a change of the session's text straight to its update log, as a room would, without the session
    row's copy hearing of it (as after a crash between a commit and the next copy to the row)."""
    stored_doc = await live.log.load(session_id)
    shared = SharedDoc()
    for data in stored_doc.updates:
        shared.doc.apply_update(data)
    state = shared.doc.get_state()
    shared.replace_text(text)
    await live.log.append(session_id, shared.doc.get_update(state))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_reading_a_loaded_session_needs_no_database_and_sees_every_join(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(room_unload_grace_seconds=600)
    app = server.server.config.app
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        created = (await http.post("/v1/sessions", json={"title": "cards"})).json()
        sid, viewer_id = created["id"], created["viewerId"]
        await http.post(f"/v1/sessions/{sid}/participants", json={"name": "Ada"})
        # A write loads the room (a read of a session nobody has open answers from its row and loads nothing).
        assert (await http.put(f"/v1/sessions/{sid}", json={"code": "print(1)\n"})).status_code == 200
        first = (await http.get(f"/v1/sessions/{sid}")).json()  # reads the row once, beside the loaded room
        with counted_database_work(app) as seen:
            for _ in range(5):
                again = (await http.get(f"/v1/sessions/{sid}")).json()
                assert again == first
        assert seen == []

        # Joins through either link are seen by the very next read.
        await http.post(f"/v1/sessions/{sid}/participants", json={"name": "Grace"})
        names = [p["name"] for p in (await http.get(f"/v1/sessions/{sid}")).json()["participants"]]
        assert names == ["Ada", "Grace"]
        await http.post(f"/v1/views/{viewer_id}/participants", json={"name": "Watcher"})
        body = (await http.get(f"/v1/sessions/{sid}")).json()
        assert [(p["name"], p["role"]) for p in body["participants"]] == [
            ("Ada", "editor"), ("Grace", "editor"), ("Watcher", "viewer"),
        ]  # fmt: skip

        # A REST write through the room is in the next read, from memory.
        put = await http.put(f"/v1/sessions/{sid}", json={"code": "print('changed')\n"})
        assert put.status_code == 200
        with counted_database_work(app) as seen:
            body = (await http.get(f"/v1/sessions/{sid}")).json()
        assert seen == [] and body["code"] == "print('changed')\n"
        assert body["updatedAt"] == put.json()["updatedAt"]

        # An unknown session is still a 404 in the one error shape.
        missing = await http.get("/v1/sessions/no-such-session-0000000000")
        assert missing.status_code == 404 and missing.json()["error"] == "session_not_found"


async def test_a_session_nobody_has_open_is_read_from_its_row_while_it_is_exact(server_factory: ServerFactory) -> None:
    """Once a room unloads, its row holds the document's exact text and a read builds no room; a row that reached
    the log afterwards (as after a crash between a commit and the next copy to the row) sends reads through the
    document again."""
    server = await server_factory(room_unload_grace_seconds=0)
    app = server.server.config.app
    live = app.state.collab
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        created = (await http.post("/v1/sessions", json={"title": "rows", "code": "first\n"})).json()
        sid, viewer_id = created["id"], created["viewerId"]
        # A new session's first read builds its room from the update kept at its creation (no document read).
        with counted_database_work(app) as seen:
            body = (await http.get(f"/v1/sessions/{sid}")).json()
        assert "driver.load" not in seen and body["code"] == "first\n"
        await http.post(f"/v1/sessions/{sid}/participants", json={"name": "Ada"})
        put = await http.put(f"/v1/sessions/{sid}", json={"code": "second\n", "title": "rows 2"})
        assert put.status_code == 200

        async def exact() -> bool:
            stored = await live.stored_session(sid)
            return live.peek(sid) is None and stored is not None and stored.exact

        await eventually(exact)
        with counted_database_work(app) as seen:
            body = (await http.get(f"/v1/sessions/{sid}")).json()
            view = (await http.get(f"/v1/views/{viewer_id}")).json()
        assert "driver.load" not in seen and live.peek(sid) is None
        assert (body["code"], body["title"], body["language"]) == ("second\n", "rows 2", created["language"])
        assert body["updatedAt"] == put.json()["updatedAt"]
        assert [p["name"] for p in body["participants"]] == ["Ada"]
        assert (view["code"], view["title"]) == ("second\n", "rows 2")

        # A committed change the row was never told of.
        await append_behind_the_row(live, sid, "third\n")
        assert not (await live.stored_session(sid)).exact
        with counted_database_work(app) as seen:
            body = (await http.get(f"/v1/sessions/{sid}")).json()
        assert "driver.load" in seen and body["code"] == "third\n"
        view = (await http.get(f"/v1/views/{viewer_id}")).json()
        assert view["code"] == "third\n"
        await eventually(exact)  # that read's room unloaded and marked the row exact again
        assert (await http.get(f"/v1/sessions/{sid}")).json()["code"] == "third\n"


async def test_a_session_nobody_has_open_is_read_from_memory_until_it_changes(server_factory: ServerFactory) -> None:
    """Once its row is exact, a session is read once and then from memory; every way it can change (a join, a
    removal, a new read-only link, its end and reopen, a write through its room, its deletion) is in the very next
    read, and nothing of that read came from before the change."""
    server = await server_factory(room_unload_grace_seconds=0)
    app = server.server.config.app
    live = app.state.collab
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        created = (await http.post("/v1/sessions", json={"title": "kept", "code": "one\n"})).json()
        sid, owner = created["id"], {"X-Owner-Key": created["ownerKey"]}

        async def exact() -> bool:
            return live.peek(sid) is None and sid in live.log.kept

        async def read() -> dict[str, Any]:
            """The session, once its row is exact again: from memory, no database work at all."""
            await eventually(exact)
            with counted_database_work(app) as seen:
                body: dict[str, Any] = (await http.get(f"/v1/sessions/{sid}")).json()
                assert (await http.get(f"/v1/sessions/{sid}")).json() == body
            assert seen == []
            return body

        await http.get(f"/v1/sessions/{sid}")  # builds its room from the kept first update; it unloads at once
        await eventually(lambda: _stored_exact(live, sid))
        await http.get(f"/v1/sessions/{sid}")  # reads the exact row, and keeps it
        assert (await read())["code"] == "one\n"

        ada = (await http.post(f"/v1/sessions/{sid}/participants", json={"name": "Ada"})).json()
        assert [p["name"] for p in (await http.get(f"/v1/sessions/{sid}")).json()["participants"]] == ["Ada"]
        await http.get(f"/v1/sessions/{sid}")
        assert [p["name"] for p in (await read())["participants"]] == ["Ada"]

        removed = await http.delete(f"/v1/sessions/{sid}/participants/{ada['id']}", headers=owner)
        assert removed.status_code == 204
        assert (await http.get(f"/v1/sessions/{sid}")).json()["participants"] == []

        rotated = await http.post(f"/v1/sessions/{sid}/invites", json={"role": "viewer"}, headers=owner)
        assert rotated.status_code == 200
        body = (await http.get(f"/v1/sessions/{sid}")).json()
        assert body["viewerId"] != created["viewerId"] and body["viewerId"] == rotated.json()["viewerId"]

        ended = await http.post(f"/v1/sessions/{sid}/end", headers=owner)
        assert ended.status_code == 200
        assert (await http.get(f"/v1/sessions/{sid}")).json()["endedAt"] == ended.json()["endedAt"]
        assert (await read())["endedAt"] == ended.json()["endedAt"]
        assert (await http.post(f"/v1/sessions/{sid}/reopen", headers=owner)).status_code == 200
        assert (await http.get(f"/v1/sessions/{sid}")).json()["endedAt"] is None

        put = await http.put(f"/v1/sessions/{sid}", json={"code": "two\n", "title": "kept 2"})
        assert put.status_code == 200
        await eventually(lambda: _stored_exact(live, sid))
        body = (await http.get(f"/v1/sessions/{sid}")).json()
        assert (body["code"], body["title"], body["updatedAt"]) == ("two\n", "kept 2", put.json()["updatedAt"])
        assert (await read())["code"] == "two\n"

        # A committed change the row was never told of (as after a crash between a commit and the next copy to
        # the row): what was kept goes with it, and the read goes through the document.
        await append_behind_the_row(live, sid, "three\n")
        assert (await http.get(f"/v1/sessions/{sid}")).json()["code"] == "three\n"

        assert (await http.delete(f"/v1/sessions/{sid}", headers=owner)).status_code == 204
        gone = await http.get(f"/v1/sessions/{sid}")
        assert gone.status_code == 404 and gone.json()["error"] == "session_not_found"


async def _stored_exact(live: Any, session_id: str) -> bool:
    stored = await live.stored_session(session_id)
    return live.peek(session_id) is None and stored is not None and stored.exact


async def test_with_no_memory_for_them_every_read_of_a_session_nobody_has_open_goes_to_its_row(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(room_unload_grace_seconds=0, session_read_cache_bytes=0)
    app = server.server.config.app
    live = app.state.collab
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        sid = (await http.post("/v1/sessions", json={"title": "not kept"})).json()["id"]
        await http.get(f"/v1/sessions/{sid}")
        await eventually(lambda: _stored_exact(live, sid))
        with counted_database_work(app) as seen:
            for _ in range(3):
                assert (await http.get(f"/v1/sessions/{sid}")).status_code == 200
        assert seen.count("driver.stored_sessions") == 3 and len(live.log.kept) == 0
