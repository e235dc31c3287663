"""How uvicorn runs the app: the protocol classes of this project and the options that go with them, one
place for ``codeconnect serve`` and the tests alike."""

from __future__ import annotations

from typing import Any

from codeconnect.config import Settings

# uvicorn's documented ``ws``/``http`` options take an import path of a protocol class.
WS_PROTOCOL = "codeconnect.collab.transport.connection:WebSocketConnection"
HTTP_PROTOCOL = "codeconnect.collab.transport.http:HeadDeadlineHTTP"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.Config`` (or ``uvicorn.run``) for serving ``settings``' app."""
    return {
        "ws": WS_PROTOCOL,
        "http": HTTP_PROTOCOL,
        # Read by the WebSocket protocol for its keepalive: a silent peer is pinged, then cut.
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        # Compression costs tens of KB per connection and CPU on every frame; code edits are tiny. (The
        # protocol negotiates no extension whatever this says; set for the record.)
        "ws_per_message_deflate": False,
        "lifespan": "on",
        # The client's address is the app's to work out, with CODECONNECT_TRUSTED_PROXIES (codeconnect.clients):
        # uvicorn's own rewrite would believe X-Forwarded-For from 127.0.0.1 and ::1 without being asked to, so a
        # process on the host could pick the address it is rate-limited under, and it would be a second list.
        "proxy_headers": False,
    }
