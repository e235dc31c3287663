"""Request and response bodies of `/v1/execute`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from codeconnect.config import Settings
from codeconnect.languages import LANGUAGE_PATTERN, LanguageName, normalize_language
from codeconnect.schemas import CamelModel, StrictRequest, byte_limited_text
from codeconnect.workspaces.schemas import Execution


class ExecuteRequest(StrictRequest):
    """Body of `POST /v1/execute`."""

    code: str
    language: Annotated[str, Field(pattern=LANGUAGE_PATTERN, description="A session language or alias.")]
    stdin: str = ""

    @field_validator("language", mode="after")
    @classmethod
    def _norm(cls, v: str) -> str:
        return normalize_language(v) or v


# How a run ended, in the same words for every runner (browser and server) and in the shared run records.
RunOutcome = Literal["ok", "error", "stopped", "time_limit", "output_limit", "crashed"]


class ExecuteResult(CamelModel):
    """What a run produced."""

    stdout: str
    stderr: str
    exit_code: int | None = Field(description="Exit status; null when killed by a signal.")
    signal: int | None = Field(default=None, description="Signal that ended the program, if any.")
    signal_name: str | None = Field(
        default=None, description='Name of `signal` ("SIGSEGV") when the outcome is `crashed`.'
    )
    timed_out: bool
    output_truncated: bool
    outcome: RunOutcome = Field(
        description="How the run ended: ok (exit 0), error (other exit status or no start), stopped (by a person), "
        "time_limit, output_limit (64 KiB per stream), crashed (a signal, named in `signalName`)."
    )
    compile_output: str = Field(default="", description="Compiler messages (Java, C++, TypeScript).")
    duration_ms: int
    language: LanguageName


def execute_request_model(settings: Settings) -> type[ExecuteRequest]:
    from pydantic import create_model

    code: Any = byte_limited_text(
        settings.max_code_bytes, f"Program text, at most {settings.max_code_bytes} bytes of UTF-8 (more is 413)."
    )
    stdin: Any = byte_limited_text(
        settings.max_stdin_bytes, f"The program's input, at most {settings.max_stdin_bytes} bytes (more is 413)."
    )
    return create_model(
        "ExecuteRequest",
        __base__=ExecuteRequest,
        __doc__=ExecuteRequest.__doc__,
        code=(code, ...),
        stdin=(stdin, ""),
    )


class LanguageStatus(CamelModel):
    """Whether one language runs on this server, and which tools are missing if not."""

    language: LanguageName
    available: bool
    missing: list[str] = Field(description="Tools this host lacks for the language (empty when it has them).")
    reason: str | None = Field(
        default=None,
        description="Why it cannot run here (missing tools, or its start-up self-test failed, with the output); "
        "None when it can.",
    )


class LanguagesResponse(CamelModel):
    """Body of `GET /v1/execute/languages`."""

    enabled: bool = Field(description="False when the operator left CODECONNECT_EXECUTION=off.")
    languages: list[LanguageStatus]


class SessionSettings(CamelModel):
    """Per-session switches the owner controls."""

    execution_enabled: bool = Field(
        description="Whether `POST /v1/sessions/{id}/execute` may run this session."
    )
    allow_clear_output: bool = Field(
        default=True,
        description="Whether editors may clear the shared run output (`DELETE /v1/sessions/{id}/runs`, the "
        "page's Clear).",
    )
    execution: Execution = Field(
        default="sandbox",
        description="Where the session's workspace policy, within what the server allows, lets code run: "
        "`none` (nowhere: the page's Run is off), `browser` (in participants' browsers only) or `sandbox` (also "
        "on the server).",
    )
    languages: list[LanguageName] | None = Field(
        default=None,
        description="The languages the session's workspace policy allows (null: every language); the page offers "
        "only these.",
    )


class SessionSettingsUpdate(StrictRequest):
    """Body of `PUT /v1/sessions/{sessionId}/settings` (needs the `X-Owner-Key` header): the switches to change,
    at least one; those left out keep their value."""

    # The schema says what the validator says: booleans only (no null) and at least one of them.
    model_config = ConfigDict(**StrictRequest.model_config, json_schema_extra={"minProperties": 1})

    execution_enabled: bool | SkipJsonSchema[None] = None
    allow_clear_output: bool | SkipJsonSchema[None] = None

    @field_validator("execution_enabled", "allow_clear_output", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # None stands for "left out"; a JSON null is not a setting.
        if value is None:
            raise ValueError("must be true or false")
        return value

    @model_validator(mode="after")
    def _something(self) -> SessionSettingsUpdate:
        if self.execution_enabled is None and self.allow_clear_output is None:
            raise ValueError("set executionEnabled, allowClearOutput or both")
        return self


# A run id is chosen by whoever starts the run and is its only handle until it ends: long enough to be unguessable.
RUN_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


class SessionExecuteRequest(StrictRequest):
    """Body of `POST /v1/sessions/{sessionId}/execute`: the session's code and language are used."""

    stdin: str = ""
    run_id: str | None = Field(
        default=None,
        pattern=RUN_ID_PATTERN,
        description="An id the caller chooses for this run (16-64 of A-Z a-z 0-9 _ -): `POST "
        "/v1/sessions/{sessionId}/runs/{runId}/stop` stops it, and the shared run record carries it.",
    )


class StopRunResult(CamelModel):
    """Body of the 202 answer of `POST /v1/sessions/{sessionId}/runs/{runId}/stop`."""

    run_id: str
    running: bool = Field(
        description="True: the run was running and is being killed. False: no such run is running; the stop is "
        "kept for a minute and applies if a run with this id starts (a stop can overtake its run)."
    )


def session_execute_request_model(settings: Settings) -> type[SessionExecuteRequest]:
    from pydantic import create_model

    stdin: Any = byte_limited_text(
        settings.max_stdin_bytes, f"The program's input, at most {settings.max_stdin_bytes} bytes (more is 413)."
    )
    return create_model(
        "SessionExecuteRequest",
        __base__=SessionExecuteRequest,
        __doc__=SessionExecuteRequest.__doc__,
        stdin=(stdin, ""),
    )
