"""HTTP routes of the session API: thin wrappers over ``sessions.service``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from codeconnect.collab.records import SessionCardRecord, StoredSession
from codeconnect.collab.registry import RoomRegistry
from codeconnect.collab.room import Room
from codeconnect.config import Settings
from codeconnect.deps import (
    DB,
    Cards,
    ExistingSessionId,
    Live,
    Presence,
    SessionId,
    SettingsDep,
    rate_limited,
)  # fmt: skip
from codeconnect.errors import SessionNotFound, responses
from codeconnect.models import SessionRow
from codeconnect.participants.router import to_participant
from codeconnect.participants.service import PresenceView
from codeconnect.schemas import bind_body
from codeconnect.sessions import service
from codeconnect.sessions.access import requires
from codeconnect.sessions.cards import SessionCard, SessionCards
from codeconnect.sessions.deletion import delete_owned
from codeconnect.sessions.owner import OwnerKey
from codeconnect.sessions.schemas import (
    CreatedSession,
    CreateSessionRequest,
    RequestModels,
    RotatedInvite,
    RotateInviteRequest,
    Session,
    SetLanguageRequest,
    UpdateSessionRequest,
)
from codeconnect.workspaces.service import creating_workspace


def to_session(row: SessionRow, presence: PresenceView, live: RoomRegistry | None = None) -> Session:
    """The API view of a session; while its room is loaded, code, language and title come from the live
    document (the row is only its mirror)."""
    online = presence.online_participants(row.id)
    room = live.peek(row.id) if live is not None else None
    code, language, title, updated_at = row.code, row.language, row.title, row.updated_at
    ended_at = row.ended_at
    if room is not None:
        (code, language, title), ended_at = room.read_view(), room.ended_at
        if room.updated_at is not None and room.updated_at > updated_at:
            updated_at = room.updated_at
    return Session(
        id=row.id,
        title=title,
        language=language,
        code=code,
        created_at=row.created_at,
        updated_at=updated_at,
        participants=[to_participant(p, online) for p in row.participants],
        viewer_id=row.viewer_id,
        view_url=f"/v/{row.viewer_id}",
        ended_at=ended_at,
    )


def card_view(card: SessionCard, room: Room, presence: PresenceView) -> Session:
    """The API view of a loaded session from its card and its live document."""
    updated_at = card.updated_at
    if room.updated_at is not None and room.updated_at > updated_at:
        updated_at = room.updated_at
    return _view(
        card.id, card, room.read_view(), updated_at,
        presence.online_participants(card.id), room.ended_at,
    )  # fmt: skip


def stored_view(session_id: str, stored: StoredSession, online: frozenset[str]) -> Session:
    """The API view of a session nobody has open here, from its row (``stored.exact``: the document's text)."""
    card = stored.card
    text = (stored.code, stored.language, stored.title)
    return _view(session_id, card, text, card.updated_at, online, card.ended_at)


def _view(
    session_id: str,
    card: SessionCard | SessionCardRecord,
    text: tuple[str, str, str],
    updated_at: datetime,
    online: frozenset[str],
    ended_at: datetime | None,
) -> Session:
    code, language, title = text
    return Session(
        id=session_id,
        title=title,
        language=language,
        code=code,
        created_at=card.created_at,
        updated_at=updated_at,
        participants=[to_participant(p, online) for p in card.participants],
        viewer_id=card.viewer_id,
        view_url=f"/v/{card.viewer_id}",
        ended_at=ended_at,
    )


api_key_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="A workspace's API key, as `Authorization: Bearer <key>`: needed to create a session when the "
    "server runs with `CODECONNECT_AUTH=api-key`; optional otherwise (the session goes to the key's workspace).",
)
ApiKeyCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(api_key_bearer)]


def build_router(models: RequestModels, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
    # OpenAPI's way to say "a key, or nothing": an empty requirement beside the key's (the list is appended to
    # what the security dependency declares).
    key_optional: dict[str, Any] | None = {"security": [{}]} if settings.auth == "open" else None

    @router.post(
        "",
        status_code=201,
        summary="Create a session",
        response_model=CreatedSession,
        responses=responses(400, 401, 403, 413, 422, 429),
        openapi_extra=key_optional,
        dependencies=[Depends(rate_limited("sessions"))],
    )
    async def create_session(
        body: CreateSessionRequest,
        settings: SettingsDep,
        live: Live,
        response: Response,
        request: Request,
        credentials: ApiKeyCredentials,
    ) -> CreatedSession:
        """Create a code pad, in the workspace of the API key sent (or the default workspace where the server
        lets anyone create sessions). The response carries `ownerKey`, shown only this once. Each client address
        may create `CODECONNECT_RATE_SESSIONS_PER_MINUTE` sessions a minute (30 by default): past it, 429
        `rate_limited` with `Retry-After`."""
        key = None if credentials is None else credentials.credentials
        workspace = await creating_workspace(request.app.state.sessionmaker, settings, key)
        policy = await request.app.state.policies.get(workspace)
        created = await service.create_session(
            live, settings, workspace, policy, title=body.title, language=body.language, code=body.code
        )
        new = created.session
        response.headers["Location"] = f"/v1/sessions/{new.id}"
        return CreatedSession(
            id=new.id,
            title=new.title,
            language=new.language,
            code=new.code,
            created_at=new.created_at,
            updated_at=new.created_at,
            participants=[],
            viewer_id=new.viewer_id,
            view_url=f"/v/{new.viewer_id}",
            owner_key=created.owner_key,
            editor_invite=created.editor_invite,
        )

    @router.get(
        "/{sessionId}",
        summary="Get a session",
        response_model=Session,
        responses=responses(401, 404, 422),
        dependencies=requires("read", settings),
    )
    async def get_session(request: Request, session_id: SessionId) -> Session:
        """The session with its current code, language and participants. With `CODECONNECT_AUTH=api-key` it
        needs `X-Invite`, `X-Participant-Token` or `X-Owner-Key` (401 `session_credentials_required`)."""
        # The API's most frequent request takes its services from the app's state rather than as dependencies:
        # FastAPI solves each dependency on every request, which cost this read a quarter of its time.
        state = request.app.state
        live: RoomRegistry = state.collab
        presence: PresenceView = state.presence
        cards: SessionCards = state.cards
        room = live.peek(session_id)
        card = None if room is None else cards.get(session_id, room)
        if room is not None and card is not None:
            return card_view(card, room, presence)  # no database round trip
        if room is None:
            stored = await live.stored_session(session_id)
            if stored is None:
                raise SessionNotFound()
            if stored.exact:  # the row holds the document's text: no room to build
                return stored_view(session_id, stored, await presence.online(session_id))
        # The stored mirror can trail the update log (it is refreshed periodically, and a crash skips the last
        # refresh): read through the document itself, as a client connecting now would see it. The row is read
        # once the room is loaded, so its last change time is exact up to this loading of the room.
        async with live.use(session_id) as room:
            epoch = cards.epoch()
            record = await live.session_card(session_id)
            if record is None:  # deleted while its room was being loaded
                raise SessionNotFound()
            card = SessionCard.of(session_id, record, room)
            cards.keep(card, epoch)
            return card_view(card, room, presence)

    @router.put(
        "/{sessionId}",
        summary="Replace the code (and title)",
        response_model=Session,
        responses=responses(400, 401, 404, 409, 413, 422),
        dependencies=requires("write", settings),
    )
    async def update_session(
        session_id: ExistingSessionId,
        body: UpdateSessionRequest,
        db: DB,
        settings: SettingsDep,
        presence: Presence,
        live: Live,
    ) -> Session:
        """Set the session's code, and its title when given. Connected clients see the change as one minimal
        edit; the response is sent once the change is durable. 409 `session_ended` while the owner has ended
        the session."""
        row = await service.update_session(db, settings, live, session_id, code=body.code, title=body.title)
        return to_session(row, presence, live)

    @router.put(
        "/{sessionId}/language",
        summary="Switch the language",
        response_model=Session,
        responses=responses(400, 401, 403, 404, 409, 413, 422),
        dependencies=requires("write", settings),
    )
    async def set_language(
        session_id: ExistingSessionId, body: SetLanguageRequest, db: DB, presence: Presence, live: Live
    ) -> Session:
        """Switch the session's language for everyone (connected clients see it at once). 409 `session_ended`
        while the owner has ended the session."""
        return to_session(await service.set_language(db, live, session_id, body.language), presence, live)

    @router.post(
        "/{sessionId}/invites",
        summary="Rotate an invite (owner only)",
        response_model=RotatedInvite,
        responses=responses(400, 401, 403, 404, 409, 422),
    )
    async def rotate_invite(
        session_id: SessionId, body: RotateInviteRequest, db: DB, settings: SettingsDep, cards: Cards,
        owner_key: OwnerKey = None,
    ) -> RotatedInvite:  # fmt: skip
        """A new invite replaces the old one, which stops working for new joins and reads (people who joined keep
        their tokens): `role: editor`, the editor invite of a server in `api-key` mode (409 `no_editor_invite` in
        `open` mode, where the session id is the invitation); `role: viewer`, the read-only link. Needs
        `X-Owner-Key`."""
        invite, viewer_id = await service.rotate_invite(db, settings, cards, session_id, owner_key, body.role)
        return RotatedInvite(role=body.role, editor_invite=invite, viewer_id=viewer_id, view_url=f"/v/{viewer_id}")

    @router.delete(
        "/{sessionId}/invites/editor",
        status_code=204,
        summary="Revoke the editor invite (owner only)",
        responses=responses(401, 403, 404, 422),
    )
    async def revoke_editor_invite(session_id: SessionId, db: DB, owner_key: OwnerKey = None) -> Response:
        """Nobody can join with an invite until the owner makes a new one (`POST .../invites`). Needs
        `X-Owner-Key`."""
        await service.revoke_editor_invite(db, session_id, owner_key)
        return Response(status_code=204)

    @router.delete(
        "/{sessionId}",
        summary="Delete a session (owner only)",
        status_code=204,
        response_class=Response,
        responses=responses(401, 403, 404, 422, 503),
    )
    async def delete_session(session_id: SessionId, db: DB, request: Request, owner_key: OwnerKey = None) -> Response:
        """Delete the session with everything it holds: participants, its update log (code, history, run output)
        and its read-only link. Needs the `X-Owner-Key` header. Everyone connected is disconnected (close code
        4404, on every process); afterwards the session, its joins, its live endpoint and its read-only link
        answer 404 (4404 live). Answers once the deletion is committed."""
        await delete_owned(db, request.app.state.deletion, session_id, owner_key)
        return Response(status_code=204)

    bind_body(create_session, models.create_session)
    bind_body(update_session, models.update_session)
    bind_body(set_language, models.set_language)
    return router
