"""The analytics domain's functions, views and triggers, as the files of `sql/install/`.

Those files hold the living definition (CREATE OR REPLACE throughout); a migration
applies them. A change to one of them comes with a new migration that applies them
again, and `tests/db/test_schema_definition.py` checks that a database upgraded from
nothing holds exactly what the files say.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection

INSTALL_DIRECTORY = Path(__file__).parent / "sql" / "install"


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
    """Run every install file on `connection`, in its transaction."""
    for _, script in install_scripts():
        run_script(connection, script)
