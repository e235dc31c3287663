"""Command line: `codeconnect serve`, `codeconnect migrate`, `codeconnect purge` (`sessions.cli`), and workspaces and
keys (`workspaces.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn

from codeconnect import metrics
from codeconnect.config import Settings
from codeconnect.db import run_migrations
from codeconnect.execution.reaper import serve_under_init
from codeconnect.logs import log_config
from codeconnect.processes import hold_sqlite_file, sqlite_refusal
from codeconnect.server import uvicorn_options


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    workers = args.workers
    if settings.execution == "sandbox":
        # Refuse to serve rather than run untrusted code in a sandbox that is missing or does not hold.
        from codeconnect.execution.sandbox import SandboxUnavailable
        from codeconnect.execution.service import check_sandbox

        try:
            asyncio.run(check_sandbox(settings))
        except SandboxUnavailable as exc:
            print(f"codeconnect: CODECONNECT_EXECUTION=sandbox but {exc}; refusing to start", file=sys.stderr)
            return 2
    # On SQLite, the file's lock first: migrating a database another process serves is not ours to do.
    refusal = hold_sqlite_file(settings) if settings.is_sqlite else None
    if refusal is None:
        asyncio.run(run_migrations(settings.database_url))
        if settings.is_sqlite:
            refusal = asyncio.run(sqlite_refusal(settings))
    if refusal is not None:
        print(f"codeconnect: refusing to start: {refusal}", file=sys.stderr)
        return 2
    # Several workers sum their metrics through files (prometheus_client's multiprocess mode): set up before they
    # start, as each reads it when it imports the library.
    with metrics.shared_by_workers(workers, settings.metrics):
        uvicorn.run(
            "codeconnect.app:create_served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # Frames over the app's limit are refused by the protocol itself (4413), as their header arrives.
            **uvicorn_options(settings),
            log_config=log_config(settings),
            log_level=settings.log_level,
            timeout_graceful_shutdown=10,
            timeout_worker_healthcheck=settings.worker_healthcheck_seconds,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codeconnect", description="Code Connect Live server.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="Apply migrations, then serve the UI and the API.")
    serve.add_argument("--host", help="Interface to bind (env HOST, default 0.0.0.0).")
    serve.add_argument("--port", type=int, help="Port to listen on (env PORT, default 3000).")
    serve.add_argument("--workers", type=int, default=1, help="Worker processes (default 1).")
    sub.add_parser("migrate", help="Apply pending database migrations and exit.")
    # Imported here, not at the top: `serve --workers N` starts each worker by importing this module afresh, and
    # the admin commands pull in the whole app; a worker slow to get through its imports on a busy machine misses
    # the supervisor's first health checks and is killed and replaced, over and over.
    from codeconnect.sessions.cli import add_command as purge_command
    from codeconnect.sessions.cli import run as run_purge_command
    from codeconnect.workspaces.cli import add_commands as workspace_commands
    from codeconnect.workspaces.cli import run as run_workspace_command

    workspace_commands(sub)
    purge_command(sub)
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except Exception as exc:  # a configuration error is the operator's to fix: say what it is
        print(f"codeconnect: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.command == "purge":
        return run_purge_command(args, settings)
    if args.command in ("workspace", "key"):
        return run_workspace_command(args, settings)
    if args.command == "migrate":
        asyncio.run(run_migrations(settings.database_url))
        print("codeconnect: database is up to date")
        return 0
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1 and not settings.is_clustered:
        # A session's room (document, peers, awareness) lives in each process that serves it; without Redis
        # between them, several workers would split one session's editors into groups that never see each
        # other's edits. Refuse instead of corrupting sessions silently.
        if settings.is_sqlite:
            reason = (
                "SQLite serves one process; for several, use PostgreSQL (CODECONNECT_DATABASE_URL=postgresql://...) "
                "and Redis (CODECONNECT_REDIS_URL=redis://...)"
            )
        else:
            reason = "processes share live sessions through Redis: set CODECONNECT_REDIS_URL=redis://..."
        print(f"codeconnect: --workers {args.workers} refused: {reason}; or run a single worker", file=sys.stderr)
        return 2
    # As PID 1 (a container without an init) the server runs under a minimal init that reaps orphans.
    return serve_under_init(lambda: _serve(args, settings))


if __name__ == "__main__":
    sys.exit(main())
