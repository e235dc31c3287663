"""Database engine, the request unit of work, and migrations.

SQLite (the default) runs in WAL mode and takes the write lock at the start of every transaction
(``BEGIN IMMEDIATE``): read-then-write sequences such as "count participants, then insert" are then
serialised instead of failing with ``database is locked`` half-way. PostgreSQL uses row locks for the same.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from starlette.requests import HTTPConnection

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process migrating one database.
_PG_MIGRATION_LOCK = 0x0C0DEC0


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


def create_engine(url: str, *, wait_seconds: float = 30.0, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url``; SQLite files (and their folder) are created on demand. A connection not free
    within ``wait_seconds`` raises ``sqlalchemy.exc.TimeoutError`` (a 503 for requests)."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection. SQLite lets one transaction write at a time and every transaction here begins
        # IMMEDIATE, so further connections would only wait inside SQLite's busy handler, which polls with
        # sleeps of up to 100 ms and lets a late comer win: 16 concurrent joins had a p99 of 1.7 s that way.
        # With one connection, requests wait for it in the pool, in arrival order.
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=wait_seconds, **kwargs
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin (see BEGIN IMMEDIATE below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (only an OS crash could drop the last commits).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=wait_seconds, **kwargs
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_db(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """The unit of work of one request: committed when the route returns, rolled back if it raises.

    Used with ``Depends(get_db, scope="function")`` so the commit happens before the response is sent:
    a client that got a 2xx can rely on the write being durable.
    """
    maker: async_sessionmaker[AsyncSession] = conn.app.state.sessionmaker
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def _upgrade(sync_conn: Connection) -> None:
    cfg = _alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def run_migrations(url: str) -> None:
    """Bring the database at ``url`` to the newest schema. Safe when several processes start at once."""
    engine = create_engine(url)
    try:
        path = sqlite_path(url)
        if path is not None:
            lock_path = path.with_name(path.name + ".migrate-lock")
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                async with engine.connect() as conn:
                    await conn.run_sync(_upgrade)
                    await conn.commit()
            finally:
                os.close(fd)
        else:
            async with engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_MIGRATION_LOCK})")
                try:
                    await conn.run_sync(_upgrade)
                    await conn.commit()
                finally:
                    if conn.dialect.name == "postgresql":
                        await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_MIGRATION_LOCK})")
                        await conn.commit()
    finally:
        await engine.dispose()
