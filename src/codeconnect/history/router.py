"""HTTP routes of history, playback, restore, the owner's notes, export and import: thin wrappers over the services.

History is read with short database sessions of its own, never the request's unit of work: on SQLite a transaction
holds the one write lock from its start, and a read waiting for the update log's writer must not hold it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.config import Settings
from codeconnect.deps import DB, Live, Presence, SessionId, SettingsDep, rate_limited
from codeconnect.errors import AppError, SessionNotFound, responses
from codeconnect.history.notes import NotesWatch, check_notes_owner, read_notes, save_notes
from codeconnect.history.schemas import (
    AuthorRange,
    HistoryChange,
    HistoryPage,
    HistoryPerson,
    HistoryPoint,
    NotesBody,
    RestoreIndex,
    RestoreRequest,
    SaveNotesRequest,
    SessionExport,
    SessionImport,
    UtcTime,
)
from codeconnect.history.service import HistoryCache, authorize_reader
from codeconnect.history.transfer import export_session, import_session
from codeconnect.limits import check_text_bytes
from codeconnect.models import ParticipantRow, SessionRow
from codeconnect.sessions.owner import OwnerKey, check_owner
from codeconnect.sessions.router import ApiKeyCredentials, to_session
from codeconnect.sessions.schemas import CreatedSession, Session
from codeconnect.sessions.service import get_session, restore
from codeconnect.workspaces.service import creating_workspace


class BadPoint(AppError):
    status_code = 422
    code = "history_point_invalid"


def _maker(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


async def _reader(request: Request, session_id: str, live: Live) -> None:
    settings: Settings = request.app.state.settings
    async with live.db_lock, _maker(request)() as db:
        await authorize_reader(db, settings, session_id, request.headers)
        await db.rollback()


async def _owner(request: Request, session_id: str, owner_key: str | None, live: Live) -> None:
    async with live.db_lock, _maker(request)() as db:
        row = (await db.execute(select(SessionRow.owner_key_hash).where(SessionRow.id == session_id))).first()
        await db.rollback()
    if row is None:
        raise SessionNotFound()
    check_owner(SessionRow(owner_key_hash=row[0]), owner_key)


async def _client_gone(request: Request) -> None:
    """Returns once the client has closed its connection: past the request's body (none, for a GET), the next
    ASGI message of a request is its disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _cache(request: Request) -> HistoryCache:
    cache: HistoryCache = request.app.state.history
    return cache


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1/sessions", tags=["history"])
    page_size = settings.history_page_size
    readers = "the `X-Owner-Key`" + (
        " or a participant's `X-Participant-Token`" if settings.history_for_participants else ""
    )

    @router.get(
        "/{sessionId}/history",
        summary="The session's timeline",
        description="Every change in the order the server received it: time, author, characters inserted and "
        "deleted, kind (runs, language and title switches, restores are their own). Paged: pass `next` as `after`. "
        f"Needs {readers}.",
        response_model=HistoryPage,
        responses=responses(401, 403, 404, 413, 422, 503),
    )
    async def history(
        session_id: SessionId,
        request: Request,
        live: Live,
        after: Annotated[int | None, Query(ge=0, description="List the changes after this index.")] = None,
        limit: Annotated[
            int, Query(ge=1, description="Most changes to list (`CODECONNECT_HISTORY_PAGE_SIZE` at most).")
        ] = page_size,
    ) -> HistoryPage:
        await _reader(request, session_id, live)
        changes, first, total, start, end = await _cache(request).page(session_id, after, min(limit, page_size))
        last = first + len(changes) - 1
        async with live.db_lock, _maker(request)() as db:
            people = (
                await db.execute(
                    select(ParticipantRow.id, ParticipantRow.name, ParticipantRow.color)
                    .where(ParticipantRow.session_id == session_id)
                    .order_by(ParticipantRow.seq)
                )
            ).all()
            await db.rollback()
        return HistoryPage(
            changes=[
                HistoryChange(index=first + i, at=c.at, author=c.author, inserted=c.inserted, deleted=c.deleted,
                              kind=c.kind)
                for i, c in enumerate(changes)
            ],
            next=last if changes and last < total - 1 else None,
            participants=[HistoryPerson(id=p.id, name=p.name, color=p.color) for p in people],
            start=start,
            end=end,
            total=total,
        )  # fmt: skip

    @router.get(
        "/{sessionId}/history/at",
        summary="The session at one point of its history",
        description="Code, language, title and run output right after one change, with who wrote which part of the "
        "code (ranges in UTF-16 code units, covering it). Exactly one of `at` and `index` (422 "
        f"`history_point_invalid`); 404 `history_point_not_found` outside the history. Needs {readers}.",
        response_model=HistoryPoint,
        responses=responses(401, 403, 404, 413, 422, 503),
    )
    async def history_at(
        session_id: SessionId,
        request: Request,
        live: Live,
        at: Annotated[
            UtcTime | None, Query(description="A time (ISO 8601, with its offset): the last change at or before it.")
        ] = None,
        index: Annotated[int | None, Query(ge=0, description="A change index.")] = None,
    ) -> HistoryPoint:
        await _reader(request, session_id, live)  # the session and the right to read it first, then the point
        if (at is None) == (index is None):
            raise BadPoint("Give exactly one of `at` (ISO 8601 time) and `index`.")
        point = await _cache(request).point(session_id, index=index, at=at)
        language, title = point.language, point.title
        if language is None or title is None:  # the document held none then: the session's now
            now = await _current_names(request, live, session_id)
            language, title = language or now[0], title or now[1]
        return HistoryPoint(
            index=point.index, at=point.at, code=point.code, language=language, title=title, runs=point.runs,
            authors=[AuthorRange(start=s, end=e, author=a) for s, e, a in point.authors],
        )  # fmt: skip

    @router.post(
        "/{sessionId}/restore",
        summary="Restore the code as it was at a point (owner only)",
        response_model=Session,
        responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def restore_point(
        session_id: SessionId, body: RestoreRequest, request: Request, db: DB, live: Live, presence: Presence,
        owner_key: OwnerKey = None,
    ) -> Session:  # fmt: skip
        """Puts the code (and language) back as right after that change, as one minimal live edit by the server, so
        it merges with whoever is typing; it shows in the history as a `restore`. Needs `X-Owner-Key`. 409
        `session_ended` while the session is ended; 404 `history_point_not_found` past the history; 413
        `code_too_large` when that code is over the code limit of today."""
        await db.commit()  # nothing read yet: no transaction of the request's held while the history is read
        await _owner(request, session_id, owner_key, live)
        if isinstance(body, RestoreIndex):
            point = await _cache(request).point(session_id, index=body.index)
        else:
            point = await _cache(request).point(session_id, at=body.at)
        row = await restore(db, live, session_id, point.code, point.language)
        return to_session(row, presence, live)

    @router.get(
        "/{sessionId}/export",
        summary="Export the session (owner only)",
        response_model=SessionExport,
        responses=responses(401, 403, 404, 413, 422, 503),
    )
    async def export(session_id: SessionId, request: Request, live: Live, owner_key: OwnerKey = None) -> SessionExport:
        """The session as one JSON document: its text, participants (no tokens), its whole history (each change's
        time, author and Yjs update in base64), runs and the owner's notes. `POST /v1/sessions/import` rebuilds a
        session from it. Needs `X-Owner-Key`."""
        await live.log.flush()  # what was acknowledged is in the export
        return await export_session(
            _maker(request), live.db_lock, session_id, owner_key, settings.history_max_changes
        )

    @router.post(
        "/import",
        status_code=201,
        summary="Rebuild a session from an export",
        response_model=CreatedSession,
        responses=responses(400, 401, 403, 413, 422, 429),
        openapi_extra={"security": [{}]} if settings.auth == "open" else None,
        dependencies=[Depends(rate_limited("sessions"))],
    )
    async def import_(
        body: SessionImport, request: Request, response: Response, settings: SettingsDep, live: Live,
        presence: Presence, credentials: ApiKeyCredentials,
    ) -> CreatedSession:  # fmt: skip
        """A new session (new id, owner key and invite) with the export's document, history (times and authors),
        participants (new ids; they join again to take part), runs and notes. Needs what creating a session
        needs (an API key in `api-key` mode); the body may be up to `CODECONNECT_IMPORT_MAX_BYTES`."""
        key = None if credentials is None else credentials.credentials
        workspace = await creating_workspace(_maker(request), settings, key)
        policy = await request.app.state.policies.get(workspace)
        done = await import_session(_maker(request), live.db_lock, settings, workspace, policy, body)
        async with _maker(request)() as db:
            row = await get_session(db, done.session_id)
            await db.commit()  # read only; keeps what was loaded
        response.headers["Location"] = f"/v1/sessions/{done.session_id}"
        view = to_session(row, presence, live)
        return CreatedSession(
            **view.model_dump(by_alias=False), owner_key=done.owner_key, editor_invite=done.editor_invite
        )

    @router.get(
        "/{sessionId}/notes",
        summary="The owner's private notes (owner only)",
        response_model=NotesBody,
        responses=responses(401, 403, 404, 422, 429),
    )
    async def get_notes(
        session_id: SessionId, request: Request, db: DB, settings: SettingsDep,
        since: Annotated[
            int | None, Query(ge=0, description="The version the caller has: wait for a newer one.")
        ] = None,
        owner_key: OwnerKey = None,
    ) -> NotesBody:  # fmt: skip
        """Notes only the owner sees (never in the document, never to participants). With `since`, waits up to
        `CODECONNECT_NOTES_WAIT_SECONDS` for a version other than `since`, then answers the stored one: how the
        owner's other tabs follow the notes live (429 `notes_waiters_exceeded` past
        `CODECONNECT_NOTES_WAITERS_PER_SESSION` waiting for one session, or `CODECONNECT_NOTES_WAITERS_MAX` in all).
        Needs `X-Owner-Key`."""
        await check_notes_owner(db, session_id, owner_key)
        notes = await read_notes(db, session_id)
        await db.commit()  # nothing held while waiting
        if since is not None and notes.version == since and settings.notes_wait_seconds:
            watch: NotesWatch = request.app.state.notes
            if not await watch.wait(session_id, settings.notes_wait_seconds, gone=lambda: _client_gone(request)):
                return NotesBody(text=notes.text, version=notes.version, updated_at=notes.updated_at)  # unheard
            await check_notes_owner(db, session_id, owner_key)  # deleted meanwhile: 404, not empty notes
            notes = await read_notes(db, session_id)
            await db.commit()
        return NotesBody(text=notes.text, version=notes.version, updated_at=notes.updated_at)

    @router.put(
        "/{sessionId}/notes",
        summary="Save the owner's private notes (owner only)",
        response_model=NotesBody,
        responses=responses(400, 401, 403, 404, 409, 413, 422),
    )
    async def put_notes(
        session_id: SessionId, body: SaveNotesRequest, request: Request, db: DB, settings: SettingsDep,
        owner_key: OwnerKey = None,
    ) -> NotesBody:  # fmt: skip
        """Save the whole notes, made on `version` (409 `notes_version_conflict` if another tab saved since: read
        them again). At most `CODECONNECT_NOTES_MAX_BYTES` (413 `notes_too_large`). Needs `X-Owner-Key`."""
        await check_notes_owner(db, session_id, owner_key)
        check_text_bytes("The notes", body.text, settings.notes_max_bytes, "notes_too_large")
        notes = await save_notes(db, session_id, body.text, body.version)
        await db.commit()
        request.app.state.notes.saved(session_id)
        return NotesBody(text=notes.text, version=notes.version, updated_at=notes.updated_at)

    return router


async def _current_names(request: Request, live: Live, session_id: str) -> tuple[str, str]:
    """The session's language and title now: what a point shows where the document held none then."""
    room = live.peek(session_id)
    if room is not None:
        return room.language(), room.title()
    async with live.db_lock, _maker(request)() as db:
        stmt = select(SessionRow.language, SessionRow.title).where(SessionRow.id == session_id)
        row = (await db.execute(stmt)).first()
        await db.rollback()
    if row is None:
        raise SessionNotFound()
    return row[0], row[1]

