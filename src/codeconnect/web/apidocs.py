"""The API's documentation pages: `/docs` (Swagger UI) and `/redoc`, with every file they load from this process.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, and ReDoc's fonts from Google: on an offline machine
both were blank. Here the same HTML (FastAPI's ``get_swagger_ui_html`` / ``get_redoc_html``) points at the copies
that ``scripts/build-web`` puts into the build, from the npm packages ``swagger-ui-dist`` and ``redoc``, in folders
named with their version (``/swagger-ui-<version>/...``, ``/redoc-<version>/...``), so they are cached like the
page's other unhashed files.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from codeconnect.config import Settings
from codeconnect.errors import NotFound, ServiceUnavailable
from codeconnect.web.assets import IMMUTABLE, ISOLATION_HEADERS, PACKAGE_STATIC_DIR, REVALIDATE, WebAssets

SWAGGER_UI, REDOC = "swagger-ui", "redoc"
_NOT_BUILT = (
    "The API documentation pages are not built on this server: run scripts/build-web (it needs Node.js and npm). "
    "The API description itself is at /openapi.json."
)
_PAGE_HEADERS = {"Cache-Control": REVALIDATE, "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def build_router(settings: Settings) -> APIRouter:
    assets = WebAssets(Path(settings.web_static_dir) if settings.web_static_dir else PACKAGE_STATIC_DIR)
    router = APIRouter(include_in_schema=False)

    def folder(package: str) -> str:
        found = assets.versioned(package)
        if found is None:
            raise ServiceUnavailable(_NOT_BUILT)
        return found

    def root(request: Request) -> str:
        """The app's path prefix behind a proxy, as FastAPI's own pages use it."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    @router.api_route("/docs", methods=["GET", "HEAD"])
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = f"{root(request)}/{folder(SWAGGER_UI)}"
        page = get_swagger_ui_html(
            openapi_url=f"{root(request)}{request.app.openapi_url}",
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{base}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}/swagger-ui.css",
            swagger_favicon_url=f"{base}/favicon-32x32.png",
        )
        page.headers.update(_PAGE_HEADERS)
        return page

    @router.api_route("/redoc", methods=["GET", "HEAD"])
    async def redoc(request: Request) -> HTMLResponse:
        # ReDoc ships no favicon: Swagger UI's, which the same build holds. Without Google's fonts (fetched from
        # Google by default) ReDoc uses the system's.
        page = get_redoc_html(
            openapi_url=f"{root(request)}{request.app.openapi_url}",
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{root(request)}/{folder(REDOC)}/redoc.standalone.js",
            redoc_favicon_url=f"{root(request)}/{folder(SWAGGER_UI)}/favicon-32x32.png",
            with_google_fonts=False,
        )
        page.headers.update(_PAGE_HEADERS)
        return page

    def package_file(folder: str, path: str, request: Request) -> Response:
        gzip_ok = "gzip" in request.headers.get("accept-encoding", "").lower()
        found = assets.find(folder, path, gzip_ok=gzip_ok)
        if found is None:
            raise NotFound(f"No file /{folder}/{path} in the web page's build.")
        # The folder name carries the package's version: a new version is a new URL.
        headers = {**ISOLATION_HEADERS, "Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
        if found.encoding:
            headers["Content-Encoding"] = found.encoding
        return FileResponse(found.path, media_type=found.media_type, headers=headers)

    @router.api_route("/swagger-ui-{version}/{path:path}", methods=["GET", "HEAD"])
    async def swagger_ui_file(version: str, path: str, request: Request) -> Response:
        return package_file(f"{SWAGGER_UI}-{version}", path, request)

    @router.api_route("/redoc-{version}/{path:path}", methods=["GET", "HEAD"])
    async def redoc_file(version: str, path: str, request: Request) -> Response:
        return package_file(f"{REDOC}-{version}", path, request)

    return router
