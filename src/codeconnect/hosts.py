"""The Host allow-list (``CODECONNECT_ALLOWED_HOSTS``), against DNS rebinding.

A hostile page can make its own name resolve to the intranet address of this server; the browser then treats
the server as the page's own origin (same-origin, so no CORS check) and lets the page script it. Such requests
carry the hostile name in their ``Host`` header, which the browser sets and pages cannot change: a server that
answers only its own names is out of reach.

Not a middleware in the stack: the live endpoint is answered before the stack (see ``app.py``), and its
upgrade requests must be checked too, so the app calls :meth:`HostAllowList.allows` first thing for both.
Starlette's ``TrustedHostMiddleware`` would also answer in plain text, not in the error shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Receive, Scope, Send

from codeconnect.errors import error_response

_DENIAL_EXTENSION = "websocket.http.response"


class HostAllowList:
    """Host names a server answers to: exact names, ``*.example.com`` for any subdomain, ``*`` for any."""

    __slots__ = ("_exact", "_suffixes", "_any")

    def __init__(self, patterns: Sequence[str]) -> None:
        patterns = [p.lower().rstrip(".") for p in patterns]
        self._any = "*" in patterns
        self._exact = frozenset(p for p in patterns if not p.startswith("*"))
        self._suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))

    def allows(self, scope: Scope) -> bool:
        """Whether an HTTP or WebSocket request names an allowed host (a request without Host does not)."""
        return self.allows_host(_header(scope, b"host"))

    def allows_host(self, header: str | None) -> bool:
        """Whether a Host header's value (None: no header) names an allowed host."""
        host = _host_name(header)
        if host is None:
            return self._any
        return self._any or host in self._exact or host.endswith(self._suffixes)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 400 ``invalid_host`` in the error shape; for a WebSocket upgrade, as the handshake's response
        where the server supports that (else the upgrade is refused the ASGI way, which servers send as 403)."""
        response = error_response(400, "invalid_host", "This server does not answer to the host name requested.")
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        if (await receive())["type"] != "websocket.connect":
            return
        if _DENIAL_EXTENSION in scope.get("extensions", {}):
            await response(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid host"})


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _host_name(header: str | None) -> str | None:
    if header is None:
        return None
    host = header.strip().lower()
    if host.startswith("["):  # an IPv6 literal: the port, if any, follows the bracket
        end = host.find("]")
        return host[: end + 1] if end > 0 else None
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None
