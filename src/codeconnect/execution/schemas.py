"""Request and response bodies of `/v1/execute`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from codeconnect.config import Settings
from codeconnect.languages import LANGUAGE_PATTERN, LanguageName, normalize_language
from codeconnect.schemas import NO_NUL, CamelModel, StrictRequest


class ExecuteRequest(StrictRequest):
    """Body of `POST /v1/execute`."""

    code: str
    language: Annotated[str, Field(pattern=LANGUAGE_PATTERN, description="A session language or alias.")]
    stdin: str = ""

    @field_validator("language", mode="after")
    @classmethod
    def _norm(cls, v: str) -> str:
        return normalize_language(v) or v


class ExecuteResult(CamelModel):
    """What a run produced."""

    stdout: str
    stderr: str
    exit_code: int | None = Field(description="Exit status; None when killed by a signal.")
    signal: int | None = Field(default=None, description="Signal that ended the program, if any.")
    timed_out: bool
    output_truncated: bool
    compile_output: str = Field(default="", description="Compiler messages (Java, C++, TypeScript).")
    duration_ms: int
    language: LanguageName


def execute_request_model(settings: Settings) -> type[ExecuteRequest]:
    from pydantic import create_model

    code: Any = Annotated[str, Field(max_length=settings.max_code_bytes, pattern=NO_NUL)]
    stdin: Any = Annotated[str, Field(max_length=settings.max_stdin_bytes, pattern=NO_NUL)]
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


class LanguagesResponse(CamelModel):
    """Body of `GET /v1/execute/languages`."""

    enabled: bool = Field(description="False when the operator left CODECONNECT_EXECUTION=off.")
    languages: list[LanguageStatus]


class SessionSettings(CamelModel):
    """Per-session switches the owner controls."""

    execution_enabled: bool = Field(
        description="Whether `POST /v1/sessions/{id}/execute` may run this session."
    )


class SessionSettingsUpdate(StrictRequest):
    """Body of `PUT /v1/sessions/{sessionId}/settings` (needs the `X-Owner-Key` header)."""

    execution_enabled: bool


class SessionExecuteRequest(StrictRequest):
    """Body of `POST /v1/sessions/{sessionId}/execute`: the session's code and language are used."""

    stdin: str = ""


def session_execute_request_model(settings: Settings) -> type[SessionExecuteRequest]:
    from pydantic import create_model

    stdin: Any = Annotated[str, Field(max_length=settings.max_stdin_bytes, pattern=NO_NUL)]
    return create_model(
        "SessionExecuteRequest",
        __base__=SessionExecuteRequest,
        __doc__=SessionExecuteRequest.__doc__,
        stdin=(stdin, ""),
    )
