"""The HTTP protocol class: which first request heads it hands straight to the WebSocket protocol."""

from __future__ import annotations

import pytest

from codeconnect.collab.transport.http import is_websocket_upgrade

UPGRADE = (
    b"GET /v1/collab/s?token=t HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


@pytest.mark.parametrize(
    "head",
    [
        UPGRADE,
        UPGRADE.replace(b"Connection: Upgrade", b"connection:keep-alive, UPGRADE"),
        UPGRADE.replace(b"Upgrade: websocket", b"UPGRADE:   WebSocket  "),
    ],
    ids=["plain", "token list, any case", "header name and value in any case"],
)
def test_upgrade_heads_by_uvicorns_rule(head: bytes) -> None:
    assert is_websocket_upgrade(head)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: example.test\r\n\r\n",
        UPGRADE.replace(b"Connection: Upgrade", b"Connection: keep-alive"),  # no upgrade asked
        UPGRADE.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        UPGRADE.replace(b"Connection: Upgrade\r\n", b""),
        # Heads uvicorn's HTTP protocol answers (400), so they go its way, not straight to the WebSocket.
        UPGRADE.replace(b"GET ", b"POST "),
        UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"),
        UPGRADE.replace(b"Host: example.test", b"Host example.test"),
        UPGRADE.replace(b"Host: example.test", b"Ho st: example.test"),
        UPGRADE.replace(b"Host: example.test", b"Host: exa\x00mple.test"),
        UPGRADE.replace(b"GET /v1/collab/s?token=t", b"GET /v1/collab/ s"),
    ],
)
def test_other_heads_go_to_uvicorn(head: bytes) -> None:
    assert not is_websocket_upgrade(head)


def test_the_last_connection_and_upgrade_headers_decide_as_in_uvicorn() -> None:
    assert not is_websocket_upgrade(UPGRADE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert is_websocket_upgrade(
        UPGRADE.replace(b"Upgrade: websocket", b"Upgrade: h2c").replace(b"\r\n\r\n", b"\r\nUpgrade: websocket\r\n\r\n")
    )
