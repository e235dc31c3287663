"""Participants: joining a session, listing who is there, and who is online. No HTTP here."""

from __future__ import annotations

import asyncio
import colorsys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.collab.auth import Authenticate, Issued, Participant
from codeconnect.collab.records import ParticipantRecord
from codeconnect.config import Settings
from codeconnect.errors import Conflict, SessionNotFound, Unauthorized
from codeconnect.models import ParticipantRow, SessionRow, WorkspaceRow, utcnow
from codeconnect.participants.names import distinct_name, name_key
from codeconnect.security import hash_secret, new_id, new_secret, secret_matches
from codeconnect.sessions.cards import SessionCards, forget_card_on_commit
from codeconnect.sessions.service import get_session
from codeconnect.workspaces.service import effective_max_participants, narrow, read_policy, read_session_policy

_GOLDEN_ANGLE = 137.50776405003785


def participant_color(seq: int) -> str:
    """The colour of the ``seq``-th participant: hues a golden angle apart never repeat, and stay far
    apart for the first dozens; lightness alternates so neighbours differ even when hues come close."""
    hue = (seq * _GOLDEN_ANGLE) % 360 / 360
    lightness = (0.42, 0.50, 0.36)[seq % 3]
    r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.68)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


class PresenceView(Protocol):
    """Who is connected right now (the live layer implements it)."""

    def online_participants(self, session_id: str) -> frozenset[str]:
        """Who is connected, for a session whose room is loaded in this process (it knows every process's)."""
        ...

    async def online(self, session_id: str) -> frozenset[str]:
        """Who is connected on any process, whether the session's room is loaded here or not."""
        ...


@dataclass(frozen=True, slots=True)
class NewParticipant:
    row: ParticipantRow
    token: str


async def join(
    db: AsyncSession,
    settings: Settings,
    cards: SessionCards,
    session_id: str,
    *,
    name: str,
    role: str,
    issued: Issued | None = None,
    invite: str | None = None,
) -> NewParticipant:
    # Lock the session row so concurrent joins cannot both take the last place, the same colour or the same name
    # (two joins as "Ada" at once are decided one after the other). Only its id; the participants are read as
    # plain (name, seq) rows, not loaded as up to max_participants ORM objects per join.
    locked = (
        await db.execute(
            select(
                SessionRow.id, SessionRow.editor_invite_hash, WorkspaceRow.policy, SessionRow.policy.label("narrowed")
            )
            .join(WorkspaceRow, SessionRow.workspace_id == WorkspaceRow.id)
            .where(SessionRow.id == session_id)
            .with_for_update(of=SessionRow)
        )
    ).first()
    if locked is None:
        raise SessionNotFound()
    current = locked.editor_invite_hash
    if invite is not None and (current is None or not secret_matches(invite, current)):
        # The invite this join came in with was rotated or revoked meanwhile (see sessions/access.py).
        raise Unauthorized("This invite no longer opens the session.", code="session_credentials_required")
    policy = narrow(read_policy(locked.policy), read_session_policy(locked.narrowed))
    most = effective_max_participants(settings, policy)
    present = (
        await db.execute(
            select(ParticipantRow.name, ParticipantRow.seq).where(ParticipantRow.session_id == session_id)
        )
    ).all()
    if len(present) >= most:
        raise Conflict(f"This session already has {most} participants, the most it can have.", code="session_full")
    taken = {name_key(p.name) for p in present}
    shown = distinct_name(name, taken, settings.max_name_length)
    if shown is None:
        raise Conflict(
            "Someone in this session already has this name, and the name limit leaves no room to number it; "
            "choose another name.",
            code="name_taken",
        )
    seq = max((p.seq for p in present), default=-1) + 1
    token = new_secret()
    row = ParticipantRow(
        id=new_id(),
        session_id=session_id,
        seq=seq,
        name=shown,
        color=participant_color(seq),
        role=role,
        token_hash=hash_secret(token),
        joined_at=utcnow(),
    )
    forget_card_on_commit(db, cards, session_id)
    if issued is not None:
        known = Participant(row.id, row.name, row.color, row.role)
        event.listen(db.sync_session, "after_commit", lambda _: issued(session_id, token, known), once=True)
    db.add(row)
    await db.flush()
    return NewParticipant(row, token)


async def list_participants(db: AsyncSession, session_id: str) -> list[ParticipantRow]:
    session = await get_session(db, session_id)
    return list(session.participants)


async def authenticate(db: AsyncSession, session_id: str, token: str) -> ParticipantRow | None:
    """The participant of ``session_id`` holding ``token``, or None."""
    row = (
        await db.execute(select(ParticipantRow).where(ParticipantRow.token_hash == hash_secret(token)))
    ).scalar_one_or_none()
    return row if row is not None and admits(token, session_id, row.session_id, row.token_hash) else None


def live_authenticator(
    sessionmaker: async_sessionmaker[AsyncSession],
    lock: asyncio.Semaphore,
    lookup: Callable[[str], Awaitable[ParticipantRecord | None]] | None,
) -> Authenticate:
    """The live layer's token check: through the update log's driver-level ``lookup`` by token hash when there is
    one (a class joining at once would otherwise queue behind the ORM), else the ORM, under the live layer's
    database ``lock``."""

    async def authenticate_live(session_id: str, token: str) -> Participant | None:
        if lookup is None:
            async with lock, sessionmaker() as db:
                row = await authenticate(db, session_id, token)
            return None if row is None else Participant(row.id, row.name, row.color, row.role)
        record = await lookup(hash_secret(token))
        if record is None or not admits(token, session_id, record.session_id, record.token_hash):
            return None
        return Participant(record.id, record.name, record.color, record.role)

    return authenticate_live


def admits(token: str, session_id: str, row_session_id: str, row_token_hash: str) -> bool:
    """Whether the participant row found by ``token``'s hash lets it into ``session_id``. The lookup is by
    hash; the constant-time check guards the comparison that decides access."""
    return row_session_id == session_id and secret_matches(token, row_token_hash)
