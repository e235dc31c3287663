"""HTTP routes of the owner's controls: thin wrappers over ``controls.service`` and ``controls.owner_links``. Each
needs the session's owner key in the ``X-Owner-Key`` header (401 without one, 403 with a wrong one), but the claim
of an owner link, whose code is the credential."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from codeconnect.config import Settings
from codeconnect.controls import owner_links, service
from codeconnect.deps import DB, Cards, Live, Presence, SessionId, SettingsDep, rate_limited
from codeconnect.errors import responses
from codeconnect.sessions.access import requires
from codeconnect.sessions.owner import OwnerKey
from codeconnect.sessions.router import to_session
from codeconnect.sessions.schemas import CreatedOwnerLink, OwnerClaim, OwnerClaimRequest, Session
from codeconnect.workspaces.schemas import SessionPolicy, SessionPolicyView

ParticipantId = Annotated[
    str,
    Path(
        alias="participantId",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The participant's id, as the session's participant list shows it.",
    ),
]


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1/sessions/{sessionId}", tags=["owner controls"])

    # Two actions rather than a PUT of a state: each is one button of the owner's page and one line in an audit of
    # requests, and each is idempotent on its own (ending twice keeps the first end's time).
    @router.post(
        "/end",
        summary="End the session (owner only)",
        response_model=Session,
        responses=responses(401, 403, 404, 422),
    )
    async def end_session(
        session_id: SessionId, db: DB, live: Live, presence: Presence, owner_key: OwnerKey = None
    ) -> Session:
        """Make the session read-only for everyone: from the answer on, no live update from any client is
        applied or stored (live clients get a y-protocols "permission denied" auth message, reason
        `session-ended`, and stay connected), and REST writes (code, title, language, server runs, clearing
        the output) are refused with 409 `session_ended`. Reads and joins go on. `endedAt` says since when;
        ending an ended session changes nothing."""
        row = await service.set_ended(db, live, session_id, owner_key, ended=True)
        # The room hears of it once the change is committed, after this view is made: the row says it already.
        return to_session(row, presence, live).model_copy(update={"ended_at": row.ended_at})

    @router.post(
        "/reopen",
        summary="Reopen an ended session (owner only)",
        response_model=Session,
        responses=responses(401, 403, 404, 422),
    )
    async def reopen_session(
        session_id: SessionId, db: DB, live: Live, presence: Presence, owner_key: OwnerKey = None
    ) -> Session:
        """Let everyone edit again (live clients get an auth message, sub-type 1, reason `session-reopened`).
        Reopening an open session changes nothing."""
        row = await service.set_ended(db, live, session_id, owner_key, ended=False)
        return to_session(row, presence, live).model_copy(update={"ended_at": None})

    @router.delete(
        "/participants/{participantId}",
        summary="Remove a participant (owner only)",
        status_code=204,
        responses=responses(401, 403, 404, 422),
    )
    async def remove_participant(
        session_id: SessionId, participant_id: ParticipantId, db: DB, live: Live, cards: Cards,
        owner_key: OwnerKey = None,
    ) -> Response:  # fmt: skip
        """Remove someone from the session: their token stops working at once (REST and live), their live
        connections close with code 4403 and their presence disappears for the others. 404
        `participant_not_found` for an id the session does not have (also once removed). They may join again
        as a new participant through the session's link."""
        await service.remove_participant(db, live, cards, session_id, participant_id, owner_key)
        return Response(status_code=204)

    @router.get(
        "/policy",
        summary="Get the policy that applies to a session",
        response_model=SessionPolicyView,
        responses=responses(401, 404, 422),
        dependencies=requires("read", settings),
    )
    async def get_policy(session_id: SessionId, db: DB, settings: SettingsDep) -> SessionPolicyView:
        """What the session's workspace allows (within the server's settings), what its owner narrowed, and what
        applies: where code may run, the languages the session may use, and how many participants it may have."""
        return await service.session_policy(db, settings, session_id)

    @router.put(
        "/policy",
        summary="Narrow a session's policy (owner only)",
        response_model=SessionPolicyView,
        responses=responses(400, 401, 403, 404, 422),
    )
    async def put_policy(
        session_id: SessionId, body: SessionPolicy, db: DB, settings: SettingsDep, owner_key: OwnerKey = None
    ) -> SessionPolicyView:
        """Replace the owner's narrowing of the workspace's policy: `execution` (`none` turns every Run off, and
        run records that clients write into the document are taken out again), `languages` (creating,
        switching and server runs keep to them) and `maxParticipants` (later joins; nobody is removed). A field
        left out narrows nothing; `{}` follows the workspace again. Asking for more than the workspace allows is
        403 `forbidden_by_policy`, and changes nothing."""
        return await service.set_session_policy(db, settings, session_id, owner_key, body)

    @router.post(
        "/owner-links",
        status_code=201,
        summary="Make a one-time owner link (owner only)",
        response_model=CreatedOwnerLink,
        responses=responses(401, 403, 404, 422),
    )
    async def make_owner_link(
        session_id: SessionId, db: DB, settings: SettingsDep, owner_key: OwnerKey = None
    ) -> CreatedOwnerLink:
        """A link that makes whoever opens it the session's owner, once: how an integration that created the
        session with its API key hands the owner's page to a person, and how an owner opens it on another device.
        Its `url` is `/s/{sessionId}#owner=<code>`; the page claims the code (`POST .../owner-claims`) and takes it
        out of the address bar. It works once, within `CODECONNECT_OWNER_LINK_SECONDS` (600 by default); a new link
        replaces the previous one. The server keeps the owner key for the link's lifetime sealed with the code:
        its database alone does not reveal the key."""
        link = await owner_links.make_link(db, settings, session_id, owner_key)
        return CreatedOwnerLink(
            code=link.code, expires_at=link.expires_at, url=f"/s/{session_id}#owner={link.code}"
        )

    @router.post(
        "/owner-claims",
        summary="Claim an owner link",
        response_model=OwnerClaim,
        responses=responses(400, 403, 404, 422, 429),
        dependencies=[Depends(rate_limited("joins"))],
    )
    async def claim_owner_link(session_id: SessionId, body: OwnerClaimRequest, db: DB) -> OwnerClaim:
        """The session's owner key for the code of its owner link (in the body, never in a URL), which is then used
        up: of two claims at once, one succeeds. A wrong, used, replaced or expired code is 403
        `owner_link_invalid`. Claims count in the client's joins rate (`CODECONNECT_RATE_JOINS_PER_MINUTE`): past
        it, 429 `rate_limited` with `Retry-After`. Needs no other credential, in either auth mode."""
        return OwnerClaim(owner_key=await owner_links.claim(db, session_id, body.code))

    return router
