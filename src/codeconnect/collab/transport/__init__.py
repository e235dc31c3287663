"""The live transport: WebSocket connections on public APIs (see ``connection.py``), and the HTTP protocol
wrapper that bounds how long a request may take to send its headers (``http.py``)."""

from codeconnect.collab.transport.connection import (
    ACCEPTOR_STATE_KEY,
    LIMITS_STATE_KEY,
    LIVE_EXTENSION,
    SHUTDOWN_STATE_KEY,
    Acceptor,
    TransportLimits,
    WebSocketConnection,
)

__all__ = [
    "ACCEPTOR_STATE_KEY",
    "LIMITS_STATE_KEY",
    "LIVE_EXTENSION",
    "SHUTDOWN_STATE_KEY",
    "Acceptor",
    "TransportLimits",
    "WebSocketConnection",
]
