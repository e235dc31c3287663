"""The process list: a second process on a SQLite file is refused; processes sharing PostgreSQL without Redis
are warned about loudly; a crashed process does not block its restart."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, require_service
from tests.test_cli import BIN, start_serve, stop

HEARTBEAT = {"CODECONNECT_PROCESS_HEARTBEAT_SECONDS": "0.5"}
WARNING = "serve this database"


def _serve_env(database_url: str, **env: str) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CODECONNECT_")}
    full.update({"CODECONNECT_DATABASE_URL": database_url, "HOST": "127.0.0.1", "PORT": "0", **env})
    return full


def _wait_for_text(path: Path, text: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_a_second_process_on_a_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    first = start_serve(url, tmp_path, **HEARTBEAT)
    try:
        second = subprocess.run(
            [str(BIN / "codeconnect"), "serve"], env=_serve_env(url, **HEARTBEAT), cwd=tmp_path,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode != 0
        assert second.returncode == 2
        assert "refusing to start: another codeconnect process" in second.stderr and "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
        # kill -9 leaves the first one's row behind: a restart right away is not refused for it.
        stop(first, signal.SIGKILL)
        again = start_serve(url, tmp_path, **HEARTBEAT)
        stop(again)
    finally:
        stop(first, signal.SIGKILL)


@pytest.mark.slow
def test_a_second_process_on_a_sqlite_file_is_refused_even_when_the_first_ones_row_looks_like_its_own(
    tmp_path: Path,
) -> None:
    # Two containers with the same host name, each the PID 1 of its own namespace, sharing the database's
    # volume: the second would take the first one's row (same host, same pid) for its own crashed past. The
    # lock beside the database file still tells them apart.
    database = tmp_path / "one.db"
    url = f"sqlite+aiosqlite:///{database}"
    first = start_serve(url, tmp_path, **HEARTBEAT)
    try:
        with sqlite3.connect(database) as db:
            # As the second process would see it: a row of its own pid on its own host, or one long gone.
            assert db.execute("UPDATE processes SET pid = ?", (2**22 + 1,)).rowcount == 1
        second = subprocess.run(
            [str(BIN / "codeconnect"), "serve"], env=_serve_env(url, **HEARTBEAT), cwd=tmp_path,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr[-2000:]
        assert "refusing to start: another codeconnect process serves this SQLite database" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        stop(first, signal.SIGKILL)


@pytest.mark.slow
def test_processes_sharing_postgres_without_redis_are_warned_about(pg_url: str, tmp_path: Path) -> None:
    first = start_serve(pg_url, tmp_path, **HEARTBEAT)
    second = start_serve(pg_url, tmp_path, **HEARTBEAT)
    try:
        assert _wait_for_text(second.log, WARNING)
        assert _wait_for_text(first.log, WARNING)  # noticed at its next renewal
    finally:
        stop(first)
        stop(second)


@pytest.mark.slow
def test_processes_of_one_cluster_are_not_warned_about(pg_url: str, tmp_path: Path) -> None:
    require_service("Redis", REDIS_URL, 6379)
    env = {**HEARTBEAT, "CODECONNECT_REDIS_URL": REDIS_URL}
    first = start_serve(pg_url, tmp_path, **env)
    second = start_serve(pg_url, tmp_path, **env)  # checks the list at its start, with the first one in it
    stop(first)
    stop(second)
    for sp in (first, second):
        assert WARNING not in sp.log.read_text()


def test_the_sqlite_lock_is_taken_once_and_a_folder_without_room_for_it_falls_back_to_the_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from codeconnect.config import Settings
    from codeconnect.processes import hold_sqlite_file

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    assert hold_sqlite_file(settings) is None
    # A second taker (here a second descriptor of this process, as another process would be) is refused.
    refusal = hold_sqlite_file(settings)
    assert refusal is not None and "one.db.serve-lock" in refusal and "PostgreSQL" in refusal
    # No lock file can be made where the database's folder is a file: warned, and the process row decides.
    (tmp_path / "file").write_text("")
    blocked = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'file' / 'two.db'}")
    assert hold_sqlite_file(blocked) is None
    assert "relying on the process list alone" in caplog.text
