"""Alembic runs migrations on the connection `store._migrate` hands it (always inside a transaction)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `store._migrate` runs these migrations
    raise RuntimeError("run migrations with `safeshare db upgrade`")

context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
