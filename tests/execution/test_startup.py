"""`CODECONNECT_EXECUTION=sandbox` refuses to start when bwrap is missing or the self-test fails."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from codeconnect.__main__ import main
from codeconnect.app import create_app
from codeconnect.config import Settings
from codeconnect.execution.sandbox import SandboxUnavailable
from codeconnect.execution.service import check_sandbox
from tests.execution.conftest import require_sandbox


async def test_missing_bwrap_is_reported() -> None:
    with pytest.raises(SandboxUnavailable, match="is not installed"):
        await check_sandbox(Settings(execution="sandbox", exec_bwrap_path="/nonexistent/bwrap"))


async def test_broken_sandbox_fails_the_self_test(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho pretending\nexit 0\n")
    fake.chmod(0o755)
    tmp_path.chmod(tmp_path.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    with pytest.raises(SandboxUnavailable):
        await check_sandbox(Settings(execution="sandbox", exec_bwrap_path=str(fake)))


async def test_real_sandbox_passes_the_self_test() -> None:
    require_sandbox()
    await check_sandbox(Settings(execution="sandbox"))


async def test_app_refuses_to_start(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, execution="sandbox", exec_bwrap_path="/nonexistent/bwrap"))
    with pytest.raises(RuntimeError, match="sandbox is unusable"):
        async with app.router.lifespan_context(app):
            pass


def test_serve_refuses_to_start(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    monkeypatch.setenv("CODECONNECT_EXECUTION", "sandbox")
    monkeypatch.setenv("CODECONNECT_EXEC_BWRAP_PATH", "/nonexistent/bwrap")
    monkeypatch.setenv("CODECONNECT_DATABASE_URL", sqlite_url)
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err
    assert "/nonexistent/bwrap" in err
