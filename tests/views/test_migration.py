"""The migration that gives every session a viewer id, on SQLite and PostgreSQL: sessions created before it get
one each, and nothing else of theirs changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

import codeconnect.migrations
from codeconnect.db import create_engine, run_migrations

URLSAFE = re.compile(r"^[A-Za-z0-9_-]{22,}$")
# The tables as revision 0002 left them (the models describe the newest schema).
SESSIONS = sa.table(
    "sessions",
    *(sa.column(c, sa.String()) for c in ("id", "title", "language", "code", "owner_key_hash")),
    sa.column("execution_enabled", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
PARTICIPANTS = sa.table(
    "participants",
    *(sa.column(c, sa.String()) for c in ("id", "session_id", "name", "color", "role", "token_hash")),
    sa.column("seq", sa.Integer()),
    sa.column("joined_at", sa.DateTime(timezone=True)),
)
DOC_UPDATES = sa.table("doc_updates", sa.column("session_id", sa.String()), sa.column("data", sa.LargeBinary()))


def _downgrade_to_0002(conn: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(codeconnect.migrations.__file__).parent))
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, "0002")


async def test_sessions_from_before_get_a_viewer_id_each(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_downgrade_to_0002)
            await conn.commit()
            now = datetime(2026, 1, 1, tzinfo=UTC)
            for n in range(3):
                sid = f"old-session-{n}"
                await conn.execute(
                    SESSIONS.insert().values(
                        id=sid, title="t", language="python", code="", owner_key_hash="x",
                        execution_enabled=True, created_at=now, updated_at=now,
                    )
                )
                await conn.execute(
                    PARTICIPANTS.insert().values(
                        id=f"p{n}", session_id=sid, seq=0, name="Ada", color="#000000", role="editor",
                        token_hash=f"h{n}", joined_at=now,
                    )
                )
                await conn.execute(DOC_UPDATES.insert().values(session_id=sid, data=b"\x00\x00"))
            await conn.commit()

        await run_migrations(database_url)

        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT id, viewer_id FROM sessions ORDER BY id"))).all()
            participants = (await conn.execute(sa.text("SELECT count(*) FROM participants"))).scalar_one()
            updates = (await conn.execute(sa.text("SELECT count(*) FROM doc_updates"))).scalar_one()
            # Viewer ids are unique: a second session cannot take one.
            try:
                await conn.execute(
                    sa.text("UPDATE sessions SET viewer_id = :v WHERE id = 'old-session-1'"), {"v": rows[0][1]}
                )
            except sa.exc.IntegrityError:
                duplicate_refused = True
            else:
                duplicate_refused = False
            await conn.rollback()
    finally:
        await engine.dispose()
    assert [r[0] for r in rows] == ["old-session-0", "old-session-1", "old-session-2"]
    viewer_ids = [r[1] for r in rows]
    assert all(v is not None and URLSAFE.match(v) for v in viewer_ids), viewer_ids
    assert len(set(viewer_ids)) == 3
    assert all(sid not in v for sid, v in rows)
    # Rebuilding the sessions table would have cascaded into these (SQLite's DROP TABLE deletes the rows first).
    assert (participants, updates) == (3, 3)
    assert duplicate_refused
