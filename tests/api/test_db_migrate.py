"""`POST /api/db-migrate`: one transaction, dry runs, failures and the audit.

Its role and what the role may not do are in test_db_migrate_role.py, its limits in
test_db_migrate_limits.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from db_migrate_calls import migrate_audit as _migrate_audit
from db_migrate_calls import migrate_body as _migrate
from sqlalchemy import Engine, inspect, text

from coursedesk.db.engine import Database
from coursedesk.system.sql_script import Statement, split_statements

CREATE_AND_FILL = """
CREATE TABLE scripts.lesson_rooms (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO scripts.lesson_rooms VALUES (1, 'red; blue'), (2, $$it's "green"$$);
"""


def _tables(sync_engine: Engine, schema: str = "scripts") -> set[str]:
    return set(inspect(sync_engine).get_table_names(schema=schema))


async def test_applies_the_sql_in_one_go(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    response = await client.post(
        "/api/db-migrate", json=_migrate(CREATE_AND_FILL), headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "applied": True,
        "dry_run": False,
        "statements": 2,
        "results": [
            {"command": "CREATE TABLE", "rowcount": None, "columns": None, "rows": None},
            {"command": "INSERT 0 2", "rowcount": 2, "columns": None, "rows": None},
        ],
        "truncated": False,
        "message": "applied 2 statement(s)",
    }
    with sync_engine.connect() as connection:
        names = connection.execute(
            text("SELECT name FROM scripts.lesson_rooms ORDER BY id")
        ).scalars()
        assert list(names) == ["red; blue", 'it\'s "green"']
    [entry] = _migrate_audit(sync_engine)
    assert (entry.actor, entry.target_type) == ("token:test-admin", "database")
    assert entry.details == {
        "sql": CREATE_AND_FILL,
        "description": "rooms",
        "dry_run": False,
        "outcome": "applied",
        "statements": 2,
    }


async def test_a_dry_run_rolls_back(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    response = await client.post(
        "/api/db-migrate", json=_migrate(CREATE_AND_FILL, dry_run=True), headers=admin_headers
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["applied"], body["dry_run"], body["statements"]) == (False, True, 2)
    assert body["results"][1]["command"] == "INSERT 0 2"
    assert "rolled back" in body["message"]
    assert "lesson_rooms" not in _tables(sync_engine)
    [entry] = _migrate_audit(sync_engine)
    assert (entry.details["outcome"], entry.details["dry_run"]) == ("dry_run", True)


async def test_an_error_rolls_back_everything_and_answers_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    sql = CREATE_AND_FILL + "UPDATE no_such_table SET x = 1;\n"
    response = await client.post("/api/db-migrate", json=_migrate(sql), headers=admin_headers)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == 'relation "no_such_table" does not exist (line 4)'
    assert (body["sqlstate"], body["line"]) == ("42P01", 4)
    assert "lesson_rooms" not in _tables(sync_engine)
    [entry] = _migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed"
    assert entry.details["error"] == body["error"]
    assert entry.details["sql"] == sql


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        (
            "CREATE TABLE scripts.doubled (x int UNIQUE DEFERRABLE INITIALLY DEFERRED); "
            "INSERT INTO scripts.doubled VALUES (1), (1)",
            'duplicate key value violates unique constraint "doubled_x_key"',
        ),
        (
            "CREATE TABLE scripts.doubled (x int); SET LOCAL transaction_read_only = on",
            "cannot execute UPDATE in a read-only transaction",
        ),
    ],
)
async def test_a_failure_at_the_audit_entry_or_the_commit_answers_400(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    sql: str,
    error: str,
) -> None:
    response = await client.post("/api/db-migrate", json=_migrate(sql), headers=admin_headers)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert "doubled" not in _tables(sync_engine)
    [entry] = _migrate_audit(sync_engine)
    assert (entry.details["outcome"], entry.details["error"]) == ("failed", error)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE scripts.escaped (id int); COMMIT; DROP TABLE scripts.escaped",
        "create table scripts.escaped (id int);\nend",
        "begin; create table scripts.escaped (id int)",
        "CREATE TABLE scripts.escaped (id int); SAVEPOINT s; ROLLBACK TO SAVEPOINT s",
        "CREATE TABLE scripts.escaped (id int); PREPARE TRANSACTION 'x'",
    ],
)
async def test_transaction_control_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine, sql: str
) -> None:
    response = await client.post(
        "/api/db-migrate", json=_migrate(sql, dry_run=True), headers=admin_headers
    )
    assert response.status_code == 400
    assert "controls the transaction" in response.json()["error"]
    assert "escaped" not in _tables(sync_engine)
    [entry] = _migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed"


async def test_a_commit_after_begin_atomic_outside_a_function_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text("INSERT INTO bookings (id, user_id, confirmed) VALUES (1, 5, 1)"))
    sql = (
        "CREATE TEMP VIEW v AS SELECT begin atomic FROM (SELECT 1 AS begin) s; COMMIT; "
        "CREATE TABLE scripts.leak (id int); "
        "UPDATE bookings SET referral_code = 'LEAK' WHERE id = 1"
    )
    response = await client.post(
        "/api/db-migrate", json=_migrate(sql, dry_run=True), headers=admin_headers
    )
    assert response.status_code == 400
    assert "statement 2 (COMMIT) controls the transaction" in response.json()["error"]
    assert "leak" not in _tables(sync_engine)
    with sync_engine.connect() as connection:
        code = connection.scalar(text("SELECT referral_code FROM bookings WHERE id = 1"))
    assert code is None
    [entry] = _migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed"


@pytest.mark.parametrize("after_commit", ["SELECT 1", "SELECT 1 / 0"])
async def test_a_script_that_ends_its_transaction_fails(
    monkeypatch: pytest.MonkeyPatch,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    after_commit: str,
) -> None:
    # Should check_script miss a COMMIT, the run must still not claim a rollback it lost.
    monkeypatch.setattr("coursedesk.system.migrate.check_script", lambda script, dry_run: None)
    response = await client.post(
        "/api/db-migrate",
        json=_migrate(
            f"CREATE TABLE scripts.escaped (id int); COMMIT; {after_commit}", dry_run=True
        ),
        headers=admin_headers,
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("the script ended the transaction it was run in")
    [entry] = _migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed"
    assert entry.details["error"] == response.json()["error"]


def _booking(sync_engine: Engine) -> int:
    with sync_engine.begin() as connection:
        booking = connection.scalar(
            text("INSERT INTO bookings (user_id, confirmed) VALUES (5, 1) RETURNING id")
        )
    return int(booking)


def _confirmed(sync_engine: Engine, booking: int) -> Any:
    with sync_engine.connect() as connection:
        return connection.scalar(
            text("SELECT confirmed FROM bookings WHERE id = :i"), {"i": booking}
        )


@pytest.mark.parametrize(
    "disguised_commit",
    [
        "CREATE DOMAIN scripts.\"\u00a0e\" AS text; SELECT scripts.\u00a0e'\\'; COMMIT; SELECT 'x'",
        "SELECT 1; -- note\rCOMMIT; SELECT 2",
    ],
)
async def test_a_dry_run_cannot_be_made_to_commit(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    disguised_commit: str,
) -> None:
    booking = _booking(sync_engine)
    sql = f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}; {disguised_commit}"
    response = await client.post(
        "/api/db-migrate", json=_migrate(sql, dry_run=True), headers=admin_headers
    )
    assert response.status_code == 400, response.text
    assert _confirmed(sync_engine, booking) == 1


async def test_statements_are_sent_one_by_one_so_a_missed_commit_fails(
    monkeypatch: pytest.MonkeyPatch,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    # Should the splitter and the server ever disagree on where a statement ends, the
    # server refuses a string of several commands instead of running them.
    monkeypatch.setattr("coursedesk.system.migrate.check_script", lambda script, dry_run: None)
    monkeypatch.setattr(
        "coursedesk.system.sql_runner.split_statements",
        lambda script: [Statement(script, ("update",))],
    )
    booking = _booking(sync_engine)
    sql = f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}; COMMIT; SELECT 1"
    response = await client.post(
        "/api/db-migrate", json=_migrate(sql, dry_run=True), headers=admin_headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "cannot insert multiple commands into a prepared statement"
    assert _confirmed(sync_engine, booking) == 1


async def test_source_rows_it_changes_are_audited_in_the_admins_name(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text("INSERT INTO bookings (user_id, confirmed) VALUES (5, 1)"))
    response = await client.post(
        "/api/db-migrate",
        json=_migrate("UPDATE bookings SET confirmed = 2 WHERE user_id = 5"),
        headers=admin_headers,
    )
    assert response.json()["results"] == [
        {"command": "UPDATE 1", "rowcount": 1, "columns": None, "rows": None}
    ]
    with sync_engine.connect() as connection:
        actor, source = connection.execute(
            text("SELECT actor, source FROM audit_log WHERE action = 'booking.update'")
        ).one()
    assert (actor, source) == ("token:test-admin", "app")


async def test_session_settings_it_makes_do_not_leak_into_the_pool(
    client: httpx.AsyncClient,
    database: Database,
    admin_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    sql = "SET search_path TO pg_catalog; SET application_name TO 'leaked'; SELECT 1"
    response = await client.post("/api/db-migrate", json=_migrate(sql), headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["statements"] == 3
    assert len(_migrate_audit(sync_engine)) == 1

    # Holding one more connection than the pool keeps makes every pooled one come out.
    engine = database.primary
    pooled = engine.sync_engine.pool.checkedin()
    connections = [await engine.connect() for _ in range(pooled + 1)]
    try:
        for connection in connections:
            name = await connection.scalar(text("SELECT current_setting('application_name')"))
            assert name != "leaked"
    finally:
        for connection in connections:
            await connection.close()


async def test_only_admins_may_migrate(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    viewer_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    body = _migrate("CREATE TABLE scripts.not_yours (id int)")
    assert (await client.post("/api/db-migrate", json=body)).status_code == 401
    for headers in (operator_headers, viewer_headers):
        response = await client.post("/api/db-migrate", json=body, headers=headers)
        assert response.status_code == 403
    assert "not_yours" not in _tables(sync_engine)
    assert _migrate_audit(sync_engine) == []


@pytest.mark.parametrize(
    "body",
    [
        {"sql": "", "description": "empty"},
        {"sql": "SELECT 1", "description": "  "},
        {"sql": "SELECT 1"},
        {"sql": "SELECT 1", "description": "x", "dry_run": "perhaps"},
        {"sql": "SELECT 1", "description": "x", "commit": True},
        {"sql": "SELECT '\x00'", "description": "x"},
        {"sql": "SELECT 1;" + " " * 100_000, "description": "x"},
    ],
)
async def test_bad_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    body: dict[str, Any],
) -> None:
    response = await client.post("/api/db-migrate", json=body, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["error"]
    assert _migrate_audit(sync_engine) == []


async def test_sql_without_statements_is_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    response = await client.post(
        "/api/db-migrate", json=_migrate("-- nothing\n;;"), headers=admin_headers
    )
    assert response.status_code == 400
    assert response.json()["error"] == "the SQL holds no statement"
    assert len(_migrate_audit(sync_engine)) == 1


@pytest.mark.parametrize(
    ("script", "first_words"),
    [
        ("select 1; commit", ["select", "commit"]),
        ("select 'a;commit'; select $$;commit$$; select $f$ ; $ff$ $f$", ["select"] * 3),
        ("select e'\\';commit'; select 2", ["select", "select"]),
        ("select 'it''s'; -- ; commit\n/* a /* ; */ commit */ select 2", ["select", "select"]),
        ('select "a;""commit"', ["select"]),
        ("select a$b$c from t; select $1", ["select", "select"]),
        ("  ;; -- only comments\n /* and this */", []),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; "
            "SELECT CASE WHEN true THEN 1 END; END; rollback",
            ["create", "rollback"],
        ),
        (
            "create function begin() returns int as 'select 1' language sql; commit",
            ["create", "commit"],
        ),
        (
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT 1; END; commit",
            ["create", "commit"],
        ),
        (
            "create view v as select begin atomic from (select 1 as begin) s; commit; select 1",
            ["create", "commit", "select"],
        ),
        # A no-break space is part of a word to PostgreSQL, not a space: no E'' string here.
        ("select scripts.\u00a0e'\\'; commit; select 'x'", ["select", "commit", "select"]),
        # A comment ends at a carriage return as at a newline.
        ("select 1; -- note\rcommit; select 2", ["select", "commit", "select"]),
    ],
)
def test_the_script_splitter_sees_statements_as_postgres_does(
    script: str, first_words: list[str]
) -> None:
    assert [statement.leading_words[0] for statement in split_statements(script)] == first_words


@pytest.mark.parametrize(
    ("statement", "controls"),
    [
        ("COMMIT", True),
        ("end", True),
        ("Begin", True),
        ("start transaction", True),
        ("abort", True),
        ("savepoint s", True),
        ("release s", True),
        ("rollback to s", True),
        ("prepare transaction 'x'", True),
        ("commit prepared 'x'", True),
        ("prepare q as select 1", False),
        ("select 1", False),
        ('"commit"', False),
        ("(select 1)", False),
        ("create function begin() returns int language sql as 'select 1'", False),
    ],
)
def test_transaction_control_is_recognised(statement: str, controls: bool) -> None:
    [found] = split_statements(statement)
    assert found.controls_transaction is controls
