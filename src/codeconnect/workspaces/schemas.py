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


class _PolicyChecks(StrictRequest):
    """The checks of a policy's fields, for a workspace's and a session owner's alike."""

    @field_validator("max_participants", "retention_days", "history_days", mode="before", check_fields=False)
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # JSON Schema counts 3.0 as an integer, so lax parsing stays; but `true` is not a number of anything.
        if isinstance(value, bool):
            raise ValueError("Input should be a valid integer")
        return value

    @field_validator("languages", check_fields=False)
    @classmethod
    def _distinct(cls, value: list[LanguageName] | None) -> list[LanguageName] | None:
        # Kept in the canonical order, once each: a policy's JSON is compared and shown as-is.
        return None if value is None else [lang for lang in LANGUAGES if lang in value]


class Policy(_PolicyChecks):
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
    history_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Days of a session's history (playback) kept; older changes are folded into where its history "
        "starts. The live document is never affected.",
    )



class SessionPolicy(_PolicyChecks):
    """What a session's owner narrows its workspace's policy to (`PUT /v1/sessions/{sessionId}/policy`). A field
    left out (null) keeps what the workspace allows; a field may only narrow it, never widen it."""

    execution: Execution | None = Field(
        default=None, description="`none`, `browser` or `sandbox`, at most what the workspace allows."
    )
    languages: list[LanguageName] | None = Field(
        default=None, min_length=1, description="Languages the session may use: some of those the workspace allows."
    )
    max_participants: int | None = Field(
        default=None, ge=1, le=100_000, description="Participants the session may have: at most the workspace's."
    )



class EffectivePolicy(CamelModel):
    """What applies to a session: its workspace's policy within the operator's settings, narrowed by its owner."""

    execution: Execution = Field(description="Where code may run: `none`, `browser` or `sandbox`.")
    languages: list[LanguageName] | None = Field(description="The languages allowed (null: every language).")
    max_participants: int = Field(description="The most participants the session may have.")


class SessionPolicyView(CamelModel):
    """Body of `GET`/`PUT /v1/sessions/{sessionId}/policy`."""

    session: SessionPolicy = Field(description="What the owner narrowed (fields left null narrow nothing).")
    workspace: EffectivePolicy = Field(description="What the session's workspace allows, within the server's settings.")
    effective: EffectivePolicy = Field(description="What applies: the workspace's policy narrowed by the owner's.")


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
