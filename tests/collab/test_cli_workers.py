from __future__ import annotations

import pytest

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
