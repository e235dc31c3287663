"""The people list when someone's browser vanishes: shown away within the awareness timeout, on the page and in
the REST ``online`` flag.

The server's keepalive settings are the defaults scaled down, and the budget with them (see
tests/participants/test_presence.py); Chromium's own awareness timeout is not scaled, so within the budget only the
server's keepalive can make the person away.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from pycrdt import Doc

from codeconnect.collab import protocol as p
from codeconnect.collab.awareness import encode_entries
from codeconnect.config import Settings
from tests.participants.test_presence import AWARENESS_TIMEOUT_SECONDS, scaled_keepalive
from tests.web.conftest import ThreadedServer
from tests.web.pages import join

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

SCALE = 0.3
BUDGET_SECONDS = AWARENESS_TIMEOUT_SECONDS * SCALE


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", **scaled_keepalive(SCALE))


def _frame(payload: bytes) -> bytes:
    """One masked binary frame, as every client must send."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = bytes([0x82, 0x80 | length])
    else:
        head = bytes([0x82, 0x80 | 126]) + length.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class VanishingClient:
    """A live connection that says hello (sync step 1, its awareness) and then never sends another byte, not even
    a pong: a laptop whose lid closed. Its socket stays open, so only the server's keepalive can tell."""

    def __init__(self, base_url: str, session_id: str, token: str) -> None:
        netloc = urlsplit(base_url).netloc
        host, port = netloc.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /v1/collab/{session_id}?token={token} HTTP/1.1\r\nHost: {netloc}\r\nOrigin: {base_url}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed the connection during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        doc: Doc[Any] = Doc()
        state = json.dumps({"user": {}}).encode()
        self.sock.sendall(_frame(p.sync_step1(doc.get_state())))
        self.sock.sendall(_frame(p.awareness_message(encode_entries([(int(doc.client_id), 1, state)]))))

    def close(self) -> None:
        self.sock.close()


class Blackhole:
    """A TCP proxy in front of the server whose network can be cut: from then on it passes no byte either way and
    closes nothing, so the browser behind it is gone as far as the server can tell (no close, no frames, no pongs).

    Playwright's ``set_offline`` is no such thing: Chromium's network stack keeps answering pings, and the page's
    close frame sometimes gets through."""

    def __init__(self, base_url: str) -> None:
        host, port = urlsplit(base_url).netloc.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        self.is_cut = threading.Event()
        threading.Thread(target=self._accept, name="blackhole", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.is_cut.is_set():
                continue  # held open, never answered
            server = socket.create_connection(self.upstream)
            self.sockets.append(server)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if self.is_cut.is_set():
                return  # stop reading: what the other side sends from now on goes nowhere
            try:
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
            except OSError:
                return

    def cut(self) -> None:
        self.is_cut.set()

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def vanishing() -> Iterator[list[VanishingClient]]:
    clients: list[VanishingClient] = []
    yield clients
    for client in clients:
        client.close()


def online(web_server: ThreadedServer, session_id: str) -> dict[str, bool]:
    participants = web_server.api("GET", f"/v1/sessions/{session_id}/participants")
    return {p["name"]: p["online"] for p in participants}


def wait_away(page: Any, web_server: ThreadedServer, session_id: str, name: str, since: float) -> float:
    """Wait until ``page``'s people list and the REST flag show ``name`` away; return the seconds since ``since``."""
    person = f"#people li:has(.person-name:text-is('{name}'))"
    remaining_ms = max(1.0, (since + BUDGET_SECONDS - time.monotonic()) * 1000)
    page.wait_for_selector(f"{person}[data-online=false]", timeout=remaining_ms)
    elapsed = time.monotonic() - since
    assert page.inner_text(f"{person} .presence") == "away"
    assert online(web_server, session_id)[name] is False
    return elapsed


def test_a_vanished_client_is_shown_away(
    web_server: ThreadedServer, new_context: Any, vanishing: list[VanishingClient]
) -> None:
    session_id = web_server.create_session("Lid closed")
    grace = join(new_context(), web_server.base_url, session_id, "Grace")
    ada = web_server.api("POST", f"/v1/sessions/{session_id}/participants", {"name": "Ada"})
    vanishing.append(VanishingClient(web_server.base_url, session_id, ada["token"]))
    # Grace sees Ada once the server has read Ada's last frame (her awareness, read once she is seated).
    grace.wait_for_selector("#people li[data-online=true]:has(.person-name:text-is('Ada'))")
    since = time.monotonic()
    assert online(web_server, session_id) == {"Grace": True, "Ada": True}
    elapsed = wait_away(grace, web_server, session_id, "Ada", since)
    print(f"vanished client shown away after {elapsed:.2f} s (budget {BUDGET_SECONDS:.1f} s)")
    # Grace's page, quiet as well, answers the pings and stays online.
    assert online(web_server, session_id)["Grace"] is True


def test_a_browser_whose_network_vanishes_is_shown_away(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Train tunnel")
    grace = join(new_context(), web_server.base_url, session_id, "Grace")
    network = Blackhole(web_server.base_url)
    try:
        join(new_context(), network.base_url, session_id, "Ada")
        grace.wait_for_selector("#people li[data-online=true]:has(.person-name:text-is('Ada'))")
        since = time.monotonic()
        network.cut()
        elapsed = wait_away(grace, web_server, session_id, "Ada", since)
        print(f"browser behind a cut network shown away after {elapsed:.2f} s (budget {BUDGET_SECONDS:.1f} s)")
        assert online(web_server, session_id)["Grace"] is True
    finally:
        network.close()
