"""A database migrated up from nothing holds exactly what the analytics SQL files define:
every function, view and trigger they create, each as written there, and nothing the
migrations left behind (the triggers of 0002 replaced by 0007, say); and the functions of
the audit and system domains as their files write them; and each index with the storage
its model sets."""

from __future__ import annotations

import re

from sqlalchemy import Connection, Engine, text

from coursedesk.analytics.install import apply_install_scripts, install_scripts, run_script
from coursedesk.audit.install import SOURCE_CHANGE_FUNCTION
from coursedesk.db.registry import metadata
from coursedesk.system.install import SCRIPT_RUNS_FUNCTION

_DEFINED = re.compile(
    r"^CREATE OR REPLACE (?P<kind>FUNCTION|VIEW|TRIGGER) (?P<name>\w+)", re.MULTILINE
)

# Every function, view and trigger of the analytics domain, as the catalog prints it.
ANALYTICS_OBJECTS = text(
    """
    SELECT 'FUNCTION' AS kind, p.proname AS name, pg_get_functiondef(p.oid) AS definition
    FROM pg_proc AS p
    WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'analytics%'
    UNION ALL
    SELECT 'VIEW', c.relname, pg_get_viewdef(c.oid)
    FROM pg_class AS c
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'v'
      AND c.relname LIKE 'analytics%'
    UNION ALL
    SELECT 'TRIGGER', t.tgname, pg_get_triggerdef(t.oid)
    FROM pg_trigger AS t
    JOIN pg_class AS c ON c.oid = t.tgrelid
    JOIN pg_proc AS p ON p.oid = t.tgfoid
    WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace
      AND p.proname LIKE 'analytics%'
    ORDER BY 1, 2, 3
    """
)


def _objects(connection: Connection) -> list[tuple[str, str, str]]:
    return [(row.kind, row.name, row.definition) for row in connection.execute(ANALYTICS_OBJECTS)]


def _defined_in_files() -> set[tuple[str, str]]:
    return {
        (match["kind"], match["name"])
        for _, script in install_scripts()
        for match in _DEFINED.finditer(script)
    }


def test_upgrade_from_base_holds_exactly_the_analytics_sql_files(sync_engine: Engine) -> None:
    # The test database is a copy of one migrated up from base.
    with sync_engine.connect() as connection:
        migrated = _objects(connection)
        assert {(kind, name) for kind, name, _ in migrated} == _defined_in_files()
        # Applied again over it, the files change nothing.
        apply_install_scripts(connection)
        assert _objects(connection) == migrated
        connection.rollback()


def _functions(connection: Connection, names: tuple[str, ...]) -> list[tuple[str, str]]:
    rows = connection.execute(
        text(
            "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc AS p "
            "WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = ANY(:names) "
            "ORDER BY 1"
        ),
        {"names": list(names)},
    )
    return [(row[0], row[1]) for row in rows]


def test_upgrade_from_base_holds_the_audit_and_script_functions_as_written(
    sync_engine: Engine,
) -> None:
    names = ("audit_source_change", "record_script_run")
    with sync_engine.connect() as connection:
        migrated = _functions(connection, names)
        assert [name for name, _ in migrated] == list(names)
        assert all("SECURITY DEFINER" in definition for _, definition in migrated)
        for path in (SOURCE_CHANGE_FUNCTION, SCRIPT_RUNS_FUNCTION):
            run_script(connection, path.read_text(encoding="utf-8"))
        assert _functions(connection, names) == migrated
        connection.rollback()


def test_upgrade_from_base_gives_each_index_the_storage_its_model_sets(
    sync_engine: Engine,
) -> None:
    wanted = {
        index.name: {name: str(value) for name, value in options.items()}
        for table in metadata().tables.values()
        for index in table.indexes
        if (options := index.dialect_options["postgresql"]["with"])
    }
    assert wanted, "no model sets an index's storage"
    with sync_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(:names)"),
            {"names": list(wanted)},
        )
        found = {
            row.relname: dict(option.split("=", 1) for option in row.reloptions or [])
            for row in rows
        }
    assert found == wanted
