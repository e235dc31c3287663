"""HTTP routes of server-side execution: `/v1/execute*` and the per-session switch and run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.responses import StreamingResponse

from codeconnect.config import Settings
from codeconnect.deps import DB, SessionId, client_key
from codeconnect.errors import Conflict, responses
from codeconnect.execution import service, streaming
from codeconnect.execution.registry import RunIdInUse
from codeconnect.execution.schemas import (
    RUN_ID_PATTERN,
    ExecuteRequest,
    ExecuteResult,
    LanguagesResponse,
    SessionExecuteRequest,
    SessionSettings,
    SessionSettingsUpdate,
    StopRunResult,
    execute_request_model,
    session_execute_request_model,
)
from codeconnect.languages import LanguageName
from codeconnect.schemas import bind_body
from codeconnect.security import new_id
from codeconnect.sessions.access import requires
from codeconnect.sessions.owner import OwnerKey
from codeconnect.sessions.state import check_open


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


RunId = Annotated[str, Path(alias="runId", pattern=RUN_ID_PATTERN, description="The id the run was started with.")]


@asynccontextmanager
async def stop_when_client_leaves(request: Request, stop: asyncio.Event) -> AsyncIterator[None]:
    """Set ``stop`` when the client goes away while the run is in progress (a closed tab, an aborted fetch):
    nobody is waiting for the answer, and the run would otherwise hold a slot until a limit ended it.

    The body has been read by then, so the next ASGI message of the request is ``http.disconnect``; the
    server sends it as soon as the connection closes.
    """

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            await asyncio.sleep(0.1)  # not expected once the body is read; never spin on it
        stop.set()

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher


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
        responses=responses(400, 401, 403, 413, 422, 429, 501),
    )
    async def execute(body: ExecuteRequest, execution: Execution, request: Request) -> ExecuteResult:
        """Run a program in the server's sandbox. Off by default (403 `execution_disabled`): code then runs in
        the browser. A compile error is a normal answer with `compileOutput` and a non-zero `exitCode`. With
        `CODECONNECT_AUTH=api-key` it needs a workspace's API key (`Authorization: Bearer`, 401 otherwise), and
        that workspace's policy decides (403 `execution_not_allowed`, `language_not_allowed`)."""
        service.check_sizes(settings, body.code, body.stdin)
        language = cast(LanguageName, body.language)
        if settings.auth == "api-key":
            await service.check_keyed_run(request, settings, language)
        stop = asyncio.Event()
        async with stop_when_client_leaves(request, stop):
            return await execution.execute(language, body.code, body.stdin, client_key(request), stop)

    @router.get(
        "/sessions/{sessionId}/settings",
        summary="Get a session's settings",
        response_model=SessionSettings,
        responses=responses(401, 404, 422),
        dependencies=requires("read", settings),
    )
    async def get_settings(session_id: SessionId, db: DB) -> SessionSettings:
        """Whether server-side execution is allowed for this session, and whether editors may clear its
        shared output."""
        return await service.session_settings(db, settings, session_id)

    @router.put(
        "/sessions/{sessionId}/settings",
        summary="Change a session's settings (owner only)",
        response_model=SessionSettings,
        responses=responses(400, 401, 403, 404, 422),
    )
    async def put_settings(
        session_id: SessionId, body: SessionSettingsUpdate, db: DB, owner_key: OwnerKey = None
    ) -> SessionSettings:
        """Switch server-side execution, or clearing the shared output, off or on for this session (the
        switches left out keep their value); needs the `X-Owner-Key` header."""
        return await service.update_settings(db, settings, session_id, owner_key, body)

    @router.post(
        "/sessions/{sessionId}/execute",
        summary="Run the session's current code on the server",
        response_model=ExecuteResult,
        responses={
            **responses(400, 401, 403, 404, 409, 413, 422, 429, 501),
            200: {
                "description": "The run's result; with `Accept: application/x-ndjson`, its output as it is made, "
                "then the result (see above).",
                "content": {streaming.NDJSON: {"schema": {"type": "string"}}},
            },
        },
        dependencies=requires("write", settings),
    )
    async def execute_session(
        session_id: SessionId,
        body: SessionExecuteRequest,
        execution: Execution,
        request: Request,
        participant_token: ParticipantToken = None,
    ) -> ExecuteResult | Response:
        """Run the session's code in its language. 403 `execution_disabled` when the deployment has execution
        off, 403 `execution_disabled_for_session` when the owner switched it off, 403 `execution_not_allowed`
        when the session's workspace policy keeps code off the server, 409 `session_ended` when the owner ended
        the session. The run is also appended to
        the session's shared output, once, with `runId` as its id. It is stopped (outcome `stopped`) by
        `POST .../runs/{runId}/stop` or when the client goes away before the answer.

        With `Accept: application/x-ndjson` the answer streams the output as the program writes it: one JSON
        object a line, `{"type": "output", "stream": "stdout" | "stderr" | "compile", "text": ...}`, then
        `{"type": "result", "result": <this answer>}` or `{"type": "error", "error": ..., "detail": ...}`.
        Refusals still come as ordinary error answers, before the stream starts."""
        if not execution.enabled:
            raise service.execution_disabled()
        maker = request.app.state.sessionmaker
        program = await service.load_program(maker, settings, getattr(request.app.state, "collab", None), session_id)
        if not program.execution_enabled:
            raise service.session_execution_disabled()
        await check_open(request.app.state.collab, session_id)
        if program.execution != "sandbox":
            raise service.execution_not_allowed(program.execution)
        by = await service.runner_of(maker, session_id, participant_token)
        service.check_sizes(settings, program.code, body.stdin)
        run_id = body.run_id or new_id()
        started_at = datetime.now(UTC)

        async def run(live: streaming.LiveRun | None) -> ExecuteResult:
            try:
                with execution.runs.track(session_id, run_id) as stop:
                    if live is None:
                        async with stop_when_client_leaves(request, stop):
                            result = await execution.execute(
                                program.language, program.code, body.stdin, client_key(request), stop
                            )
                    else:
                        live.stop = stop
                        result = await execution.execute(
                            program.language, program.code, body.stdin, client_key(request), stop,
                            on_start=live.admitted.set, on_output=live.hear,
                        )  # fmt: skip
            except RunIdInUse:
                raise Conflict(
                    "A run with this id is already running in this session.", code="run_id_in_use"
                ) from None
            await service.publish_run(
                request.app.state.run_sink,
                session_id,
                service.run_record(result, started_at, by, run_id, stdin=body.stdin),
            )
            return result

        if not streaming.wants_stream(request.headers.get("accept")):
            return await run(None)
        live = streaming.LiveRun()
        task = live.start(run(live))
        await live.admission(task)
        return StreamingResponse(live.lines(task), media_type=streaming.NDJSON)

    @router.delete(
        "/sessions/{sessionId}/runs",
        summary="Clear the session's shared output",
        status_code=204,
        responses=responses(401, 403, 404, 409, 422),
    )
    async def clear_runs(
        session_id: SessionId, request: Request, participant_token: ParticipantToken = None
    ) -> Response:
        """Remove every run from the session's shared output, for everyone. Needs an editor's
        `X-Participant-Token`; 403 `clear_output_disabled` when the owner turned clearing off (settings
        `allowClearOutput`); 409 `session_ended` when the owner ended the session. Runs still in progress land
        afterwards as usual."""
        await service.check_clearer(request.app.state.sessionmaker, session_id, participant_token)
        await check_open(request.app.state.collab, session_id)
        await request.app.state.run_sink.clear_runs(session_id)
        return Response(status_code=204)

    @router.post(
        "/sessions/{sessionId}/runs/{runId}/stop",
        summary="Stop a server run of the session",
        status_code=202,
        response_model=StopRunResult,
        responses=responses(401, 403, 404, 422),
        dependencies=requires("write", settings),
    )
    async def stop_run(
        session_id: SessionId,
        run_id: RunId,
        execution: Execution,
        request: Request,
        participant_token: ParticipantToken = None,
    ) -> StopRunResult:
        """Kill the run started with this `runId` at once; its answer and its shared record say `stopped`.
        The run id is what allows it (the starter chose it; it is shown only once the run has ended); with an
        `X-Participant-Token` header the token must be an editor's of the session (viewers cannot stop runs).
        A stop for a run not running (yet) is kept for a minute, so it still applies if it overtook its run."""
        # Its own short transaction, not the request's: SQLite takes its write lock at BEGIN.
        await service.check_stopper(request.app.state.sessionmaker, session_id, participant_token)
        return StopRunResult(run_id=run_id, running=execution.runs.stop(session_id, run_id))

    bind_body(execute, execute_request_model(settings))
    bind_body(execute_session, session_execute_request_model(settings))
    return router
