"""The session API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import httpx
import pytest

from codeconnect.languages import LANGUAGES, get_language

URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")


async def create(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    r = await client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_create_defaults(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/sessions", json={})
    assert r.status_code == 201
    body = r.json()
    assert body["title"] == "Untitled session"
    assert body["language"] == "python"
    assert body["code"] == get_language("python").starter
    assert body["participants"] == []
    assert r.headers["location"] == f"/v1/sessions/{body['id']}"
    assert body["createdAt"] == body["updatedAt"]
    assert body["createdAt"].endswith("Z")
    # 128 random bits, URL-safe: 22 base64url characters at least.
    assert URLSAFE.match(body["id"]) and len(body["id"]) >= 22
    assert URLSAFE.match(body["ownerKey"]) and len(body["ownerKey"]) >= 43
    assert body["ownerKey"] != body["id"]


async def test_ids_are_distinct(client: httpx.AsyncClient) -> None:
    ids = {(await create(client))["id"] for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize("language", LANGUAGES)
async def test_starter_code_per_language(client: httpx.AsyncClient, language: str) -> None:
    body = await create(client, language=language)
    assert body["language"] == language
    assert body["code"] == get_language(language).starter  # type: ignore[arg-type]
    assert body["code"]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("PY", "python"),
        ("Python", "python"),
        ("js", "javascript"),
        ("JavaScript", "javascript"),
        ("ts", "typescript"),
        ("c++", "cpp"),
        ("C++", "cpp"),
        ("CPP", "cpp"),
        ("Java", "java"),
    ],
)
async def test_language_aliases(client: httpx.AsyncClient, given: str, canonical: str) -> None:
    assert (await create(client, language=given))["language"] == canonical


async def test_create_with_code_and_title(client: httpx.AsyncClient) -> None:
    body = await create(client, title="Pairing ✨", language="js", code="let x = 1;\n")
    assert (body["title"], body["language"], body["code"]) == ("Pairing ✨", "javascript", "let x = 1;\n")
    # Empty code is a valid program text, not "use the starter".
    assert (await create(client, code=""))["code"] == ""


async def test_get_returns_what_was_created_without_owner_key(client: httpx.AsyncClient) -> None:
    created = await create(client, title="T", language="java")
    r = await client.get(f"/v1/sessions/{created['id']}")
    assert r.status_code == 200
    got = r.json()
    assert "ownerKey" not in got
    assert {k: got[k] for k in ("id", "title", "language", "code", "createdAt")} == {
        k: created[k] for k in ("id", "title", "language", "code", "createdAt")
    }


async def test_unknown_session_is_404_everywhere(client: httpx.AsyncClient) -> None:
    sid = "A" * 22
    for method, path, body in [
        ("GET", f"/v1/sessions/{sid}", None),
        ("PUT", f"/v1/sessions/{sid}", {"code": "x"}),
        ("PUT", f"/v1/sessions/{sid}/language", {"language": "java"}),
        ("GET", f"/v1/sessions/{sid}/participants", None),
        ("POST", f"/v1/sessions/{sid}/participants", {"name": "Ann"}),
        # The resource is looked up first: an invalid body for an unknown session is still 404.
        ("PUT", f"/v1/sessions/{sid}", {"code": 5}),
    ]:
        r = await client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json() == {"error": "session_not_found", "detail": "No session exists with this id."}


async def test_update_code_and_title(client: httpx.AsyncClient) -> None:
    created = await create(client, title="Old")
    r = await client.put(f"/v1/sessions/{created['id']}", json={"code": "print(42)\n"})
    assert r.status_code == 200, r.text
    assert r.json()["code"] == "print(42)\n"
    assert r.json()["title"] == "Old"
    assert r.json()["updatedAt"] >= created["updatedAt"]  # type: ignore[operator]
    r = await client.put(f"/v1/sessions/{created['id']}", json={"code": "", "title": "New"})
    assert (r.json()["code"], r.json()["title"]) == ("", "New")
    assert (await client.get(f"/v1/sessions/{created['id']}")).json()["title"] == "New"


async def test_set_language(client: httpx.AsyncClient) -> None:
    created = await create(client)
    r = await client.put(f"/v1/sessions/{created['id']}/language", json={"language": "TS"})
    assert r.status_code == 200
    assert r.json()["language"] == "typescript"
    # Switching the language keeps the code: people switch while they type.
    assert r.json()["code"] == created["code"]
    assert (await client.get(f"/v1/sessions/{created['id']}")).json()["language"] == "typescript"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "body.title"),
        ({"title": "x" * 201}, "body.title"),
        ({"title": 5}, "body.title"),
        ({"title": "a\u0000b"}, "body.title"),
        ({"language": "cobol"}, "body.language"),
        ({"language": ""}, "body.language"),
        ({"language": None}, "body.language"),
        ({"code": 12}, "body.code"),
        ({"code": "x\u0000"}, "body.code"),
        ({"colour": "red"}, "body.colour"),
    ],
)
async def test_create_validation(client: httpx.AsyncClient, body: dict[str, object], field: str) -> None:
    r = await client.post("/v1/sessions", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error"] == "validation_error"
    assert err["detail"].startswith(f"Invalid {field}")
    assert any(f["field"] == field and f["message"] for f in err["fields"])


async def test_title_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    assert (await create(client, title="é" * 200))["title"] == "é" * 200


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"title": "x",}', b"\xff\xfe"])
async def test_malformed_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post("/v1/sessions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "malformed_json"


async def test_lone_surrogates_are_rejected(client: httpx.AsyncClient) -> None:
    # Valid JSON syntax, but not text that can be stored: a validation error, never a storage failure.
    for raw in (b'{"title": "\\ud800"}', b'{"code": "a\\udfff"}'):
        r = await client.post("/v1/sessions", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("", b'{"code": "a\\u0000b"}', "body.code"),
        ("", b'{"code": "ok", "title": "a\\u0000"}', "body.title"),
        ("", b'{"code": "a\\ud800b"}', "body.code"),
        ("", b'{"code": "ok", "title": "\\udfffa"}', "body.title"),
        ("/language", b'{"language": "py\\u0000"}', "body.language"),
        ("/language", b'{"language": "py\\udc00"}', "body.language"),
        ("/participants", b'{"name": "Ann\\u0000"}', "body.name"),
        ("/participants", b'{"name": "Ann\\ud800"}', "body.name"),
    ],
)
async def test_unstorable_text_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, path: str, raw: bytes, field: str
) -> None:
    # NUL (PostgreSQL text cannot hold it) and lone surrogates (no UTF-8 encoder takes them) are 422 in the
    # error shape on every write, never a storage failure; other control characters are valid text.
    created = await create(client, title="Same", code="keep\n")
    url = f"/v1/sessions/{created['id']}{path}"
    send = client.post if path == "/participants" else client.put
    r = await send(url, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert r.json()["fields"][0]["field"] == field
    after = (await client.get(f"/v1/sessions/{created['id']}")).json()
    assert (after["code"], after["title"], after["participants"]) == ("keep\n", "Same", [])


async def test_control_characters_are_valid_text(client: httpx.AsyncClient) -> None:
    controls = "".join(map(chr, range(1, 0x20)))
    created = await create(client, title=f"t{controls}", code=controls)
    assert (created["title"], created["code"]) == (f"t{controls}", controls)
    r = await client.put(f"/v1/sessions/{created['id']}", json={"code": controls + "x", "title": f"u{controls}"})
    assert r.status_code == 200, r.text
    got = (await client.get(f"/v1/sessions/{created['id']}")).json()
    assert (got["code"], got["title"]) == (controls + "x", f"u{controls}")


async def test_body_must_be_an_object(client: httpx.AsyncClient) -> None:
    for raw in (b"[]", b"0", b'"x"', b"null"):
        r = await client.post("/v1/sessions", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, raw
        assert r.json()["error"] == "validation_error"


async def test_code_over_the_byte_limit_is_413_and_changes_nothing(client: httpx.AsyncClient) -> None:
    created = await create(client, code="keep\n")
    # 600,000 three-byte characters: under 1 MiB of characters, over 1 MiB of UTF-8.
    big = "€" * 600_000
    r = await client.put(f"/v1/sessions/{created['id']}", json={"code": big, "title": "changed"})
    assert r.status_code == 413
    assert r.json()["error"] == "code_too_large"
    after = (await client.get(f"/v1/sessions/{created['id']}")).json()
    assert (after["code"], after["title"], after["updatedAt"]) == (
        "keep\n",
        created["title"],
        created["updatedAt"],
    )
    r = await client.post("/v1/sessions", json={"code": big})
    assert r.status_code == 413
    # One-byte characters past the limit get the same answer: one rule in bytes, one status.
    ascii_over = {"code": "x" * (1024 * 1024 + 1)}
    r = await client.post("/v1/sessions", json=ascii_over)
    assert (r.status_code, r.json()["error"]) == (413, "code_too_large")
    r = await client.put(f"/v1/sessions/{created['id']}", json=ascii_over)
    assert (r.status_code, r.json()["error"]) == (413, "code_too_large")


async def test_code_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    created = await create(client)
    code = "x" * (1024 * 1024)
    r = await client.put(f"/v1/sessions/{created['id']}", json={"code": code})
    assert r.status_code == 200
    assert len((await client.get(f"/v1/sessions/{created['id']}")).json()["code"]) == len(code)


async def test_invalid_path_id_is_rejected(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/sessions/" + "a" * 65)
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "path.sessionId"
    assert (await client.get("/v1/sessions/a.b")).status_code == 422


async def test_rejected_update_changes_nothing(client: httpx.AsyncClient) -> None:
    created = await create(client, title="Same")
    sid = created["id"]
    for body in ({"code": 1}, {"title": "x"}, {"code": "ok", "title": ""}, {"code": "ok", "extra": 1}):
        assert (await client.put(f"/v1/sessions/{sid}", json=body)).status_code == 422
    assert (await client.put(f"/v1/sessions/{sid}/language", json={"language": "go"})).status_code == 422
    after = (await client.get(f"/v1/sessions/{sid}")).json()
    assert {k: after[k] for k in ("title", "code", "language", "updatedAt")} == {
        k: created[k] for k in ("title", "code", "language", "updatedAt")
    }


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await client.delete("/v1/sessions")
    assert r.status_code == 405
    assert r.json()["error"] == "method_not_allowed"
    r = await client.patch("/v1/sessions/abc/participants")
    assert r.status_code == 405
    assert {"GET", "POST"} <= set(r.headers["allow"].split(", ")) <= {"GET", "HEAD", "POST"}
