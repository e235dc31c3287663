"""Joining a session and listing its participants."""

from __future__ import annotations

import asyncio
import hashlib
import re

import httpx
import pytest
from sqlalchemy import select

from codeconnect.db import create_engine
from codeconnect.models import ParticipantRow
from tests.conftest import LiveServer, ServerFactory


async def new_session(client: httpx.AsyncClient) -> str:
    r = await client.post("/v1/sessions", json={"title": "Pairing"})
    return r.json()["id"]  # type: ignore[no-any-return]


async def test_join_and_list(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    r = await client.post(f"/v1/sessions/{sid}/participants", json={"name": "  Ada Lovelace  "})
    assert r.status_code == 201, r.text
    ada = r.json()
    assert ada["name"] == "Ada Lovelace"
    assert ada["role"] == "editor"
    assert ada["online"] is False
    assert re.fullmatch(r"#[0-9a-f]{6}", ada["color"])
    assert len(ada["token"]) >= 43
    assert ada["joinedAt"].endswith("Z")

    r = await client.post(f"/v1/sessions/{sid}/participants", json={"name": "Bob", "role": "viewer"})
    bob = r.json()
    assert bob["role"] == "viewer"
    assert bob["color"] != ada["color"]
    assert bob["token"] != ada["token"]

    listed = (await client.get(f"/v1/sessions/{sid}/participants")).json()
    assert [p["name"] for p in listed] == ["Ada Lovelace", "Bob"]
    assert all("token" not in p for p in listed)
    session = (await client.get(f"/v1/sessions/{sid}")).json()
    assert [p["id"] for p in session["participants"]] == [ada["id"], bob["id"]]


async def test_tokens_are_stored_only_as_hashes(server: LiveServer, client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    joined = (await client.post(f"/v1/sessions/{sid}/participants", json={"name": "Ann"})).json()
    engine = create_engine(server.settings.database_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(select(ParticipantRow))).one()
    finally:
        await engine.dispose()
    assert joined["token"] not in row
    assert row.token_hash == hashlib.sha256(joined["token"].encode()).hexdigest()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": "x" * 65}, "body.name"),
        ({"name": 3}, "body.name"),
        ({"name": "a\u0000"}, "body.name"),
        ({"name": "Ann", "role": "owner"}, "body.role"),
        ({"name": "Ann", "token": "mine"}, "body.token"),
    ],
)
async def test_join_validation(client: httpx.AsyncClient, body: dict[str, object], field: str) -> None:
    sid = await new_session(client)
    r = await client.post(f"/v1/sessions/{sid}/participants", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert r.json()["fields"][0]["field"] == field
    assert (await client.get(f"/v1/sessions/{sid}/participants")).json() == []


async def test_name_at_the_limit(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    r = await client.post(f"/v1/sessions/{sid}/participants", json={"name": "ñ" * 64})
    assert r.status_code == 201


async def test_session_full(server_factory: ServerFactory) -> None:
    server = await server_factory(max_participants=3)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        sid = await new_session(client)
        for i in range(3):
            assert (
                await client.post(f"/v1/sessions/{sid}/participants", json={"name": f"p{i}"})
            ).status_code == 201
        r = await client.post(f"/v1/sessions/{sid}/participants", json={"name": "late"})
        assert r.status_code == 409
        assert r.json()["error"] == "session_full"
        assert "3" in r.json()["detail"]
        assert len((await client.get(f"/v1/sessions/{sid}/participants")).json()) == 3


async def test_concurrent_joins_respect_the_limit_and_get_distinct_colours(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(max_participants=12)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        sid = await new_session(client)
        results = await asyncio.gather(
            *(client.post(f"/v1/sessions/{sid}/participants", json={"name": f"p{i}"}) for i in range(20))
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [201] * 12 + [409] * 8
        listed = (await client.get(f"/v1/sessions/{sid}/participants")).json()
        assert len(listed) == 12
        assert len({p["color"] for p in listed}) == 12


def test_fifty_colours_are_distinct() -> None:
    from codeconnect.participants.service import participant_color

    colours = [participant_color(i) for i in range(50)]
    assert len(set(colours)) == 50
