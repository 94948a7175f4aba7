"""Alembic environment: runs on the connection coursedesk hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from coursedesk.db.registry import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `coursedesk db`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=metadata(),
    compare_type=True,
    compare_server_default=True,
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
