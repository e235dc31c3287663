"""Deleting a session: `DELETE /v1/sessions/{sessionId}` with the owner key, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from codeconnect.db import create_engine
from codeconnect.models import DocBaseRow, DocHistoryRow, DocUpdateRow, ParticipantRow, SessionNoteRow, SessionRow
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, ServerFactory


async def rows_of(database_url: str, session_id: str) -> dict[str, int]:
    """How many rows of each table belong to the session."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return {
                "sessions": await conn.scalar(select(func.count()).where(SessionRow.id == session_id)),
                "participants": await conn.scalar(
                    select(func.count()).where(ParticipantRow.session_id == session_id)
                ),
                "doc_updates": await conn.scalar(select(func.count()).where(DocUpdateRow.session_id == session_id)),
                "doc_history": await conn.scalar(select(func.count()).where(DocHistoryRow.session_id == session_id)),
                "doc_bases": await conn.scalar(select(func.count()).where(DocBaseRow.session_id == session_id)),
                "session_notes": await conn.scalar(
                    select(func.count()).where(SessionNoteRow.session_id == session_id)
                ),
            }  # type: ignore[dict-item]
    finally:
        await engine.dispose()


async def delete(client: httpx.AsyncClient, session: dict[str, Any], key: str | None = "owner") -> httpx.Response:
    headers = {} if key is None else {"X-Owner-Key": session["ownerKey"] if key == "owner" else key}
    return await client.delete(f"/v1/sessions/{session['id']}", headers=headers)


async def test_delete_needs_the_owner_key(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    missing = await delete(client, session, None)
    assert missing.status_code == 401
    assert missing.json() == {
        "error": "owner_key_required", "detail": "This needs the session's owner key in the X-Owner-Key header.",
    }  # fmt: skip
    wrong = await delete(client, session, "not-the-key")
    assert wrong.status_code == 403
    assert wrong.json()["error"] == "owner_key_invalid"
    other = await new_session(client)
    assert (await delete(client, session, other["ownerKey"])).status_code == 403
    # Nothing happened: the session is still there.
    assert (await client.get(f"/v1/sessions/{session['id']}")).status_code == 200

    unknown = await client.delete("/v1/sessions/no-such-session", headers={"X-Owner-Key": session["ownerKey"]})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "session_not_found"
    # Unknown without a key is 404 too: the resource comes first.
    assert (await client.delete("/v1/sessions/no-such-session")).status_code == 404
    bad = await client.delete("/v1/sessions/bad%20id", headers={"X-Owner-Key": "x"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "validation_error"


async def test_delete_removes_everything_and_nothing_else(
    client: httpx.AsyncClient, server: LiveServer, database_url: str
) -> None:
    doomed = await new_session(client, title="Doomed")
    kept = await new_session(client, title="Kept")
    for session in (doomed, kept):
        await join(client, session["id"], "Ada")
        await join(client, session["id"], "Grace", "viewer")
        r = await client.put(f"/v1/sessions/{session['id']}", json={"code": "print(1)\n"})
        assert r.status_code == 200
        r = await client.put(f"/v1/sessions/{session['id']}/notes", json={"text": "n", "version": 0},
                             headers={"X-Owner-Key": session["ownerKey"]})
        assert r.status_code == 200
    kept_before = await rows_of(database_url, kept["id"])
    assert (await rows_of(database_url, doomed["id"]))["session_notes"] == 1
    assert (await rows_of(database_url, doomed["id"]))["participants"] == 2

    r = await delete(client, doomed)
    assert r.status_code == 204
    assert r.content == b""

    assert not any((await rows_of(database_url, doomed["id"])).values())
    assert await rows_of(database_url, kept["id"]) == kept_before
    sid, viewer = doomed["id"], doomed["viewerId"]
    for method, path, body in [
        ("GET", f"/v1/sessions/{sid}", None),
        ("PUT", f"/v1/sessions/{sid}", {"code": "x"}),
        ("PUT", f"/v1/sessions/{sid}/language", {"language": "js"}),
        ("GET", f"/v1/sessions/{sid}/participants", None),
        ("POST", f"/v1/sessions/{sid}/participants", {"name": "Late"}),
        ("GET", f"/v1/views/{viewer}", None),
        ("POST", f"/v1/views/{viewer}/participants", {"name": "Late"}),
    ]:
        answer = await client.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    assert (await delete(client, doomed)).status_code == 404
    assert (await client.get(f"/v1/sessions/{kept['id']}")).json()["code"] == "print(1)\n"


async def test_live_clients_are_closed_and_pending_updates_do_not_come_back(
    server_factory: ServerFactory, database_url: str
) -> None:
    # A commit window long enough that the update below is still pending when the deletion starts.
    server = await server_factory(commit_window_ms=50)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        doomed = await new_session(client)
        other = await new_session(client)
        ada = await join(client, doomed["id"], "Ada")
        editor = await YClient(collab_url(server.ws_url, doomed["id"], ada["token"])).connect()
        viewer = await YClient(f"{server.ws_url}/v1/collab/v/{doomed['viewerId']}?token={ada['token']}").connect()
        editor.code.insert(0, "typed just before the deletion\n")
        await viewer.wait_for(lambda: "typed just before" in viewer.text)

        assert (await delete(client, doomed)).status_code == 204
        assert await editor.wait_closed() == 4404
        assert await viewer.wait_closed() == 4404
        assert editor.close_reason == "session deleted"

        # The writer's next commits come and go (a write to another session waits for its commit): nothing of
        # the deleted session is written back.
        for _ in range(2):
            r = await client.put(f"/v1/sessions/{other['id']}", json={"code": "later\n"})
            assert r.status_code == 200
        assert not any((await rows_of(database_url, doomed["id"])).values())

        # The token was in the process's cache (issued here, used a moment ago): it opens nothing now.
        again = YClient(collab_url(server.ws_url, doomed["id"], ada["token"]))
        with pytest.raises(TimeoutError, match="closed 4404"):
            await again.connect(sync_timeout=5)
        view = YClient(f"{server.ws_url}/v1/collab/v/{doomed['viewerId']}?token={ada['token']}")
        with pytest.raises(TimeoutError, match="closed 4404"):
            await view.connect(sync_timeout=5)
        for c in (editor, viewer, again, view):
            await c.close()


async def test_a_new_session_deleted_before_its_first_connection(client: httpx.AsyncClient, server: LiveServer) -> None:
    # Its first update is kept in memory for that connection (one process): the deletion drops it too.
    session = await new_session(client)
    ada = await join(client, session["id"], "Ada")
    assert (await delete(client, session)).status_code == 204
    late = YClient(collab_url(server.ws_url, session["id"], ada["token"]))
    with pytest.raises(TimeoutError, match="closed 4404"):
        await late.connect(sync_timeout=5)
    await late.close()


async def test_deletions_at_once(client: httpx.AsyncClient, database_url: str) -> None:
    sessions = [await new_session(client) for _ in range(4)]
    first = sessions[0]
    answers = await asyncio.gather(*(delete(client, s) for s in sessions), delete(client, first))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [204, 204, 204, 204, 404]
    for s in sessions:
        assert (await rows_of(database_url, s["id"]))["sessions"] == 0
