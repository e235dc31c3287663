"""HTTP routes of the session API: thin wrappers over ``sessions.service``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from codeconnect.deps import DB, ExistingSessionId, Presence, SettingsDep
from codeconnect.errors import responses
from codeconnect.models import SessionRow
from codeconnect.participants.router import to_participant
from codeconnect.schemas import bind_body
from codeconnect.sessions import service
from codeconnect.sessions.schemas import (
    CreatedSession,
    CreateSessionRequest,
    RequestModels,
    Session,
    SetLanguageRequest,
    UpdateSessionRequest,
)
from codeconnect.participants.service import PresenceView


def to_session(row: SessionRow, presence: PresenceView) -> Session:
    online = presence.online_participants(row.id)
    return Session(
        id=row.id,
        title=row.title,
        language=row.language,  # type: ignore[arg-type]
        code=row.code,
        created_at=row.created_at,
        updated_at=row.updated_at,
        participants=[to_participant(p, online) for p in row.participants],
    )


def build_router(models: RequestModels) -> APIRouter:
    router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

    @router.post(
        "",
        status_code=201,
        summary="Create a session",
        response_model=CreatedSession,
        responses=responses(400, 413, 422),
    )
    async def create_session(
        body: CreateSessionRequest, db: DB, settings: SettingsDep, presence: Presence, response: Response
    ) -> CreatedSession:
        """Create a code pad. The response carries `ownerKey`, shown only this once."""
        created = await service.create_session(
            db, settings, title=body.title, language=body.language, code=body.code
        )
        response.headers["Location"] = f"/v1/sessions/{created.row.id}"
        session = to_session(created.row, presence)
        return CreatedSession(**session.model_dump(), owner_key=created.owner_key)

    @router.get("/{sessionId}", summary="Get a session", response_model=Session, responses=responses(404, 422))
    async def get_session(session_id: ExistingSessionId, db: DB, presence: Presence) -> Session:
        """The session with its current code, language and participants."""
        return to_session(await service.get_session(db, session_id), presence)

    @router.put(
        "/{sessionId}",
        summary="Replace the code (and title)",
        response_model=Session,
        responses=responses(400, 404, 413, 422),
    )
    async def update_session(
        session_id: ExistingSessionId, body: UpdateSessionRequest, db: DB, settings: SettingsDep, presence: Presence
    ) -> Session:
        """Set the session's code, and its title when given."""
        row = await service.update_session(db, settings, session_id, code=body.code, title=body.title)
        return to_session(row, presence)

    @router.put(
        "/{sessionId}/language",
        summary="Switch the language",
        response_model=Session,
        responses=responses(400, 404, 413, 422),
    )
    async def set_language(
        session_id: ExistingSessionId, body: SetLanguageRequest, db: DB, presence: Presence
    ) -> Session:
        """Switch the session's language for everyone."""
        return to_session(await service.set_language(db, session_id, body.language), presence)

    bind_body(create_session, models.create_session)
    bind_body(update_session, models.update_session)
    bind_body(set_language, models.set_language)
    return router
