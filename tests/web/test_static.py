"""Serving the built page: routes, media types, cache and isolation headers, precompressed files, and errors.

These run against a small fake build (no Node needed), plus one check of the real build when it is there.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from codeconnect.config import Settings
from codeconnect.web.assets import PACKAGE_STATIC_DIR, WebAssets
from tests.conftest import fresh_sqlite, start_server
from tests.web.conftest import require_built_page

INDEX = (
    '<!doctype html><html><head><script id="ccl-config" type="application/json">{}</script>'
    '<script type="module" src="/assets/index-abc123.js"></script></head><body></body></html>'
)
SCRIPT = "console.log('app');\n" * 200


@pytest.fixture
def build(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    (root / "assets").mkdir(parents=True)
    (root / "pyodide-1.2.3").mkdir()
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "index-abc123.js").write_text(SCRIPT)
    (root / "assets" / "index-abc123.js.gz").write_bytes(gzip.compress(SCRIPT.encode()))
    (root / "assets" / "style-abc123.css").write_text("body { color: red }")
    (root / "pyodide-1.2.3" / "pyodide.mjs").write_text("export {};\n")
    (root / "pyodide-1.2.3" / "pyodide.asm.wasm").write_bytes(b"\0asm\1\0\0\0")
    (root / "pyodide-1.2.3" / "python_stdlib.zip").write_bytes(b"PK\5\6" + bytes(18))
    (root / "swagger-ui-5.0.1").mkdir()
    (root / "swagger-ui-5.0.1" / "swagger-ui-bundle.js").write_text("var SwaggerUIBundle = function () {};\n")
    (root / "swagger-ui-5.0.1" / "swagger-ui.css").write_text(".swagger-ui { color: black }\n")
    (root / "swagger-ui-5.0.1" / "favicon-32x32.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "redoc-2.0.1").mkdir()
    (root / "redoc-2.0.1" / "redoc.standalone.js").write_text("/* ReDoc */\n")
    (tmp_path / "secret.txt").write_text("not for the web")
    return root


async def _client(sqlite_url: str, static_dir: Path, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    await fresh_sqlite(sqlite_url)
    server = await start_server(Settings(database_url=sqlite_url, web_static_dir=str(static_dir), **overrides))
    try:
        # No automatic decompression: the tests look at the bytes on the wire.
        headers = {"Accept-Encoding": "identity"}
        async with httpx.AsyncClient(timeout=30, base_url=server.base_url, headers=headers) as c:
            yield c
    finally:
        await server.stop()


@pytest.fixture
async def web(sqlite_url: str, build: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(sqlite_url, build, run_time_limit_seconds=7.5):
        yield c


def assert_isolated(response: httpx.Response) -> None:
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert response.headers["cross-origin-resource-policy"] == "same-origin"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/s/AbC_123-xyz", "/s/AbC_123-xyz?view=1", "/v/AbC_123-xyz"])
async def test_app_pages_are_isolated_and_carry_the_config(web: httpx.AsyncClient, path: str) -> None:
    r = await web.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert_isolated(r)
    start = r.text.index('<script id="ccl-config" type="application/json">') + len(
        '<script id="ccl-config" type="application/json">'
    )
    config = json.loads(r.text[start : r.text.index("</script>", start)])
    assert config == {"runTimeLimitSeconds": 7.5, "auth": "open", "preloadRunners": True}
    assert (await web.head(path)).status_code == 200


async def test_hashed_assets_are_cached_for_a_year(web: httpx.AsyncClient) -> None:
    r = await web.get("/assets/style-abc123.css")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/css; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert_isolated(r)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/pyodide-1.2.3/pyodide.mjs", "text/javascript; charset=utf-8"),
        ("/pyodide-1.2.3/pyodide.asm.wasm", "application/wasm"),
        ("/pyodide-1.2.3/python_stdlib.zip", "application/zip"),
        ("/assets/index-abc123.js", "text/javascript; charset=utf-8"),
    ],
)
async def test_media_types_browsers_are_strict_about(web: httpx.AsyncClient, path: str, media_type: str) -> None:
    r = await web.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == media_type
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_precompressed_file_only_for_clients_that_accept_gzip(web: httpx.AsyncClient) -> None:
    plain = await web.get("/assets/index-abc123.js")
    assert "content-encoding" not in plain.headers
    assert plain.text == SCRIPT
    packed = await web.get("/assets/index-abc123.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "Accept-Encoding" in packed.headers["vary"]
    # httpx undoes the gzip encoding, which shows it is valid; the length on the wire is the compressed one.
    assert packed.text == SCRIPT
    assert int(packed.headers["content-length"]) < len(SCRIPT) / 5


@pytest.mark.parametrize(
    "path",
    [
        "/assets/missing-000.js",
        "/assets/..%2F..%2Fsecret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/",
        "/pyodide-1.2.3/../index.html",
        "/pyodide-9.9.9/pyodide.mjs",
        "/assets/index-abc123.js.gz/x",
    ],
)
async def test_unknown_or_escaping_paths_are_404_in_the_error_shape(web: httpx.AsyncClient, path: str) -> None:
    r = await web.get(path)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
    assert "not for the web" not in r.text


async def test_api_routes_win_over_the_page(web: httpx.AsyncClient) -> None:
    assert (await web.get("/healthz")).json() == {"status": "ok"}
    r = await web.get("/v1/sessions/AbC_123-xyz")
    assert r.status_code == 404
    assert r.json()["error"] == "session_not_found"
    paths = (await web.get("/openapi.json")).json()["paths"]
    assert not any(p == "/" or p.startswith(("/s/", "/v/", "/assets", "/pyodide")) for p in paths)


async def test_api_docs_load_everything_from_the_server(web: httpx.AsyncClient) -> None:
    # Swagger UI, ReDoc, their favicon: all from this server; no CDN, no Google fonts (the machines are offline).
    docs = await web.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script src="/swagger-ui-5.0.1/swagger-ui-bundle.js">' in docs.text
    assert 'href="/swagger-ui-5.0.1/swagger-ui.css"' in docs.text
    assert 'href="/swagger-ui-5.0.1/favicon-32x32.png"' in docs.text
    assert "url: '/openapi.json'" in docs.text
    redoc = await web.get("/redoc")
    assert redoc.status_code == 200
    assert '<script src="/redoc-2.0.1/redoc.standalone.js">' in redoc.text
    assert 'spec-url="/openapi.json"' in redoc.text
    for page in (docs, redoc):
        assert "https://" not in page.text and "http://" not in page.text, page.text
        assert page.headers["cache-control"] == "no-cache"
    for path, media_type in [
        ("/swagger-ui-5.0.1/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("/swagger-ui-5.0.1/swagger-ui.css", "text/css; charset=utf-8"),
        ("/swagger-ui-5.0.1/favicon-32x32.png", "image/png"),
        ("/redoc-2.0.1/redoc.standalone.js", "text/javascript; charset=utf-8"),
    ]:
        r = await web.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] == media_type
        # The folder name carries the package's version: a new version is a new URL.
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (await web.get("/swagger-ui-5.0.1/../index.html")).status_code == 404
    assert (await web.get("/redoc-9.9.9/redoc.standalone.js")).status_code == 404


async def test_api_docs_without_a_build_are_a_clear_503(sqlite_url: str, tmp_path: Path) -> None:
    empty = tmp_path / "nothing-built"
    empty.mkdir()
    async for web in _client(sqlite_url, empty):
        for path in ("/docs", "/redoc"):
            r = await web.get(path)
            assert r.status_code == 503
            assert "scripts/build-web" in r.json()["detail"]
        assert (await web.get("/openapi.json")).status_code == 200


async def test_missing_build_is_a_clear_503(sqlite_url: str, tmp_path: Path) -> None:
    empty = tmp_path / "nothing-built"
    empty.mkdir()
    async for web in _client(sqlite_url, empty):
        r = await web.get("/")
        assert r.status_code == 503
        assert r.json()["error"] == "service_unavailable"
        assert "scripts/build-web" in r.json()["detail"]
        assert (await web.get("/healthz")).status_code == 200


def test_config_cannot_break_out_of_its_script_element(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(INDEX)
    html = WebAssets(tmp_path).index_html({"title": "</script><script>alert(1)</script>&"})
    assert "</script><script>alert(1)" not in html
    start = html.index('type="application/json">') + len('type="application/json">')
    assert json.loads(html[start : html.index("</script>", start)]) == {"title": "</script><script>alert(1)</script>&"}


def test_real_build_has_the_page_and_the_python_runtime() -> None:
    require_built_page()
    index = (PACKAGE_STATIC_DIR / "index.html").read_text()
    assert '<script id="ccl-config" type="application/json">{}</script>' in index
    assert "https://" not in index and "http://" not in index.replace("http://www.w3.org/2000/svg", "")
    (runtime,) = PACKAGE_STATIC_DIR.glob("pyodide-*")
    for name in ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"):
        assert (runtime / name).is_file(), name
    assert (runtime / "pyodide.asm.wasm.gz").is_file()
    assert list((PACKAGE_STATIC_DIR / "assets").glob("*.wasm")), "the QuickJS module is part of the build"


def test_real_build_has_swagger_ui_and_redoc() -> None:
    require_built_page()
    (swagger,) = PACKAGE_STATIC_DIR.glob("swagger-ui-*")
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert (swagger / name).is_file(), name
    (redoc,) = PACKAGE_STATIC_DIR.glob("redoc-*")
    assert (redoc / "redoc.standalone.js").is_file()
    # The large scripts go out compressed to browsers that accept it.
    assert (swagger / "swagger-ui-bundle.js.gz").is_file()
    assert (redoc / "redoc.standalone.js.gz").is_file()
