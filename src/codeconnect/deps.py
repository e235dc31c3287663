"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from codeconnect.clients import rate_key
from codeconnect.collab.registry import RoomRegistry
from codeconnect.config import Settings
from codeconnect.db import get_db
from codeconnect.errors import SessionNotFound
from codeconnect.participants.service import PresenceView
from codeconnect.rates import RateKind, RateLimits
from codeconnect.security import hash_secret
from codeconnect.sessions.cards import SessionCards
from codeconnect.workspaces.service import bearer_token


# Coroutines, though they only read app state: FastAPI runs a plain function dependency in a worker thread,
# a thread hop per dependency per request.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_presence(request: Request) -> PresenceView:
    presence: PresenceView = request.app.state.presence
    return presence


async def get_live(request: Request) -> RoomRegistry:
    registry: RoomRegistry = request.app.state.collab
    return registry


async def get_cards(request: Request) -> SessionCards:
    cards: SessionCards = request.app.state.cards
    return cards


def client_key(request: Request) -> str:
    """The key the request's client is counted under. ``request.client`` is already the client's address, not a
    proxy's (see ``clients.py``: the app resolves it as the request enters)."""
    return rate_key(request.client.host if request.client else None)


def api_key_rate_key(request: Request) -> list[str]:
    """The API key a request presents, as a rate key (its hash: keys are never kept, not even in memory): a key
    handed to several machines still gets one budget. Unchecked here; a wrong key costs its sender the same."""
    key = bearer_token(request.headers)
    return [] if key is None else ["key:" + hash_secret(key)[:32]]


def rate_limited(kind: RateKind) -> Callable[[Request], Awaitable[None]]:
    """A route dependency counting the request in the client's ``kind`` rate (429 past it). Listed in the route's
    ``dependencies=``, it runs before the route's own, so every attempt counts and nothing is read or written for
    a refused one."""

    async def check_rate(request: Request) -> None:
        rates: RateLimits = request.app.state.rates
        await rates.check(kind, [client_key(request), *api_key_rate_key(request)])

    return check_rate


DB = Annotated[AsyncSession, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Presence = Annotated[PresenceView, Depends(get_presence)]
Live = Annotated[RoomRegistry, Depends(get_live)]
Cards = Annotated[SessionCards, Depends(get_cards)]
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


async def require_session(session_id: SessionId, live: Live) -> str:
    """The path's session id, checked to exist before the body is validated.

    An unknown session is a 404 whatever the body holds: the resource comes first, then what is sent to it.
    """
    if not await live.session_exists(session_id):
        raise SessionNotFound()
    return session_id


ExistingSessionId = Annotated[str, Depends(require_session)]
