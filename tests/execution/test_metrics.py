"""Sandbox metrics after real runs: runs by language and outcome, their durations, 429s by reason and route."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.execution.conftest import SANDBOX_LIMITS, require_sandbox, run
from tests.test_metrics import moved, scrape

pytestmark = pytest.mark.sandbox


async def test_runs_and_refusals_are_counted(server_factory: ServerFactory) -> None:
    require_sandbox()
    server = await server_factory(**{**SANDBOX_LIMITS, "exec_rate_per_minute": 2})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        before = await scrape(client)
        assert (await run(client, "python", "print(1)"))["outcome"] == "ok"
        assert (await run(client, "python", "import sys; sys.exit(3)"))["outcome"] == "error"
        refused = await client.post("/v1/execute", json={"language": "python", "code": "print(1)"})
        assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
        after = await scrape(client)
    assert moved(before, after, "codeconnect_sandbox_runs_total", language="python", outcome="ok") == 1
    assert moved(before, after, "codeconnect_sandbox_runs_total", language="python", outcome="error") == 1
    assert moved(before, after, "codeconnect_sandbox_run_duration_seconds_count", language="python") == 2
    assert moved(before, after, "codeconnect_sandbox_run_duration_seconds_sum", language="python") > 0
    assert moved(before, after, "codeconnect_sandbox_refused_total", reason="rate_limited") == 1
    assert moved(before, after, "codeconnect_sandbox_refused_total", reason="execution_busy") == 0
    assert moved(before, after, "codeconnect_rest_rate_limited_total", route="/v1/execute", limit="rate_limited") == 1
    requests = "codeconnect_http_requests_total"
    assert moved(before, after, requests, method="POST", route="/v1/execute", status="200") == 2
    assert moved(before, after, requests, method="POST", route="/v1/execute", status="429") == 1
    assert after.value("codeconnect_sandbox_queue_length") == before.value("codeconnect_sandbox_queue_length")
    assert after.value("codeconnect_sandbox_runs_active") == before.value("codeconnect_sandbox_runs_active")
