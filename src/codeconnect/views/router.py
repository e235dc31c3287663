"""HTTP routes of read-only links: `/v1/views/{viewerId}`, the session as a viewer sees it, and joining as one.

Every answer here is built field by field from what a viewer may see, never copied from the session's answer, so
a field added to sessions later does not leak through a read-only link by default.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from codeconnect.collab.registry import RoomRegistry
from codeconnect.deps import DB, Cards, Live, Presence, SettingsDep, rate_limited
from codeconnect.errors import responses
from codeconnect.models import SessionRow
from codeconnect.participants.router import to_participant
from codeconnect.participants.service import PresenceView
from codeconnect.schemas import bind_body
from codeconnect.sessions import service as sessions
from codeconnect.sessions.router import stored_view, to_session
from codeconnect.sessions.schemas import JoinRequest, Participant, ParticipantWithToken, RequestModels, Session
from codeconnect.views import service
from codeconnect.views.schemas import SessionView, viewer_join_model

ViewerId = Annotated[
    str,
    Path(
        alias="viewerId",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The viewer id from the read-only link `/v/{viewerId}`.",
    ),
]


async def require_view(viewer_id: ViewerId, db: DB) -> str:
    """The session the path's viewer id opens, found before the body is validated (an unknown link is a 404
    whatever the body holds). Only the server sees the session id; no answer of this router carries it."""
    return await service.session_of(db, viewer_id)


ViewedSessionId = Annotated[str, Depends(require_view)]


def to_view(row: SessionRow, presence: PresenceView, live: RoomRegistry) -> SessionView:
    return _strip(to_session(row, presence, live))  # live text, language and title while the room is loaded


def _strip(session: Session) -> SessionView:
    """What a read-only link shows of a session: everything but its ids."""
    return SessionView(
        title=session.title,
        language=session.language,
        code=session.code,
        created_at=session.created_at,
        updated_at=session.updated_at,
        participants=session.participants,
        ended_at=session.ended_at,
    )


def build_router(models: RequestModels) -> APIRouter:
    router = APIRouter(prefix="/v1/views/{viewerId}", tags=["read-only links"])

    @router.get("", summary="Watch a session", response_model=SessionView, responses=responses(404, 422))
    async def get_view(session_id: ViewedSessionId, db: DB, presence: Presence, live: Live) -> SessionView:
        """The session as its read-only link shows it: code, language, title and people, without the session id."""
        row = await sessions.get_session(db, session_id)
        if live.peek(session_id) is not None:
            return to_view(row, presence, live)
        await sessions.end_read_transaction(db)
        # As for the session's own GET: the stored text when it is known to be exact, else read through the
        # document, which the stored mirror can trail.
        stored = await live.stored_session(session_id)
        if stored is not None and stored.exact:
            return _strip(stored_view(session_id, stored, await presence.online(session_id)))
        async with live.use(session_id):
            return to_view(row, presence, live)

    @router.get(
        "/participants",
        summary="List participants (read-only link)",
        response_model=list[Participant],
        responses=responses(404, 422),
    )
    async def list_participants(session_id: ViewedSessionId, db: DB, presence: Presence) -> list[Participant]:
        """Everyone who joined, in joining order: names, colours, roles and online state."""
        online = await presence.online(session_id)
        return [to_participant(p, online) for p in (await sessions.get_session(db, session_id)).participants]

    @router.post(
        "/participants",
        status_code=201,
        summary="Join as a viewer",
        response_model=ParticipantWithToken,
        responses=responses(400, 404, 409, 413, 422, 429),
        dependencies=[Depends(rate_limited("joins"))],
    )
    async def join(
        session_id: ViewedSessionId,
        body: JoinRequest,
        db: DB,
        settings: SettingsDep,
        presence: Presence,
        cards: Cards,
        live: Live,
    ) -> ParticipantWithToken:
        """Add a viewer. The response carries its secret `token` for `/v1/collab/v/{viewerId}?token=...`, shown
        once. Names follow the same rules as joining by session id; `role`, if sent, must be `viewer`. Counts in
        the same per-address rate as joining by session id (429 `rate_limited` past it)."""
        joined = await service.join_session(db, settings, cards, session_id, name=body.name, issued=live.issued)
        participant = to_participant(joined.row, await presence.online(session_id))
        return ParticipantWithToken(**participant.model_dump(), token=joined.token)

    bind_body(join, viewer_join_model(models.join))
    return router
