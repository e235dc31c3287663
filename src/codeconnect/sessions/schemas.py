"""Request and response bodies of the session API.

Request models are built from the settings so that every limit appears in the OpenAPI schema exactly as it is
enforced (max lengths, enums, patterns).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, create_model, field_validator

from codeconnect.config import Settings
from codeconnect.languages import LANGUAGE_PATTERN, LanguageName, normalize_language
from codeconnect.participants.names import name_pattern
from codeconnect.schemas import CamelModel, StrictRequest, byte_limited_text
from codeconnect.titles import title_type

Role = Literal["editor", "viewer"]


class Participant(CamelModel):
    """Someone who joined a session."""

    id: str = Field(description="Participant id (not a secret).")
    name: str
    color: str = Field(description="CSS hex colour, distinct within the session.", examples=["#d1495b"])
    role: Role = Field(description="`editor` may change the document; `viewer` may only watch.")
    joined_at: datetime
    online: bool = Field(description="True while one of this participant's live connections is open.")


class ParticipantWithToken(Participant):
    """The participant just created, with its secret live-connection token (shown only once)."""

    token: str = Field(description="Secret token for `/v1/collab/{sessionId}?token=...`. Shown only here.")


class Session(CamelModel):
    """A collaborative code pad."""

    id: str = Field(description="Unguessable, URL-safe id: the link is the invitation.")
    title: str
    language: LanguageName
    code: str
    created_at: datetime
    updated_at: datetime
    participants: list[Participant]
    viewer_id: str = Field(
        description="The read-only link's id (128 random bits, unrelated to `id`): it opens the session as a viewer "
        "and leads to nothing else. Only answers that already need the session id carry it."
    )
    view_url: str = Field(description="The read-only page, relative to this server: `/v/{viewerId}`.")
    ended_at: datetime | None = Field(
        default=None,
        description="When the owner ended the session (null: open). While ended, nobody can change the code, "
        "title, language or output (409 `session_ended`; live updates are dropped); reads go on.",
    )


class CreatedSession(Session):
    """The session just created, with the owner's secret key (shown only once)."""

    owner_key: str = Field(description="Secret for owner-only actions (send as `X-Owner-Key`). Shown only here.")
    editor_invite: str | None = Field(
        default=None,
        description="Where the session id alone grants nothing (`CODECONNECT_AUTH=api-key`): the invite that lets "
        "people join and read it (send as `X-Invite`; the page's link carries it as `#invite=`). Shown only here "
        "and when rotated; null on servers where the session id is the invitation.",
    )


class RotatedInvite(CamelModel):
    """A session's new invite; the previous one stopped working."""

    role: Literal["editor", "viewer"]
    editor_invite: str | None = Field(description="The new editor invite (role `editor`). Shown only here.")
    viewer_id: str = Field(description="The session's read-only link id (new when role is `viewer`).")
    view_url: str


class RotateInviteRequest(StrictRequest):
    role: Literal["editor", "viewer"] = Field(
        description="`editor`: a new editor invite (`api-key` mode); `viewer`: a new read-only link."
    )


class CreatedOwnerLink(CamelModel):
    """A one-time owner link: whoever opens it becomes the session's owner (shown only once)."""

    code: str = Field(
        description="The link's secret code (`own_` and 256 random bits): claimed once with `POST "
        ".../owner-claims`, within `expiresAt`. Shown only here."
    )
    expires_at: datetime = Field(description="When the code stops working if it is not claimed before.")
    url: str = Field(
        description="The session's page that claims the code, relative to this server: `/s/{sessionId}#owner=<code>` "
        "(in the fragment, which browsers never send to a server)."
    )


class OwnerClaimRequest(StrictRequest):
    """Body of `POST /v1/sessions/{sessionId}/owner-claims`."""

    code: str = Field(min_length=1, max_length=128, description="The owner link's code (after `#owner=`).")


class OwnerClaim(CamelModel):
    """The session's owner key, handed over by an owner link (which is now used up)."""

    owner_key: str = Field(description="The session's owner key (send as `X-Owner-Key`). Shown only here.")


def _language(value: str) -> str:
    return normalize_language(value) or value


_LANG_DOC = "One of python, javascript, typescript, java, cpp (any case; aliases py, js, ts, c++)."
Lang = Annotated[str, Field(pattern=LANGUAGE_PATTERN, description=_LANG_DOC)]


def _title(max_length: int) -> Any:
    return title_type(max_length)  # shared with the live room, which ignores titles REST would refuse


def _code(max_bytes: int) -> Any:
    return byte_limited_text(max_bytes, f"Program text, at most {max_bytes} bytes of UTF-8 (more is 413).")


def _name(max_length: int) -> Any:
    return Annotated[
        str,
        Field(
            min_length=1,
            max_length=max_length,
            # The name rules (participants/names.py) as a pattern: the schema says which names are refused.
            pattern=name_pattern(),
            description="Display name; surrounding spaces are trimmed. No control or direction characters, and at "
            "least one visible character; a name already in the session gets a number, e.g. `Ada (2)`.",
        ),
    ]


class CreateSessionRequest(StrictRequest):
    """Body of `POST /v1/sessions`; every field is optional."""

    title: str = "Untitled session"
    language: Lang = "python"
    code: str | None = Field(default=None, description="Defaults to a starter program for the language.")

    @field_validator("language", mode="after")
    @classmethod
    def _norm(cls, v: str) -> str:
        return _language(v)


class UpdateSessionRequest(StrictRequest):
    """Body of `PUT /v1/sessions/{sessionId}`."""

    code: str
    title: str | None = None


class SetLanguageRequest(StrictRequest):
    """Body of `PUT /v1/sessions/{sessionId}/language`."""

    language: Lang

    @field_validator("language", mode="after")
    @classmethod
    def _norm(cls, v: str) -> str:
        return _language(v)


class JoinRequest(StrictRequest):
    """Body of `POST /v1/sessions/{sessionId}/participants`."""

    name: str
    role: Role = Field(default="editor", description="`viewer` joins read-only.")

    @field_validator("name", mode="after")
    @classmethod
    def _trim(cls, v: str) -> str:
        return v.strip()


@dataclass(frozen=True)
class RequestModels:
    """The request bodies with the limits of one deployment written into their schema."""

    create_session: type[CreateSessionRequest]
    update_session: type[UpdateSessionRequest]
    set_language: type[SetLanguageRequest]
    join: type[JoinRequest]


def build_request_models(settings: Settings) -> RequestModels:
    title, code = _title(settings.max_title_length), _code(settings.max_code_bytes)
    return RequestModels(
        create_session=create_model(
            "CreateSessionRequest",
            __base__=CreateSessionRequest,
            __doc__=CreateSessionRequest.__doc__,
            title=(title, "Untitled session"),
            code=(code | None, Field(default=None, description="Defaults to a starter program.")),
        ),
        update_session=create_model(
            "UpdateSessionRequest",
            __base__=UpdateSessionRequest,
            __doc__=UpdateSessionRequest.__doc__,
            code=(code, ...),
            title=(title | None, None),
        ),
        set_language=SetLanguageRequest,
        join=create_model(
            "JoinRequest",
            __base__=JoinRequest,
            __doc__=JoinRequest.__doc__,
            name=(_name(settings.max_name_length), ...),
        ),
    )
