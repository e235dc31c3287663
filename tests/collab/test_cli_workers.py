from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn

from codeconnect.__main__ import main
from tests.conftest import PG_URL, REDIS_URL


def test_serve_refuses_several_workers_on_sqlite(capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    # SQLite is one process's database: the refusal says what to use instead.
    assert main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--workers 2 refused" in err
    assert "PostgreSQL" in err and "CODECONNECT_REDIS_URL" in err


def test_serve_refuses_several_workers_without_redis(
    capsys: pytest.CaptureFixture[str], clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL but without Redis, the workers' rooms could not reach each other.
    monkeypatch.setenv("CODECONNECT_DATABASE_URL", PG_URL)
    assert main(["serve", "--workers", "2"]) == 2
    assert "CODECONNECT_REDIS_URL" in capsys.readouterr().err


def test_redis_on_sqlite_is_refused_at_start(
    capsys: pytest.CaptureFixture[str], clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODECONNECT_REDIS_URL", REDIS_URL)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "needs PostgreSQL" in err


@pytest.mark.parametrize("configured", [None, "90"])
def test_workers_have_the_configured_time_to_start_and_answer_their_health_check(
    configured: str | None, clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Uvicorn's supervisor replaces a worker that does not answer its health check within 5 s by default: on a busy
    # machine a worker still importing the app missed it, and `serve --workers 2` replaced its workers forever.
    monkeypatch.setenv("CODECONNECT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    if configured is not None:
        monkeypatch.setenv("CODECONNECT_WORKER_HEALTHCHECK_SECONDS", configured)
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(options))
    assert main(["serve", "--port", "0"]) == 0
    assert served["timeout_worker_healthcheck"] == int(configured or 30)
