"""Attack: the network defaults of an intranet deployment.

* **Open CORS.** With ``Access-Control-Allow-Origin: *`` any website a user visits can script the API from their
  browser: create sessions, rewrite code, start runs, read what it gets back. The default is same-origin: no
  CORS headers for other origins unless ``CODECONNECT_CORS_ORIGINS`` names them.
* **Secrets in logs.** A session id is the editor invitation; access logs went to whoever reads the logs with
  every id in them. Ids in paths (``/v1/sessions/{id}...``, ``/s/{id}``, ``/v1/collab/{id}``) and in query
  strings are redacted like tokens.
* **DNS rebinding.** A hostile name that resolves to the intranet address makes the browser treat the server as
  the attacker's own origin, CORS or not. ``CODECONNECT_ALLOWED_HOSTS`` refuses requests (HTTP and WebSocket
  upgrades) whose ``Host`` is not the deployment's, with 400 in the error shape.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from codeconnect.app import create_app
from codeconnect.config import Settings
from codeconnect.logs import RedactSecrets
from tests.conftest import LiveServer, ServerFactory, fresh_sqlite, servers_on, start_server
from tests.test_cli import start_serve, stop

EVIL = "http://evil.example"
# What grants another origin access (a refused preflight may still list methods: that grants nothing).
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials")


@pytest.fixture
async def factory(sqlite_url: str, clean_env: None) -> AsyncIterator[ServerFactory]:
    """Servers on one SQLite database (nothing here depends on the database), with no CODECONNECT_* variables
    from the shell deciding the defaults under test."""
    await fresh_sqlite(sqlite_url)
    async with servers_on(sqlite_url) as start:
        yield start


def no_cors(r: httpx.Response) -> None:
    leaked = {h: r.headers[h] for h in CORS_HEADERS if h in r.headers}
    assert not leaked, f"{r.request.method} {r.request.url.path} answered {leaked}"


# --- CORS ----------------------------------------------------------------------------------------------------


async def test_cors_is_same_origin_by_default(factory: ServerFactory) -> None:
    """Pass: not one response to http://evil.example carries a CORS header (preflights of POST, PUT and the run;
    plain requests), and the same requests from the server's own origin work."""
    server = await factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        own = {"Origin": server.base_url}
        created = await client.post("/v1/sessions", json={"title": "mine"}, headers=own)
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        evil = {"Origin": EVIL}
        for method, path in [
            ("POST", "/v1/sessions"),
            ("PUT", f"/v1/sessions/{sid}"),
            ("POST", f"/v1/sessions/{sid}/participants"),
            ("POST", f"/v1/sessions/{sid}/execute"),
            ("POST", "/v1/execute"),
        ]:
            preflight = await client.options(
                path,
                headers={
                    **evil,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": "content-type",
                },
            )
            no_cors(preflight)
        no_cors(await client.get(f"/v1/sessions/{sid}", headers=evil))
        no_cors(await client.post("/v1/sessions", json={}, headers=evil))
        no_cors(await client.get("/healthz", headers=evil))
        # The page's own calls (same origin, so the browser sends Origin on POST and PUT) keep working.
        assert (await client.put(f"/v1/sessions/{sid}", json={"code": "x = 1\n"}, headers=own)).status_code == 200
        assert (
            await client.post(f"/v1/sessions/{sid}/participants", json={"name": "Ann"}, headers=own)
        ).status_code == 201


async def test_cross_origin_requests_that_skip_the_preflight_do_nothing(factory: ServerFactory) -> None:
    """A page can still send a "simple" cross-origin POST (text/plain or form body, no preflight) and not read
    the answer. Pass: each is refused (4xx) and no participant is added to the session it targets."""
    server = await factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            headers = {"Origin": EVIL, "Content-Type": content_type}
            r = await client.post("/v1/sessions", content=b'{"title": "pwned"}', headers=headers)
            assert 400 <= r.status_code < 500, (content_type, r.status_code, r.text)
            r = await client.post(f"/v1/sessions/{sid}/participants", content=b'{"name": "Ada"}', headers=headers)
            assert 400 <= r.status_code < 500, (content_type, r.status_code, r.text)
        assert (await client.get(f"/v1/sessions/{sid}/participants")).json() == []


# --- Logs ----------------------------------------------------------------------------------------------------


def redact(*args: object) -> str:
    """What the project's filter makes of an access-log record carrying ``args``."""
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
    assert RedactSecrets().filter(record)
    return record.getMessage()


SID = "q3Zx8kE1yJ0aB_c-d4eF5w"
OTHER = "Zz9yY8xX7wW6vV5uU4tT3s"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (f"/v1/sessions/{SID}", "/v1/sessions/[redacted]"),
        (f"/v1/sessions/{SID}/participants", "/v1/sessions/[redacted]/participants"),
        (f"/v1/sessions/{SID}/language", "/v1/sessions/[redacted]/language"),
        (f"/v1/sessions/{SID}/settings", "/v1/sessions/[redacted]/settings"),
        (f"/v1/sessions/{SID}/execute", "/v1/sessions/[redacted]/execute"),
        (f"/s/{SID}", "/s/[redacted]"),
        (f"/s/{SID}?view=1", "/s/[redacted]?view=1"),
        (f"/s/{SID}/", "/s/[redacted]/"),
        (f"/v1/collab/{SID}?token=secret-token", "/v1/collab/[redacted]?token=[redacted]"),
        # Viewer ids: a read capability, kept out of logs like session ids.
        (f"/v/{SID}", "/v/[redacted]"),
        (f"/v1/views/{SID}", "/v1/views/[redacted]"),
        (f"/v1/views/{SID}/participants", "/v1/views/[redacted]/participants"),
        (f"/v1/collab/v/{SID}?token=secret-token", "/v1/collab/v/[redacted]?token=[redacted]"),
        (f"/?session={SID}&viewer={OTHER}", "/?session=[redacted]&viewer=[redacted]"),
        (f"/x?sessionId={SID}&view=1&session_id={OTHER}", "/x?sessionId=[redacted]&view=1&session_id=[redacted]"),
        ("/v1/sessions/%E2%80%AE", "/v1/sessions/[redacted]"),
        # Paths without an id are left as they are.
        ("/v1/sessions", "/v1/sessions"),
        ("/v1/execute", "/v1/execute"),
        ("/assets/index-3f2a.js", "/assets/index-3f2a.js"),
        ("/healthz", "/healthz"),
    ],
)
def test_access_log_filter_redacts_session_ids(path: str, shown: str) -> None:
    """Pass: the logged path is exactly `shown`, and neither id appears in it."""
    line = redact("127.0.0.1:5000", "GET", path, "1.1", 200)
    assert line == f'127.0.0.1:5000 - "GET {shown} HTTP/1.1" 200'
    assert SID not in line and OTHER not in line


def route_paths(routes: list[Any], prefix: str = "") -> Iterator[str]:
    """Every route path of an app, through included routers."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from route_paths(included.routes, prefix + str(getattr(context, "prefix", "") or ""))
        elif isinstance(getattr(route, "path", None), str):
            yield prefix + route.path


def test_every_route_with_a_session_id_is_redacted(sqlite_url: str) -> None:
    """Routes added later are covered too. Pass: for every API and page route whose path carries a session id,
    a logged request to it shows no id."""
    app = create_app(Settings(database_url=sqlite_url))
    checked = []
    for path in route_paths(app.router.routes):
        if not any(name in path for name in ("{sessionId}", "{session_id}", "{viewerId}", "{viewer_id}")):
            continue
        concrete = path
        for name in ("{sessionId}", "{session_id}", "{viewerId}", "{viewer_id}"):
            concrete = concrete.replace(name, SID)
        # Other parameters (a run id, ...) are not secrets: any value stands for them.
        concrete = re.sub(r"\{[^}]+\}", "other-parameter", concrete)
        for method in ("GET", "POST", "PUT"):
            line = redact("127.0.0.1:5000", method, concrete, "1.1", 200)
            assert SID not in line, line
        checked.append(path)
    assert "/s/{session_id}" in checked and "/v1/sessions/{sessionId}/participants" in checked, checked
    assert len(checked) >= 7, checked


def test_served_access_log_has_no_session_ids(sqlite_url: str, tmp_path: Path) -> None:
    """A real `codeconnect serve` process, every kind of request carrying an id (API, page, live connection, ids
    in query strings, unknown ids). Pass: the complete log (read after the process exits, so nothing is left in
    a buffer) has zero occurrences of any session id, token or owner key, and has a redacted line for each path."""
    sp = start_serve(sqlite_url, tmp_path)
    secrets: list[str] = []
    try:
        with httpx.Client(base_url=sp.base_url, timeout=30) as client:
            created = client.post("/v1/sessions", json={"title": "log me"}).json()
            sid, owner_key, viewer_id = created["id"], created["ownerKey"], created["viewerId"]
            secrets += [sid, owner_key, viewer_id]
            token = client.post(f"/v1/sessions/{sid}/participants", json={"name": "Ann"}).json()["token"]
            secrets.append(token)
            unknown = "A" * 22
            secrets.append(unknown)
            client.get(f"/v1/sessions/{sid}")
            client.put(f"/v1/sessions/{sid}", json={"code": "print(1)\n"})
            client.put(f"/v1/sessions/{sid}/language", json={"language": "js"})
            client.get(f"/v1/sessions/{sid}/participants")
            client.get(f"/v1/sessions/{sid}/settings")
            client.put(
                f"/v1/sessions/{sid}/settings", json={"executionEnabled": False}, headers={"X-Owner-Key": owner_key}
            )
            client.post(f"/v1/sessions/{sid}/execute", json={})
            client.get(f"/v1/sessions/{unknown}")
            client.get(f"/v1/sessions/{sid}/nothing-here")
            client.get(f"/s/{sid}")
            client.get(f"/s/{sid}", params={"view": "1"})
            client.get("/", params={"session": sid, "viewer": sid})
            client.get(f"/v1/sessions/{sid}", params={"ownerKey": owner_key, "token": token})
            ws_base = sp.base_url.replace("http://", "ws://")
            with ws_connect(f"{ws_base}/v1/collab/{sid}?token={token}") as ws:
                ws.recv(timeout=10)  # the server's first sync message: the connection was served
            watcher = client.post(f"/v1/views/{viewer_id}/participants", json={"name": "Bo"}).json()["token"]
            secrets.append(watcher)
            client.get(f"/v1/views/{viewer_id}")
            client.get(f"/v/{viewer_id}")
            with ws_connect(f"{ws_base}/v1/collab/v/{viewer_id}?token={watcher}") as ws:
                ws.recv(timeout=10)
            client.get("/healthz", params={"last": "1"})
    finally:
        stop(sp)
    log = sp.log.read_text()
    assert "/healthz?last=1" in log, "the access log was not captured:\n" + log[-3000:]
    for secret in secrets:
        assert secret not in log, f"{secret!r} is in the log:\n{log}"
    for shown in [
        '"GET /v1/sessions/[redacted] HTTP/1.1" 200',
        '"PUT /v1/sessions/[redacted] HTTP/1.1" 200',
        '"PUT /v1/sessions/[redacted]/language HTTP/1.1" 200',
        '"GET /v1/sessions/[redacted]/participants HTTP/1.1" 200',
        '"POST /v1/sessions/[redacted]/participants HTTP/1.1" 201',
        '"PUT /v1/sessions/[redacted]/settings HTTP/1.1" 200',
        '"GET /v1/sessions/[redacted] HTTP/1.1" 404',
        "/s/[redacted]?view=1",
        "/?session=[redacted]&viewer=[redacted]",
        '"POST /v1/views/[redacted]/participants HTTP/1.1" 201',
        '"GET /v1/views/[redacted] HTTP/1.1" 200',
        '"GET /v/[redacted] HTTP/1.1" 200',
    ]:
        assert shown in log, f"no {shown!r} in the log:\n{log}"


# --- Host allow-list -----------------------------------------------------------------------------------------


async def raw_upgrade(server: LiveServer, path: str, host: str) -> tuple[int, bytes]:
    """A WebSocket opening handshake with the given Host header, by hand (clients derive Host from the URL).
    Returns the HTTP status and the body of a refusal."""
    port = urlsplit(server.base_url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split()[1])
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), 10) if length else b""
        return status, body
    finally:
        writer.close()


def assert_invalid_host(status: int, body: Any) -> None:
    assert status == 400, body
    parsed = json.loads(body) if isinstance(body, bytes) else body
    assert parsed["error"] == "invalid_host", parsed
    assert parsed["detail"], parsed


async def live_path(client: httpx.AsyncClient) -> str:
    sid = (await client.post("/v1/sessions", json={})).json()["id"]
    token = (await client.post(f"/v1/sessions/{sid}/participants", json={"name": "Ann"})).json()["token"]
    return f"/v1/collab/{sid}?token={token}"


ALLOWED = "pad.example.com,*.corp.example"
OTHER_HOSTS = ("evil.example", "pad.example.com.evil.example", "corp.example", "127.0.0.1", "evil.example:3000")


async def test_host_allow_list_refuses_other_hosts(factory: ServerFactory) -> None:
    """CODECONNECT_ALLOWED_HOSTS=pad.example.com,*.corp.example. Pass: listed hosts (any case, with a port, any
    subdomain of a wildcard) are served; every other Host gets 400 `invalid_host` in the error shape over HTTP
    (API, page, the live path), and its WebSocket upgrade to the live endpoint is refused (no 101), where an
    allowed Host gets 101."""
    server = await factory(allowed_hosts=ALLOWED)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers={"Host": "pad.example.com"}) as client:
        for host in ("pad.example.com", "PAD.Example.com:3000", "a.corp.example", "a.b.corp.example"):
            r = await client.get("/healthz", headers={"Host": host})
            assert r.status_code == 200, (host, r.text)
        path = await live_path(client)
        for host in OTHER_HOSTS:
            for method, url in [("GET", "/healthz"), ("POST", "/v1/sessions"), ("GET", "/"), ("GET", path)]:
                r = await client.request(method, url, headers={"Host": host}, json={} if method == "POST" else None)
                assert_invalid_host(r.status_code, r.json())
            status, body = await raw_upgrade(server, path, host)
            assert 400 <= status < 500, (host, status, body)
        status, _ = await raw_upgrade(server, path, "pad.example.com:443")
        assert status == 101


@pytest.mark.parametrize(
    "ws",
    [
        pytest.param(None, id="served-transport"),
        pytest.param("websockets-sansio", id="uvicorn-websockets-sansio"),
    ],
)
async def test_refused_upgrade_is_a_400_in_the_error_shape(sqlite_url: str, clean_env: None, ws: str | None) -> None:
    """The live endpoint is answered before the middleware stack; the Host check covers it too. Pass: each
    other Host gets 400 with `{"error": "invalid_host", ...}` as the handshake's answer, an allowed Host 101."""
    await fresh_sqlite(sqlite_url)
    settings = Settings(database_url=sqlite_url, allowed_hosts=ALLOWED)
    server = await start_server(settings, **({"ws": ws} if ws else {}))
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers={"Host": "pad.example.com"}) as c:
            path = await live_path(c)
        assert (await raw_upgrade(server, path, "pad.example.com"))[0] == 101
        for host in OTHER_HOSTS:
            status, body = await raw_upgrade(server, path, host)
            assert_invalid_host(status, body)
    finally:
        await server.stop()


async def test_any_host_is_served_when_the_allow_list_is_unset(factory: ServerFactory) -> None:
    """The default (the server binds 0.0.0.0 and cannot know its names). Pass: Host evil.example gets 200 over
    HTTP and 101 on the WebSocket upgrade."""
    server = await factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        assert (await client.get("/healthz", headers={"Host": "evil.example"})).status_code == 200
        path = await live_path(client)
    status, _ = await raw_upgrade(server, path, "evil.example")
    assert status == 101


@pytest.mark.parametrize(
    "value", ["https://pad.example.com", "pad.example.com/", "pad example.com", "pad.example.com:3000"]
)
def test_allow_list_entries_must_be_host_names(value: str, clean_env: None) -> None:
    """An entry with a scheme, path or port would never match a Host and lock everyone out.
    Pass: the setting is refused at start, naming it."""
    with pytest.raises(ValueError, match="allowed_hosts"):
        Settings(allowed_hosts=value)


def test_defaults(clean_env: None) -> None:
    """Pass: CORS origins empty (same-origin), Host allow-list unset."""
    settings = Settings()
    assert settings.cors_origin_list == []
    assert settings.allowed_hosts is None
