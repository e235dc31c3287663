"""The built web page on disk: which file answers a URL, in which encoding, with which headers.

Nothing here knows about HTTP frameworks; the router turns a :class:`StaticFile` into a response.
"""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path

# Python's table does not know every type a browser is strict about: module scripts must be JavaScript and
# WebAssembly must be application/wasm for streaming compilation.
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".zip": "application/zip",
    ".svg": "image/svg+xml",
    ".map": "application/json",
}

# Served as they are: already compressed, or too small to matter.
_GZIP_WORTHY = {".js", ".mjs", ".css", ".wasm", ".json", ".html", ".svg", ".map"}

PACKAGE_STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Pages and workers run cross-origin isolated: Pyodide's interrupt buffer needs SharedArrayBuffer.
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
# Only our own scripts run on the page (WebAssembly compiles are allowed for the runners); no framing, no plugins.
# CodeMirror injects its theme as style elements, hence inline styles.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

_CONFIG_SLOT = '<script id="ccl-config" type="application/json">{}</script>'
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9._@+-]+$")


def media_type(path: Path) -> str:
    known = MEDIA_TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class StaticFile:
    """A file to send: its path on disk, its media type, and the Content-Encoding of the bytes, if any."""

    path: Path
    media_type: str
    encoding: str | None = None


@dataclass
class WebAssets:
    """One build of the web page, rooted at ``root`` (see ``scripts/build-web``)."""

    root: Path
    _index: tuple[float, str] | None = field(default=None, repr=False)

    @property
    def built(self) -> bool:
        return (self.root / "index.html").is_file()

    def find(self, folder: str, relative: str, *, gzip_ok: bool) -> StaticFile | None:
        """The file ``folder/relative`` of the build, or None when it is not one (never outside the root)."""
        parts = relative.split("/")
        safe = all(_SAFE_SEGMENT.match(p) and p not in {".", ".."} for p in [folder, *parts])
        if not safe:
            return None
        path = self.root.joinpath(folder, *parts)
        if not path.is_file():
            return None
        kind = media_type(path)
        if gzip_ok and path.suffix.lower() in _GZIP_WORTHY:
            compressed = path.with_name(path.name + ".gz")
            if compressed.is_file():
                return StaticFile(compressed, kind, "gzip")
        return StaticFile(path, kind)

    def versioned(self, name: str) -> str | None:
        """The build's folder ``<name>-<version>`` (one package's files, e.g. ``swagger-ui-5.35.0``), if any.

        Looked up on each use: a rebuild may bring another version, and the build's top level has a handful of
        entries."""
        if not self.root.is_dir():
            return None
        found = sorted(
            entry.name for entry in self.root.iterdir()
            if entry.is_dir() and entry.name.startswith(f"{name}-") and _SAFE_SEGMENT.match(entry.name)
        )
        return found[-1] if found else None

    def index_html(self, config: dict[str, object]) -> str:
        """The page, with the settings it needs written into it (re-read when the build changes)."""
        path = self.root / "index.html"
        mtime = path.stat().st_mtime
        if self._index is None or self._index[0] != mtime:
            self._index = (mtime, path.read_text(encoding="utf-8"))
        # Escape what could close the script element, so no setting can ever inject markup.
        data = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        slot = f'<script id="ccl-config" type="application/json">{data}</script>'
        return self._index[1].replace(_CONFIG_SLOT, slot)
