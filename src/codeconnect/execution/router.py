"""HTTP routes of server-side execution: `/v1/execute*` and the per-session switch and run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Request

from codeconnect.config import Settings
from codeconnect.deps import DB, SessionId
from codeconnect.errors import responses
from codeconnect.execution import service
from codeconnect.execution.schemas import (
    ExecuteRequest,
    ExecuteResult,
    LanguagesResponse,
    SessionExecuteRequest,
    SessionSettings,
    SessionSettingsUpdate,
    execute_request_model,
    session_execute_request_model,
)
from codeconnect.languages import LanguageName
from codeconnect.schemas import bind_body


async def get_execution(request: Request) -> service.ExecutionService:
    execution: service.ExecutionService = request.app.state.execution
    return execution


Execution = Annotated[service.ExecutionService, Depends(get_execution)]
ParticipantToken = Annotated[
    str | None,
    Header(
        alias="X-Participant-Token",
        description="A participant's token: the run is shown as theirs in the shared output.",
    ),
]
OwnerKey = Annotated[
    str | None, Header(alias="X-Owner-Key", description="The session's owner key, from its creation.")
]


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["execution"])

    @router.get(
        "/execute/languages", summary="Languages the server can run", response_model=LanguagesResponse
    )
    async def languages(execution: Execution) -> LanguagesResponse:
        """Which languages run here, and which tools are missing; `enabled` is false when execution is off."""
        return execution.languages()

    @router.post(
        "/execute",
        summary="Run code on the server",
        response_model=ExecuteResult,
        responses=responses(400, 403, 413, 422, 429, 501),
    )
    async def execute(body: ExecuteRequest, execution: Execution, request: Request) -> ExecuteResult:
        """Run a program in the server's sandbox. Off by default (403 `execution_disabled`): code then runs in
        the browser. A compile error is a normal answer with `compileOutput` and a non-zero `exitCode`."""
        service.check_sizes(settings, body.code, body.stdin)
        language = cast(LanguageName, body.language)
        return await execution.execute(language, body.code, body.stdin, _client(request))

    @router.get(
        "/sessions/{sessionId}/settings",
        summary="Get a session's settings",
        response_model=SessionSettings,
        responses=responses(404, 422),
    )
    async def get_settings(session_id: SessionId, db: DB) -> SessionSettings:
        """Whether server-side execution is allowed for this session."""
        return SessionSettings(execution_enabled=await service.execution_enabled(db, session_id))

    @router.put(
        "/sessions/{sessionId}/settings",
        summary="Change a session's settings (owner only)",
        response_model=SessionSettings,
        responses=responses(400, 401, 403, 404, 422),
    )
    async def put_settings(
        session_id: SessionId, body: SessionSettingsUpdate, db: DB, owner_key: OwnerKey = None
    ) -> SessionSettings:
        """Switch server-side execution off or on for this session; needs the `X-Owner-Key` header."""
        enabled = await service.set_execution_enabled(db, session_id, owner_key, body.execution_enabled)
        return SessionSettings(execution_enabled=enabled)

    @router.post(
        "/sessions/{sessionId}/execute",
        summary="Run the session's current code on the server",
        response_model=ExecuteResult,
        responses=responses(400, 403, 404, 413, 422, 429, 501),
    )
    async def execute_session(
        session_id: SessionId,
        body: SessionExecuteRequest,
        execution: Execution,
        request: Request,
        participant_token: ParticipantToken = None,
    ) -> ExecuteResult:
        """Run the session's code in its language. 403 `execution_disabled` when the deployment has execution
        off, 403 `execution_disabled_for_session` when the owner switched it off. The run is also appended to
        the session's shared output."""
        if not execution.enabled:
            raise service.execution_disabled()
        maker = request.app.state.sessionmaker
        program = await service.load_program(maker, getattr(request.app.state, "collab", None), session_id)
        if not program.execution_enabled:
            raise service.session_execution_disabled()
        by = await service.runner_of(maker, session_id, participant_token)
        service.check_sizes(settings, program.code, body.stdin)
        started_at = datetime.now(UTC)
        result = await execution.execute(program.language, program.code, body.stdin, _client(request))
        await service.publish_run(
            request.app.state.run_sink, session_id, service.run_record(result, started_at, by)
        )
        return result

    bind_body(execute, execute_request_model(settings))
    bind_body(execute_session, session_execute_request_model(settings))
    return router
