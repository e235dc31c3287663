"""`codeconnect workspace ...` and `codeconnect key ...` on a database of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeconnect.__main__ import main


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CODECONNECT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_workspaces_and_keys_from_the_command_line(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("workspace", "create", "acme", "--languages", "python, java", "--max-participants", "4",
                       "--json")  # fmt: skip
    assert code == 0
    acme = json.loads(out)
    assert acme["policy"]["languages"] == ["python", "java"] and acme["policy"]["maxParticipants"] == 4

    code, out, err = cli("workspace", "create", "acme")
    assert code == 2 and "already exists" in err

    code, out, _ = cli("workspace", "policy", "acme", "--execution", "browser", "--languages", "inherit", "--json")
    policy = json.loads(out)["policy"]
    assert policy == {"execution": "browser", "languages": None, "maxParticipants": 4, "retentionDays": None,
                      "historyDays": None}
    code, out, _ = cli("workspace", "policy", acme["id"], "--json")  # no change: shows it
    assert json.loads(out)["policy"] == policy
    for bad in (["--max-participants", "x"], ["--languages", "cobol"], ["--retention-days", "0"]):
        code, _, err = cli("workspace", "policy", "acme", *bad)
        assert code == 2 and "invalid policy" in err, bad
    code, _, err = cli("workspace", "policy", "nope")
    assert code == 2 and "No workspace" in err

    code, out, _ = cli("key", "create", "acme", "--label", "ci")
    assert code == 0
    key, note = out.splitlines()
    assert key.startswith("ccl_") and "shown only now" in note
    code, out, _ = cli("key", "list", "--json")
    listed = json.loads(out)
    assert len(listed) == 1 and listed[0]["label"] == "ci" and key not in out
    code, out, _ = cli("workspace", "list")
    assert code == 0 and "name=default" in out and "name=acme" in out and "activeKeys=1" in out

    code, out, _ = cli("key", "revoke", listed[0]["id"], "--json")
    assert code == 0 and json.loads(out)["revokedAt"] is not None
    code, _, err = cli("key", "revoke", "nope")
    assert code == 2 and "No API key" in err
    code, out, _ = cli("key", "list", "default")
    assert out.strip() == "(none)"
