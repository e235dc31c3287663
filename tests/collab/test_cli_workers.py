from __future__ import annotations

import pytest

from codeconnect.__main__ import main


def test_serve_refuses_more_than_one_worker(capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    # A room lives in one process: several workers would split a session's editors silently.
    assert main(["serve", "--workers", "2"]) == 2
    assert "--workers must be 1" in capsys.readouterr().err
