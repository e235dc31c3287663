"""One vocabulary for how a run ended: `outcome` (and `signalName` for a crash) on `/v1/execute` and run records."""

from __future__ import annotations

import signal

import pytest
from httpx import AsyncClient as Client

from codeconnect.execution import service
from tests.execution.conftest import require_language, run

OUTCOMES = {"ok", "error", "stopped", "time_limit", "output_limit", "crashed"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"exit_code": 0, "signal": None, "timed_out": False, "output_truncated": False}, ("ok", None)),
        ({"exit_code": 1, "signal": None, "timed_out": False, "output_truncated": False}, ("error", None)),
        ({"exit_code": None, "signal": None, "timed_out": False, "output_truncated": False}, ("error", None)),
        ({"exit_code": None, "signal": 9, "timed_out": True, "output_truncated": False}, ("time_limit", None)),
        ({"exit_code": None, "signal": 24, "timed_out": True, "output_truncated": False}, ("time_limit", None)),
        ({"exit_code": None, "signal": 9, "timed_out": False, "output_truncated": True}, ("output_limit", None)),
        ({"exit_code": None, "signal": 11, "timed_out": False, "output_truncated": False}, ("crashed", "SIGSEGV")),
        ({"exit_code": None, "signal": 9, "timed_out": False, "output_truncated": False}, ("crashed", "SIGKILL")),
        ({"exit_code": None, "signal": 9, "timed_out": True, "output_truncated": True}, ("time_limit", None)),
        ({"exit_code": None, "signal": 9, "timed_out": False, "output_truncated": False, "stopped": True},
         ("stopped", None)),
    ],
)
def test_flags_map_onto_one_outcome(flags: dict[str, object], expected: tuple[str, str | None]) -> None:
    assert service.classify(**flags) == expected  # type: ignore[arg-type]


@pytest.mark.sandbox
async def test_execute_answers_the_outcome(sandbox_client: Client) -> None:
    cases = [
        ("python", "print('fine')\n", "ok"),
        ("python", "import sys\nsys.exit(3)\n", "error"),
        ("python", "while True:\n    pass\n", "time_limit"),
        ("python", "while True:\n    print('x' * 1000)\n", "output_limit"),
    ]
    for language, code, expected in cases:
        body = await run(sandbox_client, language, code)
        assert body["outcome"] == expected, body
        assert body["signalName"] is None, body
    require_language("cpp")
    body = await run(sandbox_client, "cpp", "int main() { volatile int* p = nullptr; return *p; }\n")
    assert (body["outcome"], body["signal"], body["signalName"]) == ("crashed", signal.SIGSEGV, "SIGSEGV"), body


def test_run_record_carries_the_outcome() -> None:
    from datetime import UTC, datetime

    from codeconnect.execution.schemas import ExecuteResult

    result = ExecuteResult(
        stdout="",
        stderr="",
        exit_code=None,
        signal=11,
        signal_name="SIGSEGV",
        timed_out=False,
        output_truncated=False,
        outcome="crashed",
        duration_ms=3,
        language="cpp",
    )
    record = service.run_record(result, datetime.now(UTC))
    assert record["outcome"] == "crashed" and record["signalName"] == "SIGSEGV"
    assert set(OUTCOMES) >= {record["outcome"]}
