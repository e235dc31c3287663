"""Reading a session's history: who may, the stored changes, and the replayed timelines kept in memory. No HTTP.

**Storage.** A change is a row of the update log (``doc_updates``) with its time and author. Compaction folds the
live log into one snapshot for fast loading and moves the changes it folds into ``doc_history`` in the same
transaction, keeping their ids: the history of a session is its ``doc_history`` rows and its live log rows that
are changes (``at`` set), in id order, applied on top of its base (``doc_bases``: the state before its first
kept change; empty for a session made since history is kept). Nothing is added to the hot path but the two
columns of the row it writes anyway. Changes another process accepted are stored by that process, once.

**Replay.** Counting the characters each change inserted and deleted, and who wrote which, needs the changes
replayed in order. That is done once per session and process, on its first read, and then only for the changes
stored since (:class:`HistoryCache`; a one-hour session of three typists replays in about 3 s, in a worker
thread, and then seeks in milliseconds from the checkpoints the replay kept). The replays are bounded by
``CODECONNECT_HISTORY_CACHE_BYTES``, the least recently read dropped first.

**Retention.** :func:`drop_old_history` folds changes older than ``CODECONNECT_HISTORY_DAYS`` into the base
(one merged update), in one transaction: the history then starts later, the live document is untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pycrdt import merge_updates
from sqlalchemy import delete, func, insert, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.collab.registry import RoomRegistry
from codeconnect.config import Settings
from codeconnect.errors import Forbidden, NotFound, PayloadTooLarge, SessionNotFound, Unauthorized
from codeconnect.history.timeline import Change, Point, StoredChange, Timeline
from codeconnect.models import DocBaseRow, DocHistoryRow, DocUpdateRow, ParticipantRow, SessionRow
from codeconnect.security import hash_secret, secret_matches

log = logging.getLogger(__name__)


class PointNotFound(NotFound):
    code = "history_point_not_found"


def check_history_reader(
    row: tuple[str] | Any, token_hash: str | None, settings: Settings, headers: Mapping[str, str]
) -> None:
    """Whether ``headers`` may read the history of the session whose owner key hash is ``row[0]``: its owner key,
    or, with ``history_for_participants``, a token of one of its participants (``token_hash`` is the stored hash
    of the token sent, found among the session's participants; None when it is not one of theirs)."""
    owner_key = headers.get("x-owner-key")
    if owner_key and secret_matches(owner_key, row[0]):
        return
    token = headers.get("x-participant-token")
    if settings.history_for_participants and token and token_hash is not None and secret_matches(token, token_hash):
        return
    if not owner_key and not token:
        what = "`X-Owner-Key`" + (" or `X-Participant-Token`" if settings.history_for_participants else "")
        raise Unauthorized(f"Reading the history of this session needs {what}.", code="history_credentials_required")
    if token and not owner_key and not settings.history_for_participants:
        raise Forbidden("Only the session owner may read its history on this server.", code="history_owner_only")
    raise Forbidden("These credentials do not open the history of this session.", code="history_forbidden")


async def authorize_reader(db: AsyncSession, settings: Settings, session_id: str, headers: Mapping[str, str]) -> None:
    """404 for an unknown session, 401/403 for a caller who may not read its history (see above)."""
    row = (await db.execute(select(SessionRow.owner_key_hash).where(SessionRow.id == session_id))).first()
    if row is None:
        raise SessionNotFound()
    token = headers.get("x-participant-token")
    token_hash = None
    if settings.history_for_participants and token and len(token) <= 256:
        token_hash = await db.scalar(
            select(ParticipantRow.token_hash).where(
                ParticipantRow.token_hash == hash_secret(token), ParticipantRow.session_id == session_id
            )
        )
    check_history_reader(row, token_hash, settings, headers)


def _changes_after(session_id: str, after: int) -> Any:
    h, u = DocHistoryRow, DocUpdateRow
    moved = select(h.id, h.data, h.at, h.author, h.tag).where(h.session_id == session_id, h.id > after)
    live = select(u.id, u.data, u.at, u.author, u.tag).where(
        u.session_id == session_id, u.id > after, u.at.is_not(None)
    )
    # One statement, so one snapshot: a compaction moving rows between the two tables is seen before or after.
    both = union_all(moved, live).subquery()
    return select(both).order_by(both.c.id)


def _count_upto(session_id: str, upto: int) -> Any:
    """How many changes with an id up to ``upto`` the session's history holds (moved and live alike)."""
    h, u = DocHistoryRow, DocUpdateRow
    moved = select(h.id).where(h.session_id == session_id, h.id <= upto)
    live = select(u.id).where(u.session_id == session_id, u.id <= upto, u.at.is_not(None))
    return select(func.count()).select_from(union_all(moved, live).subquery())


class HistoryCache:
    """The replayed timelines of this process, least recently read first, within ``history_cache_bytes``."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, registry: RoomRegistry):
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._registry = registry
        self._timelines: OrderedDict[str, Timeline] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._replays = asyncio.Semaphore(settings.history_replays_max)

    async def _read(self, session_id: str, after: int, base_key: tuple[int, int] | None, known: int) -> tuple[
        tuple[int, int], list[bytes] | None, list[StoredChange]
    ]:  # fmt: skip
        """The base's key; the base itself when it is not ``base_key`` (then every change, else those after
        ``after``). ``known``: how many changes up to ``after`` the caller holds; if the database has more (with
        several processes, a lower id can commit after a higher one was read), everything is read again."""
        async with self._registry.db_lock, self._sessionmaker() as db:
            count, upto = (
                await db.execute(
                    select(func.count(), func.coalesce(func.max(DocBaseRow.upto), 0)).where(
                        DocBaseRow.session_id == session_id
                    )
                )
            ).one()
            key = (int(count), int(upto))
            base = None
            if key == base_key and after and await db.scalar(_count_upto(session_id, after)) != known:
                base_key = None  # a change committed out of order: read it all again
            if key != base_key:
                after = 0
                base = list(
                    (
                        await db.scalars(
                            select(DocBaseRow.data).where(DocBaseRow.session_id == session_id).order_by(DocBaseRow.id)
                        )
                    ).all()
                )
            limit = self._settings.history_max_changes
            changes = await _changes(db, session_id, after, limit - (known if after else 0), limit)
            await db.rollback()
        return key, base, changes

    async def _timeline(self, session_id: str) -> Timeline:
        """The session's timeline brought up to date (call under the session's lock)."""
        # What was acknowledged before this read is in the history it answers.
        await self._registry.log.flush()
        timeline = self._timelines.get(session_id)
        key, base, changes = await self._read(
            session_id,
            0 if timeline is None else timeline.last_seq,
            None if timeline is None else timeline.base_key,
            0 if timeline is None else len(timeline.changes),
        )
        if timeline is None or base is not None:
            timeline = Timeline(base or [], key, self._settings.history_checkpoint_every)
        if changes:
            # Replaying is CPU work (pycrdt): in a worker thread, so live traffic goes on meanwhile, and a few at a
            # time, so that first reads of many sessions at once leave the event loop a core.
            async with self._replays:
                await asyncio.to_thread(timeline.extend, changes)
        self._timelines[session_id] = timeline
        self._timelines.move_to_end(session_id)
        total = sum(t.size for t in self._timelines.values())
        while total > self._settings.history_cache_bytes and len(self._timelines) > 1:
            _, dropped = self._timelines.popitem(last=False)
            total -= dropped.size
        return timeline

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            if len(self._locks) > 4 * max(16, len(self._timelines)):
                for key in [k for k, v in self._locks.items() if not v.locked()]:
                    del self._locks[key]
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    async def page(
        self, session_id: str, after: int | None, limit: int
    ) -> tuple[list[Change], int, int, datetime | None, datetime | None]:
        """Changes after index ``after`` (None: from the first), at most ``limit``; with the first index listed,
        the total, and the times of the first and last change."""
        async with self._lock(session_id):
            timeline = await self._timeline(session_id)
            first = 0 if after is None else after + 1
            changes = timeline.changes[first : first + limit]
            total = len(timeline.changes)
            start = timeline.changes[0].at if total else None
            end = timeline.changes[-1].at if total else None
        return changes, first, total, start, end

    async def point(self, session_id: str, *, index: int | None = None, at: datetime | None = None) -> Point:
        """The document right after change ``index``, or after the last change at or before ``at``."""
        async with self._lock(session_id):
            timeline = await self._timeline(session_id)
            total = len(timeline.changes)
            if at is not None:
                index = timeline.index_at(at)
                if index is None:
                    raise PointNotFound(
                        "The history of this session starts after this time."
                        if total
                        else "This session has no history."
                    )
            assert index is not None
            if not 0 <= index < total:
                raise PointNotFound(f"No change has this index: the history has {total} changes (0 to {total - 1}).")
            return await asyncio.to_thread(timeline.point, index)

    def forget(self, session_id: str) -> None:
        self._timelines.pop(session_id, None)


async def _changes(db: AsyncSession, session_id: str, after: int, room: int, limit: int) -> list[StoredChange]:
    """The changes after id ``after``: at most ``room`` more, or 413 ``history_too_long`` (``limit`` in all). One
    row past ``room`` is read, never more: a history too long for the limit is never loaded whole."""
    rows = (await db.execute(_changes_after(session_id, after).limit(max(0, room) + 1))).all()
    if len(rows) > room:
        raise PayloadTooLarge(
            f"This session's history holds more than {limit} changes, more than this server reads at once "
            "(CODECONNECT_HISTORY_MAX_CHANGES); the session itself is unaffected.",
            code="history_too_long",
        )
    return [StoredChange(int(r[0]), _utc(r[2]), r[3], r[4], bytes(r[1])) for r in rows]


async def stored_history(
    db: AsyncSession, session_id: str, max_changes: int
) -> tuple[list[bytes], list[StoredChange]]:
    """The session's base and every change, for an export: 413 ``history_too_long`` when they are more than
    ``max_changes`` together, as an import counts them (its own limit has the same default), so that an export
    this server gives is one it takes back."""
    stmt = select(DocBaseRow.data).where(DocBaseRow.session_id == session_id).order_by(DocBaseRow.id)
    base = list((await db.scalars(stmt)).all())
    return [bytes(b) for b in base], await _changes(db, session_id, 0, max_changes - len(base), max_changes)


async def drop_old_history(db: AsyncSession, session_id: str, cutoff: datetime) -> int:
    """Fold the session's changes moved to ``doc_history`` before ``cutoff`` into its base; returns how many.

    Only history rows older than every change still in the live log go (those are folded later, once compaction
    has moved them), so the base always precedes what is left. The live log is not touched."""
    live_first = await db.scalar(
        select(func.min(DocUpdateRow.id)).where(DocUpdateRow.session_id == session_id, DocUpdateRow.at.is_not(None))
    )
    stmt = select(DocHistoryRow.id, DocHistoryRow.data).where(
        DocHistoryRow.session_id == session_id, DocHistoryRow.at < cutoff
    )
    if live_first is not None:
        stmt = stmt.where(DocHistoryRow.id < live_first)
    old = (await db.execute(stmt.order_by(DocHistoryRow.id))).all()
    if not old:
        return 0
    upto = int(old[-1][0])
    # Only the oldest run of changes: a change kept between two dropped ones would then precede the base.
    newer = await db.scalar(
        select(func.min(DocHistoryRow.id)).where(DocHistoryRow.session_id == session_id, DocHistoryRow.at >= cutoff)
    )
    if newer is not None and newer < upto:
        old = [row for row in old if row[0] < newer]
        if not old:
            return 0
        upto = int(old[-1][0])
    base = list((await db.scalars(select(DocBaseRow.data).where(DocBaseRow.session_id == session_id))).all())
    merged = merge_updates(*base, *[bytes(row[1]) for row in old])
    await db.execute(delete(DocBaseRow).where(DocBaseRow.session_id == session_id))
    await db.execute(insert(DocBaseRow).values(session_id=session_id, upto=upto, data=merged))
    await db.execute(delete(DocHistoryRow).where(DocHistoryRow.session_id == session_id, DocHistoryRow.id <= upto))
    return len(old)


async def sessions_with_old_history(db: AsyncSession, workspace_id: str, cutoff: datetime, limit: int) -> list[str]:
    """Sessions of the workspace with history older than ``cutoff``."""
    rows = await db.scalars(
        select(DocHistoryRow.session_id)
        .join(SessionRow, SessionRow.id == DocHistoryRow.session_id)
        .where(DocHistoryRow.at < cutoff, SessionRow.workspace_id == workspace_id)
        .group_by(DocHistoryRow.session_id)
        .limit(limit)
    )
    return list(rows.all())


def history_days(settings: Settings, policy_days: int | None) -> int:
    """Days of history kept: the workspace policy's ``historyDays`` where it sets one, else the server's setting
    (0: kept as long as the session)."""
    return policy_days or settings.history_days


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite's text, where a driver hands it back unparsed
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
