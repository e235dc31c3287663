"""Bodies of the admin API, and the policy a workspace applies to its sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from codeconnect.languages import LANGUAGES, LanguageName
from codeconnect.schemas import CamelModel, StrictRequest

Execution = Literal["none", "browser", "sandbox"]
# Ordered from least to most: an owner or workspace may only move down this list, never up.
EXECUTION_ORDER: tuple[Execution, ...] = ("none", "browser", "sandbox")

WorkspaceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Letters, digits, `.`, `_` and `-`; unique.",
        examples=["interviews"],
    ),
]
Label = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]


class Policy(StrictRequest):
    """What a workspace allows its sessions. A field left out (null) allows what the operator's settings allow."""

    execution: Execution | None = Field(
        default=None,
        description="`none`: nothing runs on the server, and the page's Run is off; `browser`: only in "
        "participants' browsers; `sandbox`: also on the server where the operator turned the sandbox on. Never "
        "more than the operator allows.",
    )
    languages: list[LanguageName] | None = Field(
        default=None, min_length=1, description="Languages sessions may use (create, switch)."
    )
    max_participants: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Participants a session may have (at most the server's limit).",
    )
    retention_days: int | None = Field(
        default=None, ge=1, le=36_500, description="Days a session may stay idle before it is purged."
    )

    @field_validator("max_participants", "retention_days", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # JSON Schema counts 3.0 as an integer, so lax parsing stays; but `true` is not a number of anything.
        if isinstance(value, bool):
            raise ValueError("Input should be a valid integer")
        return value

    @field_validator("languages")
    @classmethod
    def _distinct(cls, value: list[LanguageName] | None) -> list[LanguageName] | None:
        # Kept in the canonical order, once each: the policy's JSON is compared and shown as-is.
        return None if value is None else [lang for lang in LANGUAGES if lang in value]


class Workspace(CamelModel):
    """A tenant: its sessions follow its policy; its API keys create sessions in it."""

    id: str = Field(description="Workspace id (not a secret); `default` holds sessions made without a key.")
    name: str
    policy: Policy
    created_at: datetime
    active_keys: int = Field(description="API keys not revoked.")


class CreateWorkspaceRequest(StrictRequest):
    name: WorkspaceName
    policy: Policy = Field(default_factory=Policy)


class ApiKey(CamelModel):
    """An API key as listed: never the key itself."""

    id: str = Field(description="Key id (not a secret), used to revoke it.")
    workspace_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None = Field(description="Last session created with it (to the minute).")
    revoked_at: datetime | None


class CreatedApiKey(ApiKey):
    key: str = Field(description="The key, for `Authorization: Bearer <key>`. Shown only this once.")


class CreateApiKeyRequest(StrictRequest):
    label: Label = "key"
