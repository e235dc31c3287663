"""Retention: sessions idle longer than their workspace's retention are purged with everything they hold.

A session is idle when its row has not changed (``updated_at``, which a loaded room's changes reach within
``CODECONNECT_MIRROR_INTERVAL_SECONDS``) for its retention and nobody is connected to it: a session whose room is
held by this process, or who has someone connected on any process, is never purged. The retention is the
workspace policy's ``retentionDays`` where it sets one, else ``CODECONNECT_RETENTION_DAYS`` (0 there: kept).

Every process runs the purge every ``CODECONNECT_PURGE_INTERVAL_SECONDS``, in batches of
``CODECONNECT_PURGE_BATCH_SIZE`` sessions, each deleted through ``SessionDeletion`` (every process forgets them).
Several processes purging at once do not collide: inside the deleting transaction each batch is read again,
keeping only the sessions still idle, with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so a session another purge
(or its owner) is deleting right now is left to that one; SQLite serves one process, whose purges take the live
layer's one turn at the database. Log lines give counts only: session ids are invitations.

The same run drops history older than ``CODECONNECT_HISTORY_DAYS`` (see ``history/service.py``): the oldest changes
are folded into the base each session's history starts from, a session per transaction; documents are untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect.config import Settings
from codeconnect.history.service import drop_old_history, history_cutoff, sessions_with_old_history
from codeconnect.models import SessionRow, WorkspaceRow, utcnow
from codeconnect.sessions.deletion import Chooser, SessionDeletion, delete_rows
from codeconnect.workspaces.service import read_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Expired:
    """A session past its retention (what a dry run lists)."""

    session_id: str
    workspace: str  # the workspace's name
    updated_at: datetime
    retention_days: int


@dataclass(slots=True)
class PurgeReport:
    deleted: int = 0
    history_dropped: int = 0  # changes older than the history retention, folded into their session's base
    in_use: int = 0  # past their retention, but someone is connected (or the room is loaded here)
    expired: list[Expired] = field(default_factory=list)  # a dry run's list


@dataclass(frozen=True, slots=True)
class _Retention:
    workspace_id: str
    name: str
    days: int


class Purger:
    """One purge at a time of one process. ``deletion`` is the app's (None: a command with no server running)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        lock: asyncio.Semaphore,
        deletion: SessionDeletion | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._lock = lock  # the live layer's turn at the database (SQLite: one writer at a time)
        self._deletion = deletion
        self._clock = clock
        self._running = asyncio.Lock()

    async def run(self, *, dry_run: bool = False) -> PurgeReport:
        """Purge every idle session past its retention (``dry_run``: only list them)."""
        async with self._running:
            report = PurgeReport()
            cluster = self._deletion.registry.cluster if self._deletion is not None else None
            if not dry_run and cluster is not None and cluster.shared and cluster.status() != "up":
                # Who is connected on the other processes is Redis's to say: without it, wait for the next turn.
                log.info("retention purge postponed: Redis is unreachable")
                return report
            now = self._clock()
            for retention in await self._retentions():
                await self._purge_workspace(retention, now - timedelta(days=retention.days), report, dry_run)
            if not dry_run:
                report.history_dropped = await self._drop_history(now)
            if not dry_run and (report.deleted or report.in_use):
                log.info(
                    "retention purge: %d idle sessions past their retention deleted, %d left for now (in use)",
                    report.deleted, report.in_use,
                )  # fmt: skip
            return report

    async def _drop_history(self, now: datetime) -> int:
        cutoff = history_cutoff(self._settings, now)
        if cutoff is None:
            return 0
        dropped = 0
        while True:
            async with self._lock, self._sessionmaker() as db:
                session_ids = await sessions_with_old_history(db, cutoff, self._settings.purge_batch_size)
                await db.rollback()
            this_pass = 0
            for session_id in session_ids:
                async with self._lock, self._sessionmaker() as db, db.begin():
                    this_pass += await drop_old_history(db, session_id, cutoff)
            dropped += this_pass
            if not this_pass or len(session_ids) < self._settings.purge_batch_size:
                return dropped

    async def _retentions(self) -> list[_Retention]:
        async with self._lock, self._sessionmaker() as db:
            rows = (await db.execute(select(WorkspaceRow.id, WorkspaceRow.name, WorkspaceRow.policy))).all()
        found = []
        for workspace_id, name, policy in rows:
            days = read_policy(policy).retention_days or self._settings.retention_days
            if days:
                found.append(_Retention(workspace_id, name, days))
        return found

    async def _purge_workspace(self, retention: _Retention, cutoff: datetime, report: PurgeReport, dry: bool) -> None:
        after = ""  # ids in order, from the last one seen: sessions left in use are not read again in this run
        while True:
            async with self._lock, self._sessionmaker() as db:
                rows = (
                    await db.execute(
                        select(SessionRow.id, SessionRow.updated_at)
                        .where(
                            SessionRow.workspace_id == retention.workspace_id,
                            SessionRow.updated_at < cutoff,
                            SessionRow.id > after,
                        )
                        .order_by(SessionRow.id)
                        .limit(self._settings.purge_batch_size)
                    )
                ).all()
            if not rows:
                return
            after = rows[-1].id
            if dry:
                report.expired.extend(Expired(r.id, retention.name, r.updated_at, retention.days) for r in rows)
                continue
            idle = [r.id for r in rows if not await self._in_use(r.id)]
            report.in_use += len(rows) - len(idle)
            report.deleted += len(await self._delete(idle, _still_idle(retention.workspace_id, cutoff)))
            if len(rows) < self._settings.purge_batch_size:
                return

    async def _in_use(self, session_id: str) -> bool:
        if self._deletion is None:
            return False  # no server runs (the command checks): nobody can be connected
        registry = self._deletion.registry
        if registry.holds(session_id):
            return True
        return bool(registry.cluster.shared and await registry.cluster.online(session_id))

    async def _delete(self, session_ids: list[str], choose: Chooser) -> list[str]:
        if not session_ids:
            return []
        if self._deletion is not None:
            return await self._deletion.delete(session_ids, choose)
        async with self._lock, self._sessionmaker() as db, db.begin():
            return await delete_rows(db, await choose(db, session_ids))


def _still_idle(workspace_id: str, cutoff: datetime) -> Chooser:
    async def choose(db: AsyncSession, session_ids: list[str]) -> list[str]:
        # Read again inside the deleting transaction: a session changed since the batch was read stays, and on
        # PostgreSQL one whose row another transaction holds (another process's purge, its owner's deletion) is
        # skipped, not waited for: that one deletes it.
        stmt = select(SessionRow.id).where(
            SessionRow.id.in_(session_ids), SessionRow.workspace_id == workspace_id, SessionRow.updated_at < cutoff
        )
        if db.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return list((await db.scalars(stmt)).all())

    return choose


class RetentionTask:
    """The purge every ``purge_interval_seconds`` while the app runs; a lifespan resource."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, deletion: SessionDeletion
    ) -> None:
        self.purger = Purger(sessionmaker, settings, deletion.registry.db_lock, deletion)
        self._interval = settings.purge_interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RetentionTask:
        self._task = asyncio.create_task(self._loop(), name="retention-purge")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.purger.run()
            except Exception as exc:
                # The database may be away; the next turn tries again.
                log.warning("the retention purge failed (%s); trying again in %g s", type(exc).__name__, self._interval)
