"""The analytics domain's functions, views and triggers, as the files of `sql/install/`.

Those files hold the living definition (CREATE OR REPLACE throughout); a migration
applies them. A change to one of them comes with a new migration that applies them
again, and `tests/db/test_schema_definition.py` checks that a database upgraded from
nothing holds exactly what the files say.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, text

INSTALL_DIRECTORY = Path(__file__).parent / "sql" / "install"
CAPTURE_SCRIPT = "1_capture.sql"
# The bot's tables, and the source name each one's changes are folded under (the capture
# triggers' argument in 1_capture.sql).
CAPTURED_TABLES = {
    "bookings": "booking",
    "events": "event",
    "free_lesson_registrations": "registration",
}


def install_scripts() -> list[tuple[str, str]]:
    """(file name, SQL) of every install file, in the order they are applied."""
    return [
        (path.name, path.read_text(encoding="utf-8"))
        for path in sorted(INSTALL_DIRECTORY.glob("*.sql"))
    ]


def run_script(connection: Connection, script: str) -> None:
    """Run a file of SQL statements on `connection`, in its transaction.

    The text goes to the driver untouched: SQLAlchemy would read `:30` as a parameter and
    psycopg `%I` as a placeholder, and neither is one here.
    """
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None, "the connection is closed"
    driver_connection.execute(script)


def apply_install_scripts(connection: Connection) -> None:
    """Run every install file on `connection`, in its transaction; where the capture
    reads the WAL (wal_capture.py), the capture triggers 1_capture.sql makes come off
    again."""
    for _, script in install_scripts():
        run_script(connection, script)
    if stored_capture_mode(connection) == "wal":
        drop_capture_triggers(connection)


def install_capture_triggers(connection: Connection) -> None:
    run_script(connection, (INSTALL_DIRECTORY / CAPTURE_SCRIPT).read_text(encoding="utf-8"))


def drop_capture_triggers(connection: Connection) -> None:
    for table in CAPTURED_TABLES:
        for operation in ("insert", "update", "delete", "truncate"):
            connection.execute(
                text(f'DROP TRIGGER IF EXISTS "{table}_capture_{operation}" ON "{table}"')
            )


def stored_capture_mode(connection: Connection) -> str | None:
    """analytics_fold_state.capture, or None before migration 0016 added it."""
    found = connection.execute(
        text(
            "SELECT FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'analytics_fold_state' AND column_name = 'capture'"
        )
    ).first()
    if found is None:
        return None
    return connection.execute(text("SELECT capture FROM analytics_fold_state")).scalar()
