"""Rebuilding the summary tables in one pass, and bulk loads that skip the triggers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

SOURCE_TABLES = ("bookings", "events", "free_lesson_registrations")
# The row-change triggers of migration 0002; their TRUNCATE triggers stay enabled.
SUMMARY_TRIGGERS = tuple(
    (table, f"{table}_summaries_{operation}")
    for table in SOURCE_TABLES
    for operation in ("insert", "update", "delete")
)


def rebuild_summaries(connection: Connection) -> None:
    """Recompute every summary table from the source tables, in the caller's transaction."""
    connection.execute(text("SELECT analytics_rebuild()"))


@contextmanager
def bulk_load(connection: Connection) -> Iterator[None]:
    """Load source rows (COPY, INSERT … SELECT) without per-statement summary upkeep.

    The triggers are disabled inside the caller's transaction and the summaries rebuilt
    once at the end, which is far cheaper for millions of rows. ALTER TABLE locks the
    source tables against other writers until the transaction ends, so no concurrent
    write can slip past the summaries.
    """
    for table, trigger in SUMMARY_TRIGGERS:
        connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
    yield
    for table, trigger in SUMMARY_TRIGGERS:
        connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
    rebuild_summaries(connection)
