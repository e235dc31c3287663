"""The web page: `/`, `/s/{sessionId}` and `/v/{viewerId}` (a read-only link) serve the app; `/assets/...` and
`/pyodide-<version>/...` its files; `/py-packages/...` the Python packages the in-browser Python can import.

Included last by the app factory, so every API route wins over these.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from codeconnect.config import Settings
from codeconnect.errors import NotFound, ServiceUnavailable
from codeconnect.web.assets import (
    IMMUTABLE,
    ISOLATION_HEADERS,
    PACKAGE_STATIC_DIR,
    PAGE_POLICY,
    REVALIDATE,
    WebAssets,
)
from codeconnect.web.pypackages import PACKAGES_DIR, BrowserPackages

_NOT_BUILT = "The web page is not built on this server: run scripts/build-web (it needs Node.js and npm)."


def build_router(settings: Settings) -> APIRouter:
    assets = WebAssets(Path(settings.web_static_dir) if settings.web_static_dir else PACKAGE_STATIC_DIR)
    packages = BrowserPackages(PACKAGES_DIR)
    # `auth` tells the page whether its editor link needs an invite (`api-key`) or is the session id (`open`).
    # `preloadRunners`: whether an editor's page loads its language's runner before the first Run.
    page_config: dict[str, object] = {
        "runTimeLimitSeconds": settings.run_time_limit_seconds,
        "auth": settings.auth,
        "preloadRunners": settings.web_preload_runners,
    }
    router = APIRouter(include_in_schema=False)

    def page() -> HTMLResponse:
        if not assets.built:
            raise ServiceUnavailable(_NOT_BUILT)
        headers = {
            **ISOLATION_HEADERS,
            "Cache-Control": REVALIDATE,
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": PAGE_POLICY,
        }
        return HTMLResponse(assets.index_html(page_config), headers=headers)

    def static(folder: str, path: str, request: Request) -> Response:
        gzip_ok = "gzip" in request.headers.get("accept-encoding", "").lower()
        found = assets.find(folder, path, gzip_ok=gzip_ok)
        if found is None:
            raise NotFound(f"No file /{folder}/{path} in the web page's build.")
        headers = {**ISOLATION_HEADERS, "Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
        if found.encoding:
            headers["Content-Encoding"] = found.encoding
        return FileResponse(found.path, media_type=found.media_type, headers=headers)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def home() -> HTMLResponse:
        return page()

    @router.api_route("/s/{session_id}", methods=["GET", "HEAD"])
    async def session_page(session_id: str) -> HTMLResponse:
        # The page itself finds out whether the session exists and says so; any id gets the app.
        return page()

    @router.api_route("/v/{viewer_id}", methods=["GET", "HEAD"])
    async def view_page(viewer_id: str) -> HTMLResponse:
        # The same app, which reads the viewer id from its own address; the page carries nothing of the session.
        return page()

    @router.api_route("/assets/{path:path}", methods=["GET", "HEAD"])
    async def asset(path: str, request: Request) -> Response:
        # File names carry a content hash, so they can be cached for a year.
        return static("assets", path, request)

    @router.api_route("/pyodide-{version}/{path:path}", methods=["GET", "HEAD"])
    async def pyodide(version: str, path: str, request: Request) -> Response:
        # The folder name carries Pyodide's version: a new version is a new URL.
        return static(f"pyodide-{version}", path, request)

    @router.api_route("/py-packages/lock.json", methods=["GET", "HEAD"])
    def py_packages_lock() -> JSONResponse:
        # A plain function (FastAPI runs it in a thread): the first call hashes the wheels. Revalidated: it
        # changes when the operator fetches other versions, while the URL stays.
        headers = {**ISOLATION_HEADERS, "Cache-Control": REVALIDATE}
        return JSONResponse(packages.lock(), headers=headers)

    @router.api_route("/py-packages/{name}", methods=["GET", "HEAD"])
    async def py_package(name: str) -> Response:
        # A wheel's file name carries its version: a new version is a new URL.
        path = packages.wheel(name)
        if path is None:
            raise NotFound(f"No Python package /py-packages/{name} on this server.")
        headers = {**ISOLATION_HEADERS, "Cache-Control": IMMUTABLE}
        return FileResponse(path, media_type="application/zip", headers=headers)

    return router
