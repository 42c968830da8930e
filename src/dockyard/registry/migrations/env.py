"""Alembic environment: always run through :func:`dockyard.registry.migrate.ensure_schema`,
which hands over a connection already inside a locked transaction."""

from __future__ import annotations

from alembic import context

from dockyard.registry.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
