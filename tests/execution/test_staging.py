"""The folder of copies the sandbox binds: a server never removes another live server's folder, and removes what
a killed one left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeconnect.execution.staging import SandboxFiles

# A process id no process has here; a live server in another PID namespace (a container sharing the temp dir)
# can carry any id, this one included.
FOREIGN_PID = 4_000_000_000


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield tmp_path


def _age(folder: Path, seconds: float = 3600) -> None:
    past = time.time() - seconds
    os.utime(folder, (past, past))


def _left_by_a_killed_server(base: Path) -> Path:
    """A folder made by a server process that then died without removing it."""
    made = subprocess.run(
        [sys.executable, "-c",
         "import os; from codeconnect.execution.staging import SandboxFiles\n"
         "print(SandboxFiles.create(other_users=False).root, flush=True); os._exit(9)"],
        env={**os.environ, "TMPDIR": str(base)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    folder = Path(made.stdout.strip())
    assert folder.parent == base and folder.is_dir(), made.stderr
    return folder


def test_a_live_servers_folder_is_kept_whatever_its_process_id(temp_dir: Path) -> None:
    live = SandboxFiles.create(other_users=False)
    try:
        # As another container's server sees it: a process id that is not alive in this namespace, and old.
        foreign = live.root.with_name(f"codeconnect-sandbox-{FOREIGN_PID}-live")
        live.root.rename(foreign)
        live.root = foreign
        _age(foreign)

        other = SandboxFiles.create(other_users=False)
        other.close()
        assert foreign.is_dir(), "a server removed the folder of a server that still runs"
    finally:
        live.close()
    assert not foreign.exists()


def test_a_killed_servers_folder_is_removed_by_the_next_start(temp_dir: Path) -> None:
    left = _left_by_a_killed_server(temp_dir)
    young = _left_by_a_killed_server(temp_dir)
    _age(left)

    files = SandboxFiles.create(other_users=False)
    try:
        assert not left.exists()
        # A folder made moments ago may be one another server has not locked yet: it stays until it is old.
        assert young.is_dir()
        assert files.root.is_dir()
    finally:
        files.close()
    assert not files.root.exists()


def test_a_folder_of_another_user_or_another_program_is_not_touched(temp_dir: Path) -> None:
    stranger = temp_dir / "codeconnect-sandboxes-of-someone-else"
    stranger.mkdir()
    _age(stranger)
    files = SandboxFiles.create(other_users=False)
    files.close()
    assert stranger.is_dir()
