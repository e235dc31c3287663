"""Alembic environment. Migrations run on a connection handed in by ``codeconnect.db.run_migrations``."""

from __future__ import annotations

from alembic import context

from codeconnect.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by running the alembic CLI by hand
    raise SystemExit("Run migrations with `codeconnect migrate`.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
