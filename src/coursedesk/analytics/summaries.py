"""Bulk loads of the source tables that skip the change capture and rebuild once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

SOURCE_TABLES = ("bookings", "events", "free_lesson_registrations")
# The capture triggers of the row changes; the TRUNCATE ones stay enabled.
CAPTURE_TRIGGERS = tuple(
    (table, f"{table}_capture_{operation}")
    for table in SOURCE_TABLES
    for operation in ("insert", "update", "delete")
)


@contextmanager
def bulk_load(connection: Connection) -> Iterator[None]:
    """Load source rows (COPY, INSERT … SELECT) without capturing each of them.

    The fold lock is taken first, then the capture is disabled inside the caller's
    transaction and the summaries rebuilt once at the end, which is far cheaper for
    millions of rows. ALTER TABLE locks the source tables against other writers until
    the transaction ends, so no concurrent write can slip past the summaries.
    """
    connection.execute(text("LOCK TABLE analytics_fold_state IN EXCLUSIVE MODE"))
    for table, trigger in CAPTURE_TRIGGERS:
        connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
    yield
    for table, trigger in CAPTURE_TRIGGERS:
        connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
    connection.execute(text("SELECT analytics_rebuild()"))
