"""`codeconnect purge [--dry-run]`: the retention purge from a shell on the server (see ``retention.py``).

A dry run only reads, so it runs beside the servers. A real purge from here runs only while no server uses the
database: a server knows who is connected and what it keeps in memory (tokens, rooms, cards), this command does
not, and the servers purge on their own every ``CODECONNECT_PURGE_INTERVAL_SECONDS`` anyway.

The listing names sessions by their log reference (``logs.session_ref``, under ``CODECONNECT_LOG_HASH_KEY``: the
same as in the servers' log lines when that key is set), never by id: a session id is an invitation to edit, and
what a command prints ends up in terminals' scrollback and tickets. An operator who needs the id has the database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any

from codeconnect.config import Settings
from codeconnect.db import create_engine, create_sessionmaker, run_migrations
from codeconnect.logs import session_ref, set_hash_key
from codeconnect.models import utcnow
from codeconnect.processes import ProcessList, hold_sqlite_file
from codeconnect.sessions.retention import Purger, PurgeReport


def add_command(sub: Any) -> None:
    """Add the ``purge`` command to the top-level parser's subparsers."""
    purge = sub.add_parser(
        "purge", help="Delete idle sessions past their retention (CODECONNECT_RETENTION_DAYS, workspace policies)."
    )
    purge.add_argument("--dry-run", action="store_true", help="Only list what would be deleted.")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out ``purge``; 0, or 2 with the reason on stderr."""
    if not args.dry_run:
        refusal = hold_sqlite_file(settings) if settings.is_sqlite else None
        if refusal is not None:
            print(f"codeconnect: not purging: {refusal}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_run(bool(args.dry_run), settings))
    except _Refused as exc:
        print(f"codeconnect: not purging: {exc}", file=sys.stderr)
        return 2


class _Refused(Exception):
    pass


async def _run(dry_run: bool, settings: Settings) -> int:
    set_hash_key(settings.log_hash_key.get_secret_value() if settings.log_hash_key else None)
    await run_migrations(settings.database_url)
    engine = create_engine(settings.database_url, wait_seconds=settings.db_wait_seconds)
    try:
        maker = create_sessionmaker(engine)
        lock = asyncio.Semaphore(1)
        if not dry_run:
            servers = await ProcessList(maker, settings, lock).others()
            if servers:
                raise _Refused(
                    f"{len(servers)} server process(es) use this database; they purge on their own every "
                    f"{settings.purge_interval_seconds:g} s (CODECONNECT_PURGE_INTERVAL_SECONDS). Stop them to purge "
                    "from here, or see what would go with --dry-run"
                )
        report = await Purger(maker, settings, lock).run(dry_run=dry_run)
    finally:
        await engine.dispose()
    print(_describe(report, dry_run, utcnow()))
    return 0


def _describe(report: PurgeReport, dry_run: bool, now: datetime) -> str:
    if not dry_run:
        return f"codeconnect: purged {report.deleted} idle session(s) past their retention"
    lines = [f"codeconnect: {len(report.expired)} idle session(s) past their retention would be purged (dry run)"]
    for expired in report.expired:
        idle_days = (now - expired.updated_at).days
        lines.append(
            f"  session {session_ref(expired.session_id)}  workspace={expired.workspace}  "
            f"last_change={expired.updated_at:%Y-%m-%d}  idle_days={idle_days}  retention_days={expired.retention_days}"
        )
    if report.expired:
        lines.append("  (unless someone is connected to it when the purge runs)")
    return "\n".join(lines)
