"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from codeconnect.config import Settings
from codeconnect.db import get_db
from codeconnect.participants.service import PresenceView


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_presence(request: Request) -> PresenceView:
    presence: PresenceView = request.app.state.presence
    return presence


DB = Annotated[AsyncSession, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Presence = Annotated[PresenceView, Depends(get_presence)]
SessionId = Annotated[
    str,
    Path(
        alias="sessionId",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The session id from its link.",
    ),
]
