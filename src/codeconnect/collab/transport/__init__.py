"""The live transport: WebSocket connections on public APIs (see ``connection.py``), and the HTTP protocol
wrapper that bounds how long a request may take to send its headers (``http.py``)."""

from codeconnect.collab.transport.connection import (
    LIMITS_STATE_KEY,
    LIVE_EXTENSION,
    TransportLimits,
    WebSocketConnection,
)

__all__ = ["LIMITS_STATE_KEY", "LIVE_EXTENSION", "TransportLimits", "WebSocketConnection"]
