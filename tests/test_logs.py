"""Log lines: JSON lines with request ids and session references, and nothing secret in them."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from codeconnect import logs
from tests.test_cli import start_serve, stop

SID = "q3Zx8kE1yJ0aB_c-d4eF5w"


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError(f"bad /v1/sessions/{SID}?token=abc")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("codeconnect.x", logging.ERROR, __file__, 1, msg, args, info)


def test_a_json_line_carries_the_request_and_session_of_its_context() -> None:
    record = _record("loaded %s", "a room")
    rid = logs.request_id.set("r-1")
    ref = logs.session.set(SID)
    try:
        line = json.loads(logs.JsonLines().format(record))
    finally:
        logs.request_id.reset(rid)
        logs.session.reset(ref)
    assert line["level"] == "ERROR" and line["logger"] == "codeconnect.x" and line["message"] == "loaded a room"
    assert line["request_id"] == "r-1" and line["session"] == logs.session_ref(SID)
    assert line["time"].endswith("+00:00")
    # Outside a request, neither key.
    assert set(json.loads(logs.JsonLines().format(record))) == {"time", "level", "logger", "message"}


def test_a_traceback_is_redacted_like_the_message() -> None:
    record = _record("failed", exc=True)
    assert logs.RedactSecrets().filter(record)
    line = json.loads(logs.JsonLines().format(record))
    assert "ValueError" in line["exception"]
    assert SID not in line["exception"] and "abc" not in line["exception"]


def test_session_references_are_keyed_short_and_only_for_session_paths() -> None:
    ref = logs.session_ref(SID)
    assert len(ref) == 12 and SID not in ref and logs.session_ref(SID) == ref
    assert logs.session_ref("other") != ref
    for path in (f"/v1/sessions/{SID}", f"/v1/sessions/{SID}/participants", f"/v1/collab/{SID}", f"/s/{SID}"):
        assert logs.session_in_path(path) == SID, path
    for path in ("/v1/sessions", f"/v1/views/{SID}", f"/v1/collab/v/{SID}", "/healthz", f"/x/v1/sessions/{SID}"):
        assert logs.session_in_path(path) is None, path
    keyed = logs.session_ref(SID, b"shared by every process")
    assert keyed == logs.session_ref(SID, b"shared by every process") != ref  # another key, another reference
    before = logs._hash_key  # (this module's own state)
    try:
        logs.set_hash_key("shared by every process")
        assert logs.session_ref(SID) == keyed
    finally:
        logs._hash_key = before


@pytest.mark.slow
def test_serve_writes_json_lines_with_request_ids_and_no_secret(sqlite_url: str, tmp_path: Path) -> None:
    """CODECONNECT_LOG_FORMAT=json. Pass: every line of the server's output is a JSON object; each access line
    carries the request id its response returned in X-Request-ID and, for a session's paths, that session's
    reference; no session id, viewer id, token or owner key appears anywhere in the output."""
    sp = start_serve(sqlite_url, tmp_path, CODECONNECT_LOG_FORMAT="json", CODECONNECT_LOG_HASH_KEY="k")
    secrets: list[str] = []
    try:
        with httpx.Client(base_url=sp.base_url, timeout=30) as http:
            created = http.post("/v1/sessions", json={"title": "logged"})
            s = created.json()
            secrets += [s["id"], s["ownerKey"], s["viewerId"]]
            joined = http.post(f"/v1/sessions/{s['id']}/participants", json={"name": "Ada"})
            secrets.append(joined.json()["token"])
            read = http.get(f"/v1/sessions/{s['id']}")
            missing = http.get("/v1/sessions/no-such-session")
            with ws_connect(f"{sp.base_url.replace('http', 'ws')}/v1/collab/{s['id']}?token={secrets[-1]}") as ws:
                ws.recv(timeout=30)
        responses = [created, joined, read, missing]
        ids = [r.headers["x-request-id"] for r in responses]
        assert len(set(ids)) == 4 and all(len(i) == 16 for i in ids)
    finally:
        stop(sp)
    output = sp.log.read_text()
    for secret in secrets:
        assert secret not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = {line["request_id"]: line for line in lines if line["logger"] == "uvicorn.access"}
    assert "session" not in access[ids[0]]  # POST /v1/sessions names no session
    # The server's key was given: the reference is the one anybody holding the key computes, and only them.
    assert access[ids[1]]["session"] == access[ids[2]]["session"] == logs.session_ref(s["id"], b"k")
    assert access[ids[3]]["session"] == logs.session_ref("no-such-session", b"k")
    assert "/v1/sessions/[redacted]" in access[ids[2]]["message"] and " 200" in access[ids[2]]["message"]
    assert " 404" in access[ids[3]]["message"]
