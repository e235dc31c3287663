"""Attacks on history, playback, notes, restore, export and import: each hostile input a clear 4xx in the error
shape (never a 500), and nothing changed or created by it; memory and waiters bounded; nothing kept of a deleted
session. Real servers, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from codeconnect.db import create_engine
from codeconnect.models import DocBaseRow, SessionRow
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory, eventually


def owner(session: dict[str, Any]) -> dict[str, str]:
    return {"X-Owner-Key": session["ownerKey"]}


def refused(r: httpx.Response, *statuses: int) -> str:
    """The answer is one of ``statuses`` in the error shape; returns its code."""
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    body = r.json()
    assert isinstance(body["error"], str) and isinstance(body["detail"], str), body
    return str(body["error"])


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def sessions_in(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(SessionRow))).scalar_one())


# --- points in time ----------------------------------------------------------------------------------------------

ODD_TIMES = [
    "2024-01-01T00:00:00",  # no offset
    "2024-01-01",  # a date only
    "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    "9999-12-31T23:59:59.999999Z",
    "2016-12-31T23:59:60Z",  # a leap second
    "2030-01-01T00:00:00+14:00",
    "2030-01-01T00:00:00+23:59",
    "2030-01-01T00:00:00+24:00",
    "1e400",
    "99999999999999999999",
    "-1",
]


async def test_odd_points_in_time_are_answered_or_refused(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    sid = session["id"]
    code = (await client.get(f"/v1/sessions/{sid}")).json()["code"]
    for at in ODD_TIMES:
        r = await client.get(f"/v1/sessions/{sid}/history/at", params={"at": at}, headers=owner(session))
        if r.status_code != 200:
            refused(r, 404, 422)
        r = await client.post(f"/v1/sessions/{sid}/restore", json={"at": at}, headers=owner(session))
        if r.status_code != 200:
            refused(r, 404, 422)
    for index in [2**31, 2**63, 2**64, 10**30]:
        r = await client.get(f"/v1/sessions/{sid}/history/at", params={"index": index}, headers=owner(session))
        refused(r, 404, 422)
        r = await client.post(f"/v1/sessions/{sid}/restore", json={"index": index}, headers=owner(session))
        refused(r, 404, 422)
    for params in [{"after": 2**63}, {"after": 10**30}, {"limit": 10**30}, {"after": -1}, {"limit": 0}]:
        r = await client.get(f"/v1/sessions/{sid}/history", params=params, headers=owner(session))
        if r.status_code != 200:
            refused(r, 422)
    assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == code


# --- notes ---------------------------------------------------------------------------------------------------------


async def test_hostile_notes_change_nothing(server_factory: ServerFactory) -> None:
    server = await server_factory(notes_max_bytes=1000)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session = await new_session(client)
        notes = f"/v1/sessions/{session['id']}/notes"
        r = await client.put(notes, json={"text": "first", "version": 0}, headers=owner(session))
        assert r.status_code == 200, r.text
        raw = {"Content-Type": "application/json", **owner(session)}
        cases: list[tuple[bytes, tuple[int, ...]]] = [
            (b'{"text": "a\\u0000b", "version": 1}', (422,)),
            (b'{"text": "a\\ud800b", "version": 1}', (422,)),
            (b'{"text": "\\udfff", "version": 1}', (422,)),
            (b'{"text": "a", "version": 1, "extra": 1}', (422,)),
            (json.dumps({"text": "x" * 1001, "version": 1}).encode(), (413,)),
            (json.dumps({"text": "\u00e9" * 501, "version": 1}).encode(), (413,)),
            (b'{"text": "a", "version": -1}', (422,)),
            (b'{"text": "a", "version": 2147483647}', (409, 422)),
            (b'{"text": "a", "version": 9223372036854775807}', (409, 422)),
            (b'{"text": "a", "version": 9223372036854775808}', (409, 422)),
            (b'{"text": "a", "version": 1e400}', (422,)),
            (b'{"text": "a", "version": 100000000000000000000000000000}', (409, 422)),
            (b'{"text": 1, "version": 1}', (422,)),
            (b'\xff\xfe', (400, 422)),
        ]
        for body, statuses in cases:
            r = await client.put(notes, content=body, headers=raw)
            refused(r, *statuses)
        for since in ["-1", "2147483648", "9223372036854775808", "1" + "0" * 40, "x"]:
            r = await client.get(notes, params={"since": since}, headers=owner(session))
            if r.status_code != 200:
                refused(r, 422)
        r = await client.get(notes, headers=owner(session))
        assert (r.json()["text"], r.json()["version"]) == ("first", 1)


async def test_two_tabs_saving_at_once_exactly_one_wins(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    notes = f"/v1/sessions/{session['id']}/notes"
    for version in (0, 1):
        answers = await asyncio.gather(*[
            client.put(notes, json={"text": f"tab {i}", "version": version}, headers=owner(session)) for i in range(8)
        ])  # fmt: skip
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200] + [409] * 7, statuses
        winner = next(r.json() for r in answers if r.status_code == 200)
        assert winner["version"] == version + 1
        assert (await client.get(notes, headers=owner(session))).json() == winner


async def test_notes_waiters_are_bounded(server_factory: ServerFactory) -> None:
    server = await server_factory(notes_wait_seconds=60, notes_waiters_per_session=3, notes_waiters_max=5)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        first, second = await new_session(client), await new_session(client)
        watch = server.server.config.app.state.notes

        def poll(session: dict[str, Any]) -> asyncio.Task[httpx.Response]:
            path = f"/v1/sessions/{session['id']}/notes"
            return asyncio.create_task(client.get(path, params={"since": 0}, headers=owner(session)))

        waiting = [poll(first) for _ in range(3)]

        async def three() -> bool:
            return watch.waiting() == 3

        await eventually(three)
        r = await client.get(f"/v1/sessions/{first['id']}/notes", params={"since": 0}, headers=owner(first))
        assert refused(r, 429) == "notes_waiters_exceeded"
        waiting += [poll(second) for _ in range(2)]

        async def five() -> bool:
            return watch.waiting() == 5

        await eventually(five)
        r = await client.get(f"/v1/sessions/{second['id']}/notes", params={"since": 0}, headers=owner(second))
        assert refused(r, 429) == "notes_waiters_exceeded"
        # Without `since`, nobody waits: always answered.
        assert (await client.get(f"/v1/sessions/{second['id']}/notes", headers=owner(second))).status_code == 200
        for session in (first, second):
            r = await client.put(f"/v1/sessions/{session['id']}/notes", json={"text": "n", "version": 0},
                                 headers=owner(session))
            assert r.status_code == 200, r.text
        for answer in await asyncio.gather(*waiting):
            assert answer.status_code == 200 and answer.json()["version"] == 1
        assert watch.waiting() == 0


async def typed_session(client: httpx.AsyncClient, changes: int) -> tuple[dict[str, Any], str]:
    """A new session with ``changes`` changes: its first code, then a line more each time; with its code."""
    session = await new_session(client, code="0\n")
    code = "0\n"
    for i in range(1, changes):
        code += f"{i}\n"
        assert (await client.put(f"/v1/sessions/{session['id']}", json={"code": code})).status_code == 200
    return session, code


async def test_a_history_longer_than_the_limit_is_refused_never_loaded(server_factory: ServerFactory) -> None:
    # A session typed into without end must not make a read of its history load it all into the process: past
    # CODECONNECT_HISTORY_MAX_CHANGES the history routes and the export answer 413, and the session goes on.
    server = await server_factory(history_max_changes=5, compact_after_updates=3)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session, code = await typed_session(client, 5)
        sid = session["id"]
        r = await client.get(f"/v1/sessions/{sid}/history", headers=owner(session))
        assert r.status_code == 200 and r.json()["total"] == 5, r.text  # at the limit: all of it
        r = await client.get(f"/v1/sessions/{sid}/export", headers=owner(session))
        assert r.status_code == 200 and len(r.json()["history"]) == 5, r.text
        code += "5\n"
        assert (await client.put(f"/v1/sessions/{sid}", json={"code": code})).status_code == 200
        for path in ("history", "history/at?index=0", "export"):  # the first one reads on top of the cached five
            r = await client.get(f"/v1/sessions/{sid}/{path}", headers=owner(session))
            assert refused(r, 413) == "history_too_long", path
        r = await client.post(f"/v1/sessions/{sid}/restore", json={"index": 0}, headers=owner(session))
        assert refused(r, 413) == "history_too_long"
        r = await client.get(f"/v1/sessions/{sid}")
        assert r.status_code == 200 and r.json()["code"] == code


async def test_an_export_counts_its_base_as_an_import_does(server_factory: ServerFactory) -> None:
    # An import counts the base and the changes against its limit; so must the export, or a session's export at the
    # limit (a retention base and a full history) is one that no server with the same defaults takes back.
    server = await server_factory(history_max_changes=5, import_max_changes=5, rate_sessions_per_minute=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session, code = await typed_session(client, 4)
        sid = session["id"]
        async with server.server.config.app.state.sessionmaker() as db:
            db.add(DocBaseRow(session_id=sid, upto=0, data=b"\x00\x00"))  # what a retention fold leaves, empty here
            await db.commit()
        r = await client.get(f"/v1/sessions/{sid}/export", headers=owner(session))
        assert r.status_code == 200 and (len(r.json()["base"]), len(r.json()["history"])) == (1, 4), r.text
        imported = await client.post("/v1/sessions/import", json=r.json())
        assert imported.status_code == 201, imported.text
        code += "4\n"
        assert (await client.put(f"/v1/sessions/{sid}", json={"code": code})).status_code == 200
        r = await client.get(f"/v1/sessions/{sid}/export", headers=owner(session))
        assert refused(r, 413) == "history_too_long"


async def test_a_notes_long_poll_whose_client_went_away_frees_its_place(server_factory: ServerFactory) -> None:
    # Someone holding the owner key opens long-polls and drops them: each must give its place back at once, or
    # a few dropped requests a minute would keep the owner's own tabs out (429) for the whole wait.
    server = await server_factory(notes_wait_seconds=120, notes_waiters_per_session=2)
    watch = server.server.config.app.state.notes
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        session = await new_session(client)
    path = f"/v1/sessions/{session['id']}/notes"
    for _round in range(2):
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as dropping:
            polls = [asyncio.create_task(dropping.get(path, params={"since": 0}, headers=owner(session)))
                     for _ in range(2)]

            async def two() -> bool:
                return watch.waiting() == 2

            await eventually(two)
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)

        async def none() -> bool:
            return watch.waiting() == 0

        await eventually(none)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        waiter = asyncio.create_task(client.get(path, params={"since": 0}, headers=owner(session)))

        async def one() -> bool:
            return watch.waiting() == 1

        await eventually(one)
        r = await client.put(path, json={"text": "mine", "version": 0}, headers=owner(session))
        assert r.status_code == 200, r.text
        answer = await waiter
        assert answer.status_code == 200 and answer.json()["text"] == "mine"


async def test_a_stopping_server_answers_its_notes_long_polls_at_once(server_factory: ServerFactory) -> None:
    # A long-poll must not hold a stopping server (a rolling restart) for its whole wait, nor be cut at the end of
    # the graceful shutdown (the harness's 5 s, `codeconnect serve`'s 10 s) with no answer: it answers the notes as
    # they are as soon as the stop begins, and the owner's page polls again elsewhere.
    server = await server_factory(notes_wait_seconds=120)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        session = await new_session(client)
        watch = server.server.config.app.state.notes
        waiter = asyncio.create_task(
            client.get(f"/v1/sessions/{session['id']}/notes", params={"since": 0}, headers=owner(session))
        )

        async def one() -> bool:
            return watch.waiting() == 1

        await eventually(one)
        await server.stop()
        answer = await waiter  # cut with the connection, this raises
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 0 and watch.waiting() == 0


async def test_deleting_a_session_drops_what_the_process_holds_of_its_history(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    session = await new_session(client, code="x = 1\n")
    sid = session["id"]
    assert (await client.get(f"/v1/sessions/{sid}/history", headers=owner(session))).status_code == 200
    cache = server.server.config.app.state.history
    assert sid in cache._timelines
    assert (await client.delete(f"/v1/sessions/{sid}", headers=owner(session))).status_code == 204
    assert sid not in cache._timelines
    for path in ("history", "history/at?index=0", "notes", "export"):
        r = await client.get(f"/v1/sessions/{sid}/{path}", headers=owner(session))
        assert refused(r, 404) == "session_not_found"
    r = await client.post(f"/v1/sessions/{sid}/restore", json={"index": 0}, headers=owner(session))
    assert refused(r, 404) == "session_not_found"


# --- import -------------------------------------------------------------------------------------------------------


async def an_export(server: LiveServer, client: httpx.AsyncClient) -> dict[str, Any]:
    session = await new_session(client, code="x = 1\n")
    ada = await join(client, session["id"], "Ada")
    c = await YClient(collab_url(server.ws_url, session["id"], ada["token"])).connect()
    c.code.insert(len(c.code), "y = 2\n")

    async def stored() -> bool:
        return "y = 2" in (await client.get(f"/v1/sessions/{session['id']}")).json()["code"]

    await eventually(stored)
    await c.close()
    r = await client.put(f"/v1/sessions/{session['id']}/notes", json={"text": "fine", "version": 0},
                         headers=owner(session))
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/sessions/{session['id']}/export", headers=owner(session))
    assert r.status_code == 200, r.text
    exported: dict[str, Any] = r.json()
    return exported


def _participant(exported: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(exported)
    changed["participants"][0].update(fields)
    return changed


async def test_hostile_imports_create_nothing(server_factory: ServerFactory, db: AsyncEngine) -> None:
    server = await server_factory(
        max_participants=5, max_name_length=10, notes_max_bytes=100, max_code_bytes=1000, max_document_bytes=4000,
        import_max_changes=50, rate_sessions_per_minute=0,
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        good = await an_export(server, client)
        ada = good["participants"][0]
        history = good["history"]
        cases: dict[str, dict[str, Any]] = {
            "role owner": _participant(good, role="owner"),
            "color not a colour": _participant(good, color="red;x:y"),
            "color script": _participant(good, color="</style>"),
            "name too long": _participant(good, name="A" * 11),
            "name with control": _participant(good, name="A\u001b[31m"),
            "name reordering": _participant(good, name="\u202eadA"),
            "name invisible": _participant(good, name="\u200b"),
            "too many participants": {**good, "participants": [
                {**ada, "id": f"p{i}", "name": f"P{i}"} for i in range(6)
            ]},
            "duplicate participant ids": {**good, "participants": [ada, {**ada, "name": "Bob"}]},
            "notes too large": {**good, "notes": {**good["notes"], "text": "n" * 101}},
            "notes version huge": {**good, "notes": {**good["notes"], "version": 2**63}},
            "notes surrogate": {**good, "notes": {**good["notes"], "text": "\ud800"}},
            "time far past with offset": {**good, "history": [{**history[0], "at": "0001-01-01T00:00:00+14:00"},
                                                              *history[1:]]},
            "time far future with offset": {**good, "history": [
                *history[:-1], {**history[-1], "at": "9999-12-31T23:59:59-14:00"}
            ]},
            "time without offset": {**good, "history": [{**history[0], "at": "2024-01-01T00:00:00"}, *history[1:]]},
            "history out of order": {**good, "history": [
                {**history[0], "at": "2030-01-01T00:00:00Z"}, *history[1:]
            ]},
            "created without offset": {**good, "session": {**good["session"], "createdAt": "2024-01-01T00:00:00"}},
            "created far past": {**good, "session": {**good["session"], "createdAt": "0001-01-01T00:00:00+14:00"}},
            "joined far past": _participant(good, joinedAt="0001-01-01T00:00:00+14:00"),
            "too many changes": {**good, "history": history + [
                {**history[-1], "update": "AAA="} for _ in range(50)
            ]},
            "code too large": {**good, "base": [], "history": [], "session": {**good["session"], "code": "x" * 1001}},
            "title with NUL": {**good, "base": [], "history": [], "session": {**good["session"], "title": "a\u0000"}},
            "title empty": {**good, "base": [], "history": [], "session": {**good["session"], "title": ""}},
            "language unknown": {**good, "session": {**good["session"], "language": "cobol"}},
        }
        before = await sessions_in(db)
        for name, body in cases.items():
            r = await client.post("/v1/sessions/import", content=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"})
            assert r.status_code in (413, 422), (name, r.status_code, r.text[:300])
            refused(r, 413, 422)
        assert await sessions_in(db) == before
        # A document over the size limit: exported where it was allowed.
        roomy = await server_factory()
        async with httpx.AsyncClient(base_url=roomy.base_url, timeout=30) as elsewhere:
            big = await new_session(elsewhere, code="x" * 5000)
            exported = (await elsewhere.get(f"/v1/sessions/{big['id']}/export", headers=owner(big))).json()
        before = await sessions_in(db)
        r = await client.post("/v1/sessions/import", json=exported)
        assert refused(r, 413) == "document_too_large"
        assert await sessions_in(db) == before
        # The good export still imports.
        r = await client.post("/v1/sessions/import", json=good)
        assert r.status_code == 201, r.text


async def test_import_updates_with_missing_dependencies_are_refused(
    server: LiveServer, client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    good = await an_export(server, client)
    # Without its first change, every later one depends on something the import does not have.
    body = {**good, "history": good["history"][1:]}
    before = await sessions_in(db)
    r = await client.post("/v1/sessions/import", json=body)
    refused(r, 422)
    assert await sessions_in(db) == before


async def test_import_is_rate_limited_like_creations(server_factory: ServerFactory) -> None:
    server = await server_factory(rate_sessions_per_minute=2)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        exported = await an_export(server, client)  # spends one creation
        r = await client.post("/v1/sessions/import", json=exported)
        assert r.status_code == 201, r.text
        r = await client.post("/v1/sessions/import", json=exported)
        assert refused(r, 429) == "rate_limited"
        r = await client.post("/v1/sessions/import", content=b"{}", headers={"Content-Type": "application/json"})
        assert refused(r, 429) == "rate_limited"


async def test_restore_keeps_to_the_code_limit_of_now(server_factory: ServerFactory) -> None:
    roomy = await server_factory()
    async with httpx.AsyncClient(base_url=roomy.base_url, timeout=30) as client:
        session = await new_session(client, code="x" * 2000)
    strict = await server_factory(max_code_bytes=1000)
    async with httpx.AsyncClient(base_url=strict.base_url, timeout=30) as client:
        sid = session["id"]
        r = await client.put(f"/v1/sessions/{sid}", json={"code": "short\n"})
        assert r.status_code == 200, r.text
        r = await client.post(f"/v1/sessions/{sid}/restore", json={"index": 0}, headers=owner(session))
        assert refused(r, 413) == "code_too_large"
        assert (await client.get(f"/v1/sessions/{sid}")).json()["code"] == "short\n"
