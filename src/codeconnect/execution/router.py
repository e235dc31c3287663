"""`/v1/execute`: server-side execution, off unless the operator turns the sandbox on."""

from __future__ import annotations

from fastapi import APIRouter

from codeconnect.deps import SettingsDep
from codeconnect.errors import Forbidden, responses
from codeconnect.execution.schemas import ExecuteRequest, ExecuteResult, execute_request_model
from codeconnect.config import Settings
from codeconnect.schemas import bind_body


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["execution"])

    @router.post(
        "/execute",
        summary="Run code on the server",
        response_model=ExecuteResult,
        responses=responses(400, 403, 413, 422),
    )
    async def execute(body: ExecuteRequest, settings: SettingsDep) -> ExecuteResult:
        """Run a program in the server's sandbox. Off by default: code then runs in the browser."""
        raise Forbidden(
            "Server-side execution is disabled on this deployment (CODECONNECT_EXECUTION=off); "
            "code runs in the browser.",
            code="execution_disabled",
        )

    bind_body(execute, execute_request_model(settings))
    return router
