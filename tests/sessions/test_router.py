from __future__ import annotations

import httpx


async def test_create_and_get(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/sessions", json={"title": "Interview", "language": "C++"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["language"] == "cpp"
    assert r.headers["location"] == f"/v1/sessions/{body['id']}"
    g = await client.get(r.headers["location"])
    assert g.status_code == 200
    assert g.json()["code"] == body["code"]
    assert g.json()["createdAt"].endswith("Z")
