"""Owner links, on SQLite and PostgreSQL: the owner hands its key to another browser once, and nobody else gets it.

The attacker's side first: a code works once, not after it expired or was replaced, not when guessed; a participant
or an invite cannot make one; the database alone does not give the owner key away. Then the integration's path in
`api-key` mode. No log line carries a code or a key (conftest checks every line of the run for them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from codeconnect.db import create_engine
from codeconnect.models import SessionRow
from tests.collab.yclient import join, new_session
from tests.conftest import ServerFactory

ADMIN = "owner-links-admin-token-0123456789"


def owner(session: dict[str, Any]) -> dict[str, str]:
    return {"X-Owner-Key": session["ownerKey"]}


async def make_link(client: httpx.AsyncClient, session: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/v1/sessions/{session['id']}/owner-links", headers=owner(session))
    assert r.status_code == 201, r.text
    link: dict[str, Any] = r.json()
    return link


async def claim(client: httpx.AsyncClient, session_id: str, code: str) -> httpx.Response:
    return await client.post(f"/v1/sessions/{session_id}/owner-claims", json={"code": code})


def refused(r: httpx.Response) -> bool:
    return r.status_code == 403 and r.json()["error"] == "owner_link_invalid" and "ownerKey" not in r.text


async def row_of(database_url: str, session_id: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(select(SessionRow.__table__).where(SessionRow.id == session_id))).one()
            return dict(row._mapping)
    finally:
        await engine.dispose()


async def set_row(database_url: str, session_id: str, **values: Any) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(SessionRow).where(SessionRow.id == session_id).values(**values))
    finally:
        await engine.dispose()


async def test_a_code_works_once_and_hands_over_the_same_owner_key(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    before = datetime.now(UTC)
    link = await make_link(client, s)
    code = link["code"]
    assert code.startswith("own_") and len(code) >= 4 + 43  # 256 random bits
    assert link["url"] == f"/s/{s['id']}#owner={code}"
    expires = datetime.fromisoformat(link["expiresAt"])
    assert before + timedelta(seconds=590) < expires < datetime.now(UTC) + timedelta(seconds=610)

    r = await claim(client, s["id"], code)
    assert r.status_code == 200, r.text
    assert r.json() == {"ownerKey": s["ownerKey"]}  # the same key: whoever holds it keeps working
    # The key it handed over is the owner's: it ends the session.
    r = await client.post(f"/v1/sessions/{s['id']}/end", headers={"X-Owner-Key": r.json()["ownerKey"]})
    assert r.status_code == 200 and r.json()["endedAt"] is not None

    # Used up.
    assert refused(await claim(client, s["id"], code))


async def test_two_claims_at_once_give_one_owner_key(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    code = (await make_link(client, s))["code"]
    answers = await asyncio.gather(*(claim(client, s["id"], code) for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [200, 403, 403, 403], [r.text for r in answers]


async def test_wrong_codes_are_refused_and_leave_the_link_working(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    other = await new_session(client)
    code = (await make_link(client, s))["code"]
    other_code = (await make_link(client, other))["code"]
    for wrong in ("own_" + "A" * 43, code[:-1] + ("A" if code[-1] != "A" else "B"), code.removeprefix("own_"),
                  s["ownerKey"], other_code):  # fmt: skip
        assert refused(await claim(client, s["id"], wrong)), wrong
    # A session without a link refuses every code.
    third = await new_session(client)
    assert refused(await claim(client, third["id"], code))
    # Not in the body, or not a code: refused before anything is read.
    r = await client.post(f"/v1/sessions/{s['id']}/owner-claims", json={})
    assert r.status_code == 422
    r = await client.post(f"/v1/sessions/{s['id']}/owner-claims", json={"code": "x", "ownerKey": "y"})
    assert r.status_code == 422
    r = await claim(client, "nosuchsession", code)
    assert r.status_code == 404 and r.json()["error"] == "session_not_found"
    # None of that used the link up.
    r = await claim(client, s["id"], code)
    assert r.status_code == 200 and r.json()["ownerKey"] == s["ownerKey"]


async def test_a_new_link_voids_the_previous_one(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    first = (await make_link(client, s))["code"]
    second = (await make_link(client, s))["code"]
    assert first != second
    assert refused(await claim(client, s["id"], first))
    r = await claim(client, s["id"], second)
    assert r.status_code == 200 and r.json()["ownerKey"] == s["ownerKey"]


async def test_an_expired_code_is_refused(server_factory: ServerFactory, database_url: str) -> None:
    server = await server_factory(owner_link_seconds=30)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        s = await new_session(client)
        link = await make_link(client, s)
        expires = datetime.fromisoformat(link["expiresAt"])
        assert datetime.now(UTC) + timedelta(seconds=20) < expires < datetime.now(UTC) + timedelta(seconds=31)
        # Its time runs out (set in the database rather than waited for).
        await set_row(database_url, s["id"], owner_link_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        assert refused(await claim(client, s["id"], link["code"]))


async def test_only_the_owner_makes_a_link(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    ada = await join(client, s["id"], "Ada")
    url = f"/v1/sessions/{s['id']}/owner-links"
    r = await client.post(url)
    assert r.status_code == 401 and r.json()["error"] == "owner_key_required"
    for headers in ({"X-Participant-Token": ada["token"]}, {"X-Invite": s["id"]}):
        r = await client.post(url, headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "owner_key_required", r.text
    for wrong in (ada["token"], "not-the-key", s["id"], s["viewerId"]):
        r = await client.post(url, headers={"X-Owner-Key": wrong})
        assert r.status_code == 403 and r.json()["error"] == "owner_key_invalid", r.text
    r = await client.post("/v1/sessions/nosuchsession/owner-links", headers=owner(s))
    assert r.status_code == 404
    # None of those made a link.
    row = await client.get(f"/v1/sessions/{s['id']}")
    assert row.status_code == 200


async def test_the_database_alone_does_not_reveal_the_owner_key(
    client: httpx.AsyncClient, database_url: str
) -> None:
    s = await new_session(client)
    key = s["ownerKey"]
    link = await make_link(client, s)
    row = await row_of(database_url, s["id"])
    assert row["owner_link_hash"] and row["owner_link_sealed"] and row["owner_link_expires_at"]
    forms = {key, key.encode().hex(), link["code"], link["code"].removeprefix("own_")}
    for column, value in row.items():
        text = value.hex() if isinstance(value, bytes) else str(value)
        for form in forms:
            assert form not in text, column
    # Sealed with the code: a changed sealed value yields a refusal, never another key.
    sealed = row["owner_link_sealed"]
    flipped = ("0" if sealed[0] != "0" else "1") + sealed[1:]
    await set_row(database_url, s["id"], owner_link_sealed=flipped)
    assert refused(await claim(client, s["id"], link["code"]))
    await set_row(database_url, s["id"], owner_link_sealed=sealed)
    assert (await claim(client, s["id"], link["code"])).json() == {"ownerKey": key}
    # A claimed link leaves nothing behind.
    row = await row_of(database_url, s["id"])
    assert row["owner_link_hash"] is None and row["owner_link_sealed"] is None
    assert row["owner_link_expires_at"] is None


async def test_claims_count_in_the_joins_rate(server_factory: ServerFactory) -> None:
    server = await server_factory(rate_joins_per_minute=3)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        s = await new_session(client)
        for _ in range(3):
            assert refused(await claim(client, s["id"], "own_" + "A" * 43))
        r = await claim(client, s["id"], "own_" + "A" * 43)
        assert r.status_code == 429 and r.json()["error"] == "rate_limited" and r.headers["retry-after"]


@pytest.fixture
async def keyed(server_factory: ServerFactory) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    server = await server_factory(admin_token=ADMIN, auth="api-key")
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        await c.post("/v1/admin/workspaces", json={"name": "acme"}, headers=admin)
        key = (await c.post("/v1/admin/workspaces/acme/keys", json={}, headers=admin)).json()["key"]
        yield c, {"Authorization": f"Bearer {key}"}


async def test_an_integration_hands_the_owners_page_to_a_person(
    keyed: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    c, api_key = keyed
    s = (await c.post("/v1/sessions", json={"title": "Interview"}, headers=api_key)).json()
    base = f"/v1/sessions/{s['id']}"
    # The invite and a participant's token are not the owner key.
    r = await c.post(f"{base}/participants", json={"name": "Ada"}, headers={"X-Invite": s["editorInvite"]})
    ada = r.json()["token"]
    for headers in ({"X-Invite": s["editorInvite"]}, {"X-Participant-Token": ada}, api_key):
        r = await c.post(f"{base}/owner-links", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "owner_key_required", r.text

    link = (await c.post(f"{base}/owner-links", headers=owner(s))).json()
    # The claim needs nothing but the code, and the key it hands over needs no invite: it reads and joins.
    r = await claim(c, s["id"], link["code"])
    assert r.status_code == 200
    interviewer = {"X-Owner-Key": r.json()["ownerKey"]}
    assert (await c.get(base, headers=interviewer)).json()["title"] == "Interview"
    r = await c.post(f"{base}/participants", json={"name": "Interviewer"}, headers=interviewer)
    assert r.status_code == 201, r.text
    assert (await c.post(f"{base}/end", headers=interviewer)).status_code == 200
    # The integration's key still works (it was not replaced), and the link is used up.
    assert (await c.post(f"{base}/reopen", headers=owner(s))).status_code == 200
    assert refused(await claim(c, s["id"], link["code"]))
