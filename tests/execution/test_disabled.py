"""Execution off (the default): every run is refused with 403, the rest of the API still works."""

from __future__ import annotations

import httpx

from codeconnect.languages import LANGUAGES


async def test_execute_is_refused_when_off(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/execute", json={"language": "python", "code": "print(1)"})
    assert r.status_code == 403
    assert r.json()["error"] == "execution_disabled"


async def test_languages_say_disabled(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/execute/languages")
    assert r.status_code == 200
    body = r.json()
    assert body["enabled"] is False
    assert [entry["language"] for entry in body["languages"]] == list(LANGUAGES)
    assert all(entry["available"] is False for entry in body["languages"])


async def test_session_execute_is_refused_when_off(client: httpx.AsyncClient) -> None:
    session = (await client.post("/v1/sessions", json={"language": "python"})).json()
    r = await client.post(f"/v1/sessions/{session['id']}/execute", json={})
    assert r.status_code == 403
    assert r.json()["error"] == "execution_disabled"


async def test_bad_requests_are_4xx(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/execute", json={"language": "cobol", "code": "x"})
    assert r.status_code == 422
    r = await client.post("/v1/execute", json={"language": "python", "code": "x", "extra": 1})
    assert r.status_code == 422
    r = await client.post("/v1/execute", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
