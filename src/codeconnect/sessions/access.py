"""Who may read, write and join a session where its id alone grants nothing (`CODECONNECT_AUTH=api-key`).

In `open` mode the session id is the editor invitation (the seed's design) and these checks cost nothing. In
`api-key` mode a request about a session also needs one of:

- `X-Owner-Key`: the owner, who may do everything;
- `X-Participant-Token`: a participant of this session: reads, and writes when an editor;
- `X-Invite`: the session's editor invite: reads and joining (what a person holding the link needs before they
  are a participant).

The live endpoint already needs a participant token, and the read-only link (`/v/{viewerId}`) is the viewer
invite: neither changes. All three are secrets compared in constant time (hashes of them are stored).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.config import Settings
from codeconnect.deps import SessionId
from codeconnect.errors import SessionNotFound, Unauthorized
from codeconnect.models import ParticipantRow, SessionRow
from codeconnect.security import hash_secret, secret_matches

Need = Literal["read", "write", "join"]

_WHAT = {
    "read": "Reading this session needs `X-Invite`, `X-Participant-Token` or `X-Owner-Key`.",
    "write": "Changing this session needs an editor's `X-Participant-Token` or the `X-Owner-Key`.",
    "join": "Joining this session needs its invite (`X-Invite`) or the `X-Owner-Key`.",
}


Granted = Literal["owner", "participant", "invite"]


async def allowed(db: AsyncSession, session_id: str, need: Need, headers: Any) -> Granted | None:
    """Which credential in ``headers`` allows ``need`` on ``session_id``, if any (404 for an unknown session)."""
    row = (
        await db.execute(
            select(SessionRow.owner_key_hash, SessionRow.editor_invite_hash).where(SessionRow.id == session_id)
        )
    ).first()
    if row is None:
        raise SessionNotFound()
    owner_key = headers.get("x-owner-key")
    if owner_key and secret_matches(owner_key, row.owner_key_hash):
        return "owner"
    token = headers.get("x-participant-token")
    if token and need != "join":
        found = (
            await db.execute(
                select(ParticipantRow.role, ParticipantRow.token_hash).where(
                    ParticipantRow.token_hash == hash_secret(token), ParticipantRow.session_id == session_id
                )
            )
        ).first()
        if found is not None and secret_matches(token, found.token_hash):
            return "participant" if need == "read" or found.role == "editor" else None
    invite = headers.get("x-invite")
    if invite and need != "write" and row.editor_invite_hash is not None:
        return "invite" if secret_matches(invite, row.editor_invite_hash) else None
    return None


async def check(
    maker: async_sessionmaker[AsyncSession], settings: Settings, session_id: str, need: Need, headers: Any
) -> Granted | None:
    """The credential that allows ``need`` (None in `open` mode, where none is needed); 401 without one."""
    if settings.auth == "open":
        return None
    # A short read of its own, ended before the route's own unit of work begins (SQLite has one connection).
    async with maker() as db:
        granted = await allowed(db, session_id, need, headers)
        await db.rollback()
    if granted is None:
        raise Unauthorized(_WHAT[need], code="session_credentials_required")
    return granted


def joining_invite(request: Request) -> str | None:
    """The invite a join was let in by (`api-key` mode): checked again under the join's lock on the session, so
    an invite rotated or revoked between the two is refused."""
    if getattr(request.state, "session_access", None) != "invite":
        return None
    invite: str | None = request.headers.get("x-invite")
    return invite


def requires(need: Need, settings: Settings) -> list[Any]:
    """A route's ``dependencies=`` for ``need`` on the path's session: one check in `api-key` mode, none in
    `open` mode, where the session id alone grants everything. None rather than one that returns at once:
    FastAPI solves every dependency of a route on each request, whatever it does (bench/README.md, "REST")."""
    if settings.auth == "open":
        return []

    async def check_access(request: Request, session_id: SessionId) -> None:
        granted = await check(request.app.state.sessionmaker, settings, session_id, need, request.headers)
        request.state.session_access = granted

    return [Depends(check_access)]
