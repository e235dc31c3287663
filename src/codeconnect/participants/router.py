"""HTTP routes for joining a session and listing its participants."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from codeconnect.collab.records import ParticipantCardRecord
from codeconnect.config import Settings
from codeconnect.deps import DB, Cards, ExistingSessionId, Live, Presence, SettingsDep, rate_limited
from codeconnect.errors import responses
from codeconnect.models import ParticipantRow
from codeconnect.participants import service
from codeconnect.participants.schemas import checked_join_model
from codeconnect.schemas import bind_body
from codeconnect.sessions.access import joining_invite, requires
from codeconnect.sessions.schemas import JoinRequest, Participant, ParticipantWithToken, RequestModels


def to_participant(row: ParticipantRow | ParticipantCardRecord, online: frozenset[str]) -> Participant:
    return Participant(
        id=row.id,
        name=row.name,
        color=row.color,
        role=row.role,
        joined_at=row.joined_at,
        online=row.id in online,
    )


def build_router(models: RequestModels, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1/sessions/{sessionId}/participants", tags=["participants"])

    @router.get(
        "",
        summary="List participants",
        response_model=list[Participant],
        responses=responses(401, 404, 422),
        dependencies=requires("read", settings),
    )
    async def list_participants(
        session_id: ExistingSessionId, db: DB, presence: Presence
    ) -> list[Participant]:
        """Everyone who joined the session, in joining order, with their online state."""
        online = await presence.online(session_id)
        return [to_participant(p, online) for p in await service.list_participants(db, session_id)]

    @router.post(
        "",
        status_code=201,
        summary="Join a session",
        response_model=ParticipantWithToken,
        responses=responses(400, 401, 404, 409, 413, 422, 429),
        dependencies=[Depends(rate_limited("joins")), *requires("join", settings)],
    )
    async def join(
        session_id: ExistingSessionId,
        body: JoinRequest,
        db: DB,
        settings: SettingsDep,
        presence: Presence,
        cards: Cards,
        live: Live,
        request: Request,
    ) -> ParticipantWithToken:
        """Add a participant. The response carries its secret `token` for the live connection, shown once.

        The name is normalised (NFC, trimmed); control characters, direction overrides and names with nothing
        visible are refused with 422. A name already in the session (compared ignoring case, width and
        invisible characters) comes back numbered: `Ada (2)`. Each client address may join
        `CODECONNECT_RATE_JOINS_PER_MINUTE` times a minute over all sessions (120 by default): past it, 429
        `rate_limited` with `Retry-After`. With `CODECONNECT_AUTH=api-key` joining needs the session's invite
        (`X-Invite`) or its `X-Owner-Key` (401 `session_credentials_required`)."""
        joined = await service.join(
            db, settings, cards, session_id, name=body.name, role=body.role, issued=live.issued,
            invite=joining_invite(request),
        )  # fmt: skip
        participant = to_participant(joined.row, await presence.online(session_id))
        return ParticipantWithToken(**participant.model_dump(), token=joined.token)

    bind_body(join, checked_join_model(models.join))
    return router
