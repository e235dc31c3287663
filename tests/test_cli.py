"""`codeconnect serve` and `codeconnect migrate` as real processes: the README's examples, kill -9, schemathesis."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path


def start_serve(
    database_url: str, tmp_path: Path, *args: str, program: Path = BIN / "codeconnect", **env: str
) -> ServeProcess:
    """`codeconnect serve` (this environment's, or ``program``) on a free port with cwd ``tmp_path``, once ready."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CODECONNECT_") or k.startswith("CODECONNECT_TEST")
    }
    full_env.update({"CODECONNECT_DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1", **env})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(program), "serve", *args], env=full_env, stdout=out, stderr=out, cwd=tmp_path
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90  # generous: a loaded 2-core machine starts Python slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return ServeProcess(proc, base, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    # SIGTERM first: with --workers, a killed supervisor would leave its workers running on after the test.
    stop(ServeProcess(proc, base, log))
    raise AssertionError(f"serve did not become ready: {log.read_text()}")


def stop(sp: ServeProcess, sig: int = signal.SIGTERM) -> None:
    if sp.proc.poll() is None:
        sp.proc.send_signal(sig)
        try:
            sp.proc.wait(15)
        except subprocess.TimeoutExpired:
            sp.proc.kill()
            sp.proc.wait()


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    sp = start_serve(database_url, tmp_path)
    yield sp
    stop(sp)


def readme_curl_block() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- curl-examples -->\s*```bash\n(.*?)```", text, re.S)
    assert match, "README.md has no curl examples block"
    return match.group(1)


@pytest.mark.slow
def test_readme_curl_examples_work_as_written(serve: ServeProcess) -> None:
    script = readme_curl_block().replace("http://localhost:3000", serve.base_url)
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert '"title":"Interview"' in out.stdout
    assert '"code":"print(6 * 7)\\n"' in out.stdout
    assert '"language":"javascript"' in out.stdout
    assert '"name":"Ada"' in out.stdout and '"token":"' in out.stdout
    assert '"error":"execution_disabled"' in out.stdout
    assert "token=" not in serve.log.read_text()


@pytest.mark.slow
def test_kill_9_right_after_a_write_loses_nothing(database_url: str, tmp_path: Path) -> None:
    sp = start_serve(database_url, tmp_path)
    with httpx.Client(timeout=30, base_url=sp.base_url) as client:
        sid = client.post("/v1/sessions", json={"title": "durable"}).json()["id"]
        assert client.put(f"/v1/sessions/{sid}", json={"code": "x = 1\n"}).status_code == 200
        assert client.post(f"/v1/sessions/{sid}/participants", json={"name": "Ann"}).status_code == 201
    stop(sp, signal.SIGKILL)
    sp = start_serve(database_url, tmp_path)
    try:
        got = httpx.get(f"{sp.base_url}/v1/sessions/{sid}", timeout=30).json()
        assert got["code"] == "x = 1\n"
        assert [p["name"] for p in got["participants"]] == ["Ann"]
    finally:
        stop(sp)


@pytest.mark.slow
def test_migrate_command_and_concurrent_starts(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'm.db'}"
    env = {**os.environ, "CODECONNECT_DATABASE_URL": url}
    procs = [
        subprocess.Popen(
            [str(BIN / "codeconnect"), "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert (tmp_path / "sub" / "m.db").exists()
    again = subprocess.run(
        [str(BIN / "codeconnect"), "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "up to date" in again.stdout


def test_invalid_configuration_is_reported(tmp_path: Path) -> None:
    env = {**os.environ, "CODECONNECT_MAX_PARTICIPANTS": "-1"}
    out = subprocess.run(
        [str(BIN / "codeconnect"), "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "max_participants" in out.stderr


@pytest.mark.slow
def test_schemathesis_against_the_live_schema(database_url: str, tmp_path: Path) -> None:
    """Every operation, every check: no 5xx, responses match the schema, limits declared and enforced. The admin
    API is on, and its operations (only those) get its token. The REST rate limits are off: 40 examples of each
    operation are hundreds of creations and joins in a minute, all from 127.0.0.1."""
    admin_token = "schemathesis-admin-token-0123456789"
    write_schemathesis_config(tmp_path, admin_token)
    serve = start_serve(
        database_url, tmp_path, CODECONNECT_ADMIN_TOKEN=admin_token,
        CODECONNECT_RATE_SESSIONS_PER_MINUTE="0", CODECONNECT_RATE_JOINS_PER_MINUTE="0",
    )  # fmt: skip
    try:
        # The longer search on SQLite; PostgreSQL answers the same code and differs only in storage.
        run_schemathesis(serve, tmp_path, seconds=30 if database_url.startswith("sqlite") else 15)
    finally:
        stop(serve)


@pytest.mark.slow
def test_schemathesis_in_api_key_mode(tmp_path: Path) -> None:
    """The same checks where API keys are required and the session id alone grants nothing: every operation is
    sent a workspace's key (the admin API's its token), so creations succeed and everything about the sessions
    they make is refused for want of an invite, a participant token or the owner key: in the one error shape,
    with statuses the schema declares. On SQLite: the open-mode run above covers both databases."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'keyed.db'}"
    env = {**os.environ, "CODECONNECT_DATABASE_URL": database_url}
    subprocess.run([str(BIN / "codeconnect"), "migrate"], env=env, check=True, capture_output=True, timeout=120)
    made = subprocess.run(
        [str(BIN / "codeconnect"), "key", "create", "default", "--label", "schemathesis", "--json"],
        env=env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    key = json.loads(made.stdout)["key"]
    admin_token = "schemathesis-admin-token-0123456789"
    write_schemathesis_config(tmp_path, admin_token, key)
    serve = start_serve(
        database_url, tmp_path, CODECONNECT_AUTH="api-key", CODECONNECT_ADMIN_TOKEN=admin_token,
        CODECONNECT_RATE_SESSIONS_PER_MINUTE="0", CODECONNECT_RATE_JOINS_PER_MINUTE="0",
    )  # fmt: skip
    try:
        # A shorter search than the open-mode run: past its credentials check, every operation on a session is
        # the code that run exercises already.
        run_schemathesis(serve, tmp_path, seconds=12)
        assert "api_key" not in serve.log.read_text()  # the key was accepted: no refusal of it was logged
    finally:
        stop(serve)


def write_schemathesis_config(tmp_path: Path, admin_token: str, key: str | None = None) -> None:
    """The admin API's operations get its token, every other one ``key`` (if any). An import's updates must be
    Yjs updates and its history within the limits, which no JSON Schema can say: 422 and 413 are its answers to
    schema-valid bodies that are not."""
    (tmp_path / "schemathesis.toml").write_text(
        ("" if key is None else f'headers = {{ Authorization = "Bearer {key}" }}\n')
        + '[[operations]]\ninclude-path-regex = "^/v1/admin/"\n'
        f'headers = {{ Authorization = "Bearer {admin_token}" }}\n'
        '[[operations]]\ninclude-path = "/v1/sessions/import"\n'
        '[operations.checks.positive_data_acceptance]\n'
        'expected-statuses = ["2xx", "401", "403", "404", "409", "413", "422", "429"]\n'
    )


def run_schemathesis(serve: ServeProcess, tmp_path: Path, seconds: int) -> None:
    """Each phase once, then fuzzing and stateful sequences repeated until ``seconds`` are spent (schemathesis's
    ``--max-time``: that budget, not the examples, sets how long a run takes). ``SCHEMATHESIS_SECONDS=N`` gives
    every run N seconds, for a longer search than the suite's."""
    seconds = int(os.environ.get("SCHEMATHESIS_SECONDS", seconds))
    out = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{serve.base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "20261128",
            "--max-time",
            str(seconds),
            "--request-timeout",
            "20",
            # One worker: hypothesis parses lambda sources with ast, and CPython 3.11's ast.parse from two threads
            # at once can fail with "AST constructor recursion depth mismatch" inside the tool itself.
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-8000:]
    assert "passed" in out.stdout
    assert '" 500' not in serve.log.read_text()
