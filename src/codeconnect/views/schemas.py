"""What a read-only link answers: the session as a viewer sees it, and the viewer's join request."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, create_model

from codeconnect.languages import LanguageName
from codeconnect.participants.schemas import checked_join_model
from codeconnect.schemas import CamelModel
from codeconnect.sessions.schemas import JoinRequest, Participant

ViewerRole = Literal["viewer"]


class SessionView(CamelModel):
    """A session as its read-only link shows it: no session id (the editor invitation), no viewer id, no token."""

    title: str
    language: LanguageName
    code: str
    created_at: datetime
    updated_at: datetime
    participants: list[Participant] = Field(description="Everyone who joined: names, colours, roles, online state.")
    ended_at: datetime | None = Field(default=None, description="When the owner ended the session (null: open).")


def viewer_join_model(join: type[JoinRequest]) -> type[JoinRequest]:
    """The session's join body (this deployment's name limit, the name rules) with `role` narrowed to `viewer`:
    asking for `editor` through a read-only link is refused (422), not quietly turned into a viewer."""
    narrowed = create_model(
        "ViewerJoinRequest",
        __base__=join,
        __doc__="Body of `POST /v1/views/{viewerId}/participants`: a name; the participant is always a viewer.",
        role=(ViewerRole, Field(default="viewer", description="Always `viewer`; may be left out.")),
    )
    return checked_join_model(narrowed)
