"""Cross-cutting behaviour of the app: persistence, body limits, CORS, documentation, settings."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import httpx
import pytest

from codeconnect.app import create_app, create_served_app
from codeconnect.config import Settings
from tests.conftest import ServerFactory, fresh_sqlite


async def test_data_survives_an_app_restart(server_factory: ServerFactory) -> None:
    first = await server_factory()
    async with httpx.AsyncClient(timeout=30, base_url=first.base_url) as client:
        created = (await client.post("/v1/sessions", json={"title": "Keep me", "language": "java"})).json()
        sid = created["id"]
        await client.put(f"/v1/sessions/{sid}", json={"code": "class A {}\n"})
        await client.put(f"/v1/sessions/{sid}/language", json={"language": "cpp"})
        joined = (await client.post(f"/v1/sessions/{sid}/participants", json={"name": "Ann"})).json()
    await first.stop()

    second = await server_factory()
    async with httpx.AsyncClient(timeout=30, base_url=second.base_url) as client:
        got = (await client.get(f"/v1/sessions/{sid}")).json()
    assert (got["title"], got["language"], got["code"]) == ("Keep me", "cpp", "class A {}\n")
    assert got["createdAt"] == created["createdAt"]
    assert [(p["id"], p["name"], p["color"]) for p in got["participants"]] == [
        (joined["id"], "Ann", joined["color"])
    ]


async def test_declared_oversized_body_is_refused_unread(server_factory: ServerFactory) -> None:
    server = await server_factory(max_body_bytes=1000)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        r = await client.post(
            "/v1/sessions",
            content=b'{"code": "' + b"x" * 2000 + b'"}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"
        assert "1000" in r.json()["detail"]
        # Under the limit is fine.
        assert (await client.post("/v1/sessions", json={"code": "x" * 100})).status_code == 201


async def test_streamed_oversized_body_is_refused(server_factory: ServerFactory) -> None:
    server = await server_factory(max_body_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"code": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        r = await client.post("/v1/sessions", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"
        assert (await client.get("/v1/sessions/" + "A" * 22)).status_code == 404


async def test_default_body_limit_is_two_mib(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/sessions",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413


async def test_cors(server_factory: ServerFactory) -> None:
    server = await server_factory(cors_origins="https://pad.example.org")
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        r = await client.options(
            "/v1/sessions",
            headers={"Origin": "https://pad.example.org", "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://pad.example.org"
        r = await client.post("/v1/sessions", json={}, headers={"Origin": "https://pad.example.org"})
        assert r.headers["access-control-allow-origin"] == "https://pad.example.org"
        assert "location" in r.headers["access-control-expose-headers"].lower()
        r = await client.post("/v1/sessions", json={}, headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in r.headers


async def test_cors_star_allows_any_origin(server_factory: ServerFactory) -> None:
    # Same-origin by default (tests/adversarial/test_network_defaults.py); `*` is an explicit choice.
    server = await server_factory(cors_origins="*")
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        r = await client.get("/healthz", headers={"Origin": "https://anywhere.example"})
    assert r.headers["access-control-allow-origin"] == "*"


async def test_documentation_is_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "Swagger UI" in (await client.get("/docs")).text
    assert "ReDoc" in (await client.get("/redoc")).text or "redoc" in (await client.get("/redoc")).text
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), (method, path)
            if path.startswith("/v1/") and method in ("post", "put"):
                assert "422" in op["responses"], (method, path)
    # Limits are part of the contract.
    create = spec["components"]["schemas"]["CreateSessionRequest"]["properties"]
    assert create["title"]["maxLength"] == 200
    # Code is limited in bytes of UTF-8, which JSON Schema cannot count: stated as x-maxBytes, enforced as 413.
    assert create["code"]["anyOf"][0]["x-maxBytes"] == 1024 * 1024
    assert "maxLength" not in create["code"]["anyOf"][0]
    join = spec["components"]["schemas"]["JoinRequest"]["properties"]
    assert join["name"]["maxLength"] == 64
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error", "detail"]


async def test_schema_follows_configured_limits(server_factory: ServerFactory) -> None:
    server = await server_factory(max_title_length=20, max_name_length=10)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as client:
        spec = (await client.get("/openapi.json")).json()
        assert spec["components"]["schemas"]["CreateSessionRequest"]["properties"]["title"]["maxLength"] == 20
        assert (await client.post("/v1/sessions", json={"title": "x" * 21})).status_code == 422
        sid = (await client.post("/v1/sessions", json={"title": "x" * 20})).json()["id"]
        r = await client.post(f"/v1/sessions/{sid}/participants", json={"name": "x" * 11})
        assert r.status_code == 422


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("PORT", "4100")
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("CODECONNECT_MAX_PARTICIPANTS", "7")
    monkeypatch.setenv("CODECONNECT_DATABASE_URL", "postgres://u@db:5432/app")
    monkeypatch.setenv("CODECONNECT_CORS_ORIGINS", "https://a.example, https://b.example")
    s = Settings()
    assert (s.port, s.host, s.max_participants) == (4100, "127.0.0.1", 7)
    assert s.database_url == "postgresql+asyncpg://u@db:5432/app"
    assert s.cors_origin_list == ["https://a.example", "https://b.example"]


def test_settings_defaults(clean_env: None) -> None:
    s = Settings()
    assert (s.host, s.port) == ("0.0.0.0", 3000)
    assert s.database_url == "sqlite+aiosqlite:///./data/codeconnect.db"
    assert (s.max_code_bytes, s.max_body_bytes, s.max_participants) == (1 << 20, 2 << 20, 50)
    assert (s.max_title_length, s.max_name_length, s.cors_origins, s.allowed_hosts) == (200, 64, "", None)
    assert s.execution == "off"


def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("CODECONNECT_MAX_PARTICIPANTS", "0")
    with pytest.raises(ValueError, match="max_participants"):
        Settings()


def test_every_setting_is_documented_in_the_readme() -> None:
    import re
    from pathlib import Path

    from codeconnect.config import settings_table

    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = re.search(r"<!-- settings-table -->\n(.*?)\n<!-- /settings-table -->", readme, re.S)
    assert table is not None, "README.md has no settings table"
    # Regenerate with: python -c "from codeconnect.config import settings_table; print(settings_table())"
    assert table.group(1) == settings_table(), "README.md's settings table differs from Settings"


async def test_only_the_served_app_freezes_its_startup_objects(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `codeconnect serve` owns its process: what exists after startup is kept out of every full garbage
    # collection. An app built for a process it shares (these tests) must leave the collector alone.
    await fresh_sqlite(sqlite_url)
    monkeypatch.setenv("CODECONNECT_DATABASE_URL", sqlite_url)
    assert gc.get_freeze_count() == 0
    try:
        shared = create_app(Settings())
        async with shared.router.lifespan_context(shared):
            assert gc.get_freeze_count() == 0
        owned = create_served_app()  # what `codeconnect serve` runs
        async with owned.router.lifespan_context(owned):
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
