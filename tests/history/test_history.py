"""History and playback: the timeline, the text at any change, authors, restore, export/import, bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pycrdt import Doc

from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory, eventually


def owner(session: dict[str, Any]) -> dict[str, str]:
    return {"X-Owner-Key": session["ownerKey"]}


async def history(client: httpx.AsyncClient, session: dict[str, Any]) -> dict[str, Any]:
    r = await client.get(f"/v1/sessions/{session['id']}/history", headers=owner(session))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def point(client: httpx.AsyncClient, session: dict[str, Any], **query: Any) -> dict[str, Any]:
    r = await client.get(f"/v1/sessions/{session['id']}/history/at", params=query, headers=owner(session))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def type_into(c: YClient, text: str, at: int | None = None) -> None:
    """Type ``text`` one character per update, at ``at`` (default: the end), and wait for the echo-free sync."""
    for ch in text:
        position = len(c.code) if at is None else at
        c.code.insert(position, ch)
        if at is not None:
            at += len(ch.encode())
        await asyncio.sleep(0)


async def server_text(client: httpx.AsyncClient, session: dict[str, Any]) -> str:
    r = await client.get(f"/v1/sessions/{session['id']}")
    text: str = r.json()["code"]
    return text


async def test_three_writers_text_at_every_recorded_moment(server_factory: ServerFactory) -> None:
    server = await server_factory(compact_after_updates=10)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session = await new_session(client, code="")
        people = [await join(client, session["id"], name) for name in ("Ada", "Grace", "Linus")]
        clients = [await YClient(collab_url(server.ws_url, session["id"], p["token"])).connect() for p in people]
        recorded: list[tuple[datetime, str]] = []
        for round_ in range(4):
            for i, c in enumerate(clients):
                await type_into(c, f"{'abc'[i]}{round_}é😀\n")
                await eventually(lambda: _same(clients))
                await asyncio.sleep(0.02)  # the server's receive times of the next batch come strictly later
                recorded.append((datetime.now(UTC), await server_text(client, session)))
        # An offline edit arriving late: Linus types while disconnected, then reconnects.
        await clients[2].close()
        offline = Doc()
        offline.apply_update(clients[2].doc.get_update())
        late = YClient(collab_url(server.ws_url, session["id"], people[2]["token"]), doc=offline)
        late.code.insert(0, "# offline\n")
        await type_into(clients[0], "after\n")
        await eventually(lambda: _same(clients[:2]))
        await asyncio.sleep(0.02)
        recorded.append((datetime.now(UTC), await server_text(client, session)))
        await late.connect()
        await eventually(lambda: _true(late.text == clients[0].text and late.text.startswith("# offline")))
        await asyncio.sleep(0.02)
        recorded.append((datetime.now(UTC), await server_text(client, session)))

        for when, text in recorded:
            assert (await point(client, session, at=when.isoformat()))["code"] == text
        timeline = await history(client, session)
        assert timeline["total"] == len(timeline["changes"])
        last = await point(client, session, index=timeline["total"] - 1)
        assert last["code"] == await server_text(client, session)
        # Authors: each writer's lines are theirs; the ranges cover the text (UTF-16 offsets).
        ids = {p["id"]: p["name"] for p in people}
        code = last["code"]
        assert last["authors"][0]["start"] == 0
        assert last["authors"][-1]["end"] == len(code.encode("utf-16-le")) // 2
        utf16 = code.encode("utf-16-le")
        for r in last["authors"]:
            piece = utf16[2 * r["start"] : 2 * r["end"]].decode("utf-16-le")
            for line in piece.split("\n"):
                if line[:1] in ("a", "b", "c") and len(line) > 1:
                    assert ids.get(r["author"]) == {"a": "Ada", "b": "Grace", "c": "Linus"}[line[0]], (piece, r)
        linus = [utf16[2 * r["start"] : 2 * r["end"]].decode("utf-16-le") for r in last["authors"]
                 if r["author"] == people[2]["id"]]
        assert any("# offline" in piece for piece in linus)
        kinds = {c["kind"] for c in timeline["changes"]}
        assert "edit" in kinds
        assert {c["author"] for c in timeline["changes"]} >= {p["id"] for p in people}
        for c in clients[:2] + [late]:
            await c.close()


async def _same(clients: list[YClient]) -> bool:
    return len({c.text for c in clients}) == 1


async def test_history_survives_compaction_unload_and_restart(server_factory: ServerFactory) -> None:
    server = await server_factory(compact_after_updates=5, room_unload_grace_seconds=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session = await new_session(client, code="start\n")
        ada = await join(client, session["id"], "Ada")
        c = await YClient(collab_url(server.ws_url, session["id"], ada["token"])).connect()
        await type_into(c, "hello world\n")
        r = await client.put(f"/v1/sessions/{session['id']}/language", json={"language": "javascript"})
        assert r.status_code == 200
        r = await client.put(f"/v1/sessions/{session['id']}", json={"code": "rest\n", "title": "T2"})
        assert r.status_code == 200
        await c.close()
        app: Any = server.server.config.app
        await eventually(lambda: _unloaded(app, session["id"]))
        before = await history(client, session)
    await server.stop()
    server = await server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        after = await history(client, session)
        assert after == before
        kinds = [c["kind"] for c in after["changes"]]
        assert "language" in kinds and "title" in kinds or "edit" in kinds
        assert "language" in kinds
        assert after["changes"][0]["author"] is None  # the creation: the server's
        assert after["changes"][0]["kind"] == "edit" and after["changes"][0]["inserted"] == len("start\n")
        typed = [c for c in after["changes"] if c["author"] == ada["id"]]
        assert len(typed) == len("hello world\n") and all(c["inserted"] == 1 for c in typed)
        text = "start\nhello world\n"
        idx = typed[-1]["index"]
        at = await point(client, session, index=idx)
        assert at["code"] == text and at["language"] == "python"
        assert at["authors"] == [
            {"start": 0, "end": 6, "author": None}, {"start": 6, "end": len(text), "author": ada["id"]},
        ]
        end = await point(client, session, index=after["total"] - 1)
        assert (end["code"], end["language"], end["title"]) == ("rest\n", "javascript", "T2")
        # Paging.
        r = await client.get(f"/v1/sessions/{session['id']}/history", params={"limit": 3}, headers=owner(session))
        page = r.json()
        assert r.status_code == 200, r.text
        assert [c["index"] for c in page["changes"]] == [0, 1, 2] and page["next"] == 2
        r = await client.get(f"/v1/sessions/{session['id']}/history", params={"after": page["next"], "limit": 3},
                             headers=owner(session))
        assert [c["index"] for c in r.json()["changes"]] == [3, 4, 5]


async def _unloaded(app: Any, session_id: str) -> bool:
    return not app.state.collab.holds(session_id)


async def test_restore_merges_with_a_concurrent_typist(server: LiveServer, client: httpx.AsyncClient) -> None:
    session = await new_session(client, code="one\n")
    ada = await join(client, session["id"], "Ada")
    c = await YClient(collab_url(server.ws_url, session["id"], ada["token"])).connect()
    await type_into(c, "two\n")
    await eventually(lambda: _server_has(client, session, "one\ntwo\n"))
    mark = (await history(client, session))["total"] - 1
    await type_into(c, "three\n")
    await eventually(lambda: _server_has(client, session, "one\ntwo\nthree\n"))
    # Ada types at the top while the owner restores the point after "two": her edit, made before she hears of
    # the restore, reaches the server after it.
    await c.close()
    concurrent = Doc()
    concurrent.apply_update(c.doc.get_update())
    typist = YClient(collab_url(server.ws_url, session["id"], ada["token"]), doc=concurrent)
    typist.code.insert(0, "# top\n")
    r = await client.post(f"/v1/sessions/{session['id']}/restore", json={"index": mark}, headers=owner(session))
    assert r.status_code == 200, r.text
    assert r.json()["code"] == "one\ntwo\n"
    await typist.connect()
    await eventually(lambda: _server_has(client, session, "# top\none\ntwo\n"))
    await eventually(lambda: _true(typist.text == "# top\none\ntwo\n"))
    c = typist
    timeline = await history(client, session)
    assert "restore" in [x["kind"] for x in timeline["changes"]]
    # Restore needs the owner key; on an ended session it is 409; nothing changed.
    r = await client.post(f"/v1/sessions/{session['id']}/restore", json={"index": 0})
    assert r.status_code == 401
    r = await client.post(f"/v1/sessions/{session['id']}/restore", json={"index": 0},
                          headers={"X-Participant-Token": ada["token"]})
    assert r.status_code == 401
    r = await client.post(f"/v1/sessions/{session['id']}/end", headers=owner(session))
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/sessions/{session['id']}/restore", json={"index": 0}, headers=owner(session))
    assert r.status_code == 409 and r.json()["error"] == "session_ended"
    assert await server_text(client, session) == "# top\none\ntwo\n"
    await c.close()
    r = await client.delete(f"/v1/sessions/{session['id']}", headers=owner(session))
    assert r.status_code == 204
    r = await client.post(f"/v1/sessions/{session['id']}/restore", json={"index": 0}, headers=owner(session))
    assert r.status_code == 404


async def _server_has(client: httpx.AsyncClient, session: dict[str, Any], text: str) -> bool:
    return await server_text(client, session) == text


async def _true(value: bool) -> bool:
    return value


async def test_export_import_round_trip(server: LiveServer, client: httpx.AsyncClient) -> None:
    session = await new_session(client, code="x = 1\n")
    ada = await join(client, session["id"], "Ada")
    c = await YClient(collab_url(server.ws_url, session["id"], ada["token"])).connect()
    await type_into(c, "y = 2\n")
    await c.close()
    r = await client.put(f"/v1/sessions/{session['id']}/notes", json={"text": "strong start", "version": 0},
                         headers=owner(session))
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/sessions/{session['id']}/export", headers=owner(session))
    assert r.status_code == 200, r.text
    exported = r.json()
    assert "token" not in r.text and "Hash" not in r.text and session["ownerKey"] not in r.text
    assert exported["notes"]["text"] == "strong start"
    r = await client.post("/v1/sessions/import", json=exported)
    assert r.status_code == 201, r.text
    rebuilt = r.json()
    assert rebuilt["id"] != session["id"] and rebuilt["code"] == "x = 1\ny = 2\n"
    old, new = await history(client, session), await history(client, rebuilt)
    assert new["total"] == old["total"]
    [new_ada] = new["participants"]
    assert new_ada["name"] == "Ada" and new_ada["id"] != ada["id"]
    for i in range(old["total"]):
        a, b = await point(client, session, index=i), await point(client, rebuilt, index=i)
        assert a["code"] == b["code"] and a["at"] == b["at"]
        assert [x["author"] is None for x in a["authors"]] == [x["author"] is None for x in b["authors"]]
    r = await client.get(f"/v1/sessions/{rebuilt['id']}/notes", headers=owner(rebuilt))
    assert r.json()["text"] == "strong start"
    # A broken export is a 422, and nothing is created.
    exported["history"][0]["update"] = "not base64!"
    assert (await client.post("/v1/sessions/import", json=exported)).status_code == 422
    exported["history"][0]["update"] = "/////w=="
    r = await client.post("/v1/sessions/import", json=exported)
    assert r.status_code == 422, r.text


async def test_bad_input(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    sid = session["id"]
    base = f"/v1/sessions/{sid}/history"
    cases = [
        (f"{base}/at", {"index": 10_000}, owner(session), 404, "history_point_not_found"),
        (f"{base}/at", {"at": "2001-01-01T00:00:00Z"}, owner(session), 404, "history_point_not_found"),
        (f"{base}/at", {"at": "yesterday"}, owner(session), 422, "validation_error"),
        (f"{base}/at", {}, owner(session), 422, "history_point_invalid"),
        (f"{base}/at", {"at": datetime.now(UTC).isoformat(), "index": 0}, owner(session), 422,
         "history_point_invalid"),
        (f"{base}/at", {"index": -1}, owner(session), 422, "validation_error"),
        (base, {}, {}, 401, "history_credentials_required"),
        (base, {}, {"X-Owner-Key": "nope"}, 403, "history_forbidden"),
        ("/v1/sessions/nosuchsession/history", {}, owner(session), 404, "session_not_found"),
    ]
    for path, params, headers, status, code in cases:
        r = await client.get(path, params=params, headers=headers)
        assert (r.status_code, r.json()["error"]) == (status, code), (path, params, r.text)
    ada = await join(client, sid, "Ada")
    r = await client.get(base, headers={"X-Participant-Token": ada["token"]})
    assert (r.status_code, r.json()["error"]) == (403, "history_owner_only")
    r = await client.post(f"/v1/sessions/{sid}/restore", json={"index": 0, "at": "2020-01-01T00:00:00Z"},
                          headers=owner(session))
    assert r.status_code == 422
    r = await client.post(f"/v1/sessions/{sid}/restore", json={}, headers=owner(session))
    assert r.status_code == 422
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await point(client, session, at=later))["index"] == 0


async def test_participants_may_read_history_where_allowed(server_factory: ServerFactory) -> None:
    server = await server_factory(history_for_participants=True)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session = await new_session(client)
        ada = await join(client, session["id"], "Ada", "viewer")
        other = await new_session(client)
        bob = await join(client, other["id"], "Bob")
        path = f"/v1/sessions/{session['id']}/history"
        assert (await client.get(path, headers={"X-Participant-Token": ada["token"]})).status_code == 200
        assert (await client.get(path, headers={"X-Participant-Token": bob["token"]})).status_code == 403
        r = await client.post(f"/v1/sessions/{session['id']}/restore", json={"index": 0},
                              headers={"X-Participant-Token": ada["token"]})
        assert r.status_code == 401


async def test_old_history_is_folded_into_the_base_and_the_document_stays(
    server_factory: ServerFactory, database_url: str
) -> None:
    from sqlalchemy import update

    from codeconnect.models import DocHistoryRow, DocUpdateRow
    from tests.sessions.test_retention import purger_of, sql

    server = await server_factory(history_days=1, compact_after_updates=2, room_unload_grace_seconds=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session = await new_session(client, code="a\n")
        for code in ("a\nb\n", "a\nb\nc\n", "a\nb\nc\nd\n"):
            r = await client.put(f"/v1/sessions/{session['id']}", json={"code": code})
            assert r.status_code == 200
        app: Any = server.server.config.app
        await eventually(lambda: _unloaded(app, session["id"]))
        before = await history(client, session)
        assert before["total"] == 4
        # The first three changes are two days old (all moved to the history by the unload's compaction).
        old = [c["index"] for c in before["changes"][:3]]
        assert old == [0, 1, 2]
        ats = await _seqs(database_url, session["id"])
        await sql(database_url, update(DocHistoryRow).where(DocHistoryRow.id.in_(ats[:3]))
                  .values(at=datetime.now(UTC) - timedelta(days=2)))
        await sql(database_url, update(DocUpdateRow).where(DocUpdateRow.id.in_(ats[:3]))
                  .values(at=datetime.now(UTC) - timedelta(days=2)))
        report = await purger_of(server).run()
        assert report.history_dropped == 3
        after = await history(client, session)
        assert after["total"] == 1
        assert (await point(client, session, index=0))["code"] == "a\nb\nc\nd\n"
        assert await server_text(client, session) == "a\nb\nc\nd\n"


async def _seqs(database_url: str, session_id: str) -> list[int]:
    from sqlalchemy import select

    from codeconnect.db import create_engine
    from codeconnect.models import DocHistoryRow

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.scalars(
                select(DocHistoryRow.id).where(DocHistoryRow.session_id == session_id).order_by(DocHistoryRow.id)
            )
            return list(rows.all())
    finally:
        await engine.dispose()
