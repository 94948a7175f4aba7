"""`POST /api/db-migrate` runs a script as the role coursedesk_scripts: the data fixes it
may make, and what it may not do however it tries (each attack of issue 10 is a test
here or in test_db_migrate_limits.py)."""

from __future__ import annotations

import asyncio
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from db_migrate_calls import migrate_audit, migrate_body
from sqlalchemy import Engine, text

from coursedesk.db.engine import libpq_url
from coursedesk.system.relay import Relay

ADMIN = "token:test-admin"


async def _run(
    client: httpx.AsyncClient, headers: dict[str, str], sql: str, *, dry_run: bool = False
) -> httpx.Response:
    return await client.post(
        "/api/db-migrate", json=migrate_body(sql, dry_run=dry_run), headers=headers
    )


def _booking(sync_engine: Engine, *, user_id: int = 5) -> int:
    with sync_engine.begin() as connection:
        booking_id = connection.scalar(
            text("INSERT INTO bookings (user_id, confirmed) VALUES (:u, 1) RETURNING id"),
            {"u": user_id},
        )
    return int(booking_id)


def _scalar(sync_engine: Engine, sql: str, **parameters: Any) -> Any:
    with sync_engine.connect() as connection:
        return connection.scalar(text(sql), parameters)


def _refused(response: httpx.Response, error: str | None = None) -> None:
    assert response.status_code == 400, response.text
    if error is not None:
        assert response.json()["error"].startswith(error), response.json()


@pytest.fixture
def server_file() -> Iterator[tuple[str, str]]:
    """A file on the database server's machine (path, contents) no script may read."""
    secret = f"secret-{uuid.uuid4().hex}"
    path = Path(f"/tmp/coursedesk-{uuid.uuid4().hex}")
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(0o644)
    yield str(path), secret
    path.unlink()


def _connection_of(database_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(libpq_url(database_url), autocommit=True)


# What staff may do


async def test_a_select_answers_its_columns_and_rows_as_text(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    first = _booking(sync_engine, user_id=7)
    response = await _run(
        client, admin_headers, "SELECT id, user_id, referral_code FROM bookings ORDER BY id"
    )
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result == {
        "command": "SELECT 1",
        "rowcount": 1,
        "columns": ["id", "user_id", "referral_code"],
        "rows": [[str(first), "7", None]],
    }
    assert response.json()["truncated"] is False


async def test_a_dry_run_of_a_fix_answers_what_it_would_do_and_keeps_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    booking = _booking(sync_engine)
    sql = (
        "CREATE TABLE scripts.bookings_before AS SELECT * FROM bookings;\n"
        f"UPDATE bookings SET confirmed = 2, referral_code = 'FIX' WHERE id = {booking};\n"
        "INSERT INTO bookings (user_id, confirmed) VALUES (6, 1) RETURNING user_id;"
    )
    response = await _run(client, admin_headers, sql, dry_run=True)
    assert response.status_code == 200, response.text
    commands = [result["command"] for result in response.json()["results"]]
    assert commands == ["SELECT 1", "UPDATE 1", "INSERT 0 1"]
    assert response.json()["results"][2]["rows"] == [["6"]]
    assert _scalar(sync_engine, "SELECT confirmed FROM bookings WHERE id = :i", i=booking) == 1
    assert _scalar(sync_engine, "SELECT count(*) FROM bookings") == 1
    assert _scalar(sync_engine, "SELECT to_regclass('scripts.bookings_before')") is None
    assert _scalar(sync_engine, "SELECT count(*) FROM audit_log WHERE source <> 'app'") == 0


async def test_a_fix_is_applied_and_its_tables_stay_in_the_scripts_schema(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    booking = _booking(sync_engine)
    sql = (
        "CREATE TABLE scripts.bookings_before AS SELECT * FROM bookings;\n"
        f"UPDATE bookings SET confirmed = -1 WHERE id = {booking};\n"
        "INSERT INTO bookings (user_id, confirmed) VALUES (6, 2);\n"
        "DELETE FROM events;"
    )
    response = await _run(client, admin_headers, sql)
    assert response.status_code == 200, response.text
    assert _scalar(sync_engine, "SELECT confirmed FROM bookings WHERE id = :i", i=booking) == -1
    assert _scalar(sync_engine, "SELECT count(*) FROM scripts.bookings_before") == 1
    assert _scalar(sync_engine, "SELECT count(*) FROM bookings") == 2


# The attacks of issue 10


async def test_a_dry_run_cannot_set_a_sequence_back(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    for user_id in range(3):
        _booking(sync_engine, user_id=user_id)
    response = await _run(
        client, admin_headers, "SELECT setval('bookings_id_seq', 1)", dry_run=True
    )
    _refused(response, "permission denied for sequence bookings_id_seq")
    # The bot's next insert still finds a free id.
    _booking(sync_engine, user_id=9)
    assert _scalar(sync_engine, "SELECT count(*) FROM bookings") == 4


async def test_a_script_cannot_end_another_session(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    database_url: str,
) -> None:
    with _connection_of(database_url) as bot:
        pid = bot.info.backend_pid
        for function in ("pg_terminate_backend", "pg_cancel_backend"):
            response = await _run(client, admin_headers, f"SELECT {function}({pid})", dry_run=True)
            _refused(response)
        assert bot.execute("SELECT 1").fetchone() == (1,)


def _has_extension(sync_engine: Engine, name: str) -> bool:
    return bool(
        _scalar(sync_engine, "SELECT count(*) FROM pg_extension WHERE extname = :n", n=name)
    )


@pytest.mark.parametrize("extension", ["dblink", "postgres_fdw"])
async def test_no_extension_can_be_created(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine, extension: str
) -> None:
    response = await _run(client, admin_headers, f"CREATE EXTENSION {extension}")
    _refused(response, f'permission denied to create extension "{extension}"')
    assert not _has_extension(sync_engine, extension)


async def test_dblink_installed_by_the_owner_cannot_write_past_a_dry_run(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    database_url: str,
) -> None:
    if not _scalar(
        sync_engine, "SELECT count(*) FROM pg_available_extensions WHERE name = 'dblink'"
    ):
        pytest.skip("this PostgreSQL has no dblink")
    with sync_engine.begin() as connection:
        connection.execute(text("CREATE EXTENSION dblink"))
    booking = _booking(sync_engine)
    with _connection_of(database_url) as connection:
        info = connection.info
        target = f"host={info.host} port={info.port} dbname={info.dbname} user={info.user}"
    update = f"UPDATE bookings SET referral_code = ''LEAK'' WHERE id = {booking}"
    response = await _run(
        client, admin_headers, f"SELECT dblink_exec('{target}', '{update}')", dry_run=True
    )
    _refused(response)
    code = _scalar(sync_engine, "SELECT referral_code FROM bookings WHERE id = :i", i=booking)
    assert code is None


@pytest.fixture
def marker() -> Iterator[Path]:
    """A file no one has made yet; it goes at the end if someone does."""
    path = Path(f"/tmp/coursedesk-{uuid.uuid4().hex}")
    yield path
    path.unlink(missing_ok=True)


async def test_copy_cannot_run_a_program(
    client: httpx.AsyncClient, admin_headers: dict[str, str], marker: Path
) -> None:
    response = await _run(
        client, admin_headers, f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'", dry_run=True
    )
    _refused(response)
    assert "external program" in response.json()["error"]
    assert not await asyncio.to_thread(marker.exists)


async def test_no_role_can_be_created(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    name = f"coursedesk_intruder_{uuid.uuid4().hex[:12]}"
    try:
        response = await _run(client, admin_headers, f"CREATE ROLE {name} SUPERUSER LOGIN")
        _refused(response)
        assert not _scalar(sync_engine, "SELECT count(*) FROM pg_roles WHERE rolname = :n", n=name)
    finally:
        with sync_engine.begin() as connection:
            connection.execute(text(f"DROP ROLE IF EXISTS {name}"))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_read_file('{path}')::int",
        "SELECT pg_read_file('{path}')",
        "COPY bookings FROM '{path}'",
        "CREATE TEMP TABLE f (line text); COPY f FROM '{path}'; SELECT * FROM f",
    ],
)
async def test_no_server_file_is_read_nor_leaks_in_an_error(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    server_file: tuple[str, str],
    sql: str,
) -> None:
    path, secret = server_file
    response = await _run(client, admin_headers, sql.format(path=path), dry_run=True)
    _refused(response)
    assert (
        "permission denied" in response.json()["error"]
        or "pg_read_server_files" in (response.json()["error"])
    )
    assert secret not in response.text
    [entry] = migrate_audit(sync_engine)
    assert secret not in str(entry.details)


@pytest.mark.parametrize(
    "forgery",
    [
        "SELECT set_config('coursedesk.actor', 'someone-else', true);",
        "SET coursedesk.actor = 'someone-else';",
        # A temporary table found before the real one, as pg_temp is unless named last.
        "CREATE TEMP TABLE audit_log (actor text, action text, target_type text, "
        "target_id text, before jsonb, after jsonb, source text);",
        "CREATE TEMP TABLE script_runs (backend_pid int, actor text);"
        "INSERT INTO script_runs VALUES (pg_backend_pid(), 'someone-else');",
    ],
)
async def test_the_audit_of_a_change_names_the_caller_whatever_the_script_sets(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine, forgery: str
) -> None:
    booking = _booking(sync_engine)
    sql = f"{forgery}\nUPDATE bookings SET confirmed = 2 WHERE id = {booking}"
    response = await _run(client, admin_headers, sql)
    assert response.status_code == 200, response.text
    with sync_engine.connect() as connection:
        entries = connection.execute(
            text("SELECT actor, source, target_id FROM audit_log WHERE action = 'booking.update'")
        ).all()
    assert [tuple(entry) for entry in entries] == [(ADMIN, "app", str(booking))]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO audit_log (actor, action) VALUES ('someone-else', 'booking.update')",
        "DELETE FROM audit_log",
        "UPDATE script_runs SET actor = 'someone-else'",
    ],
)
async def test_the_audit_log_is_out_of_a_scripts_reach(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine, sql: str
) -> None:
    _refused(await _run(client, admin_headers, sql), "permission denied for table")
    assert _scalar(sync_engine, "SELECT count(*) FROM audit_log WHERE actor = 'someone-else'") == 0


async def test_a_script_recording_its_own_run_makes_the_run_fail(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    booking = _booking(sync_engine)
    sql = (
        'SELECT public.record_script_run(\'{"outcome": "applied", "sql": "SELECT 1"}\');\n'
        f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}"
    )
    response = await _run(client, admin_headers, sql)
    _refused(response, "this script run is not registered, or was recorded already")
    assert _scalar(sync_engine, "SELECT confirmed FROM bookings WHERE id = :i", i=booking) == 1
    [entry] = migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed" and entry.details["sql"] == sql


async def test_a_function_of_the_script_cannot_stand_in_for_the_audit_entry(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    sql = (
        "CREATE FUNCTION scripts.record_script_run(details jsonb) RETURNS void "
        "LANGUAGE sql AS 'SELECT NULL';\n"
        "SET search_path = scripts, public;\n"
        "UPDATE courses SET name = name"
    )
    response = await _run(client, admin_headers, sql)
    assert response.status_code == 200, response.text
    [entry] = migrate_audit(sync_engine)
    assert (entry.actor, entry.details["outcome"]) == (ADMIN, "applied")


def _app_user(database_url: str) -> str:
    with _connection_of(database_url) as connection:
        return connection.info.user


@pytest.mark.parametrize(
    "escape",
    [
        "RESET ROLE;",
        "SET ROLE {user};",
        "SELECT set_config('role', '{user}', false);",
        "SET SESSION AUTHORIZATION {user};",
        "DO $$ BEGIN EXECUTE 'RESET ROLE'; EXECUTE 'SET ROLE {user}'; END $$;",
    ],
)
async def test_the_role_cannot_be_left(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    database_url: str,
    server_file: tuple[str, str],
    escape: str,
) -> None:
    path, secret = server_file
    sql = escape.format(user=_app_user(database_url)) + f"\nSELECT pg_read_file('{path}')"
    response = await _run(client, admin_headers, sql, dry_run=True)
    _refused(response)
    assert "permission denied" in response.json()["error"]
    assert secret not in response.text


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("ALTER TABLE api_tokens ADD COLUMN note text", "must be owner of table api_tokens"),
        ("DROP TABLE bookings", "must be owner of table bookings"),
        ("CREATE TABLE lesson_rooms (id int)", "permission denied for schema public"),
        # TRUNCATE would skip the audit and capture triggers.
        ("TRUNCATE bookings", "permission denied for table bookings"),
        ("SELECT token_hash FROM api_tokens", "permission denied for table api_tokens"),
        ("SELECT * FROM web_sessions", "permission denied for table web_sessions"),
        ("UPDATE analytics_changes SET sign = 0", "permission denied for table analytics_changes"),
        ("UPDATE message_recipients SET delivery_status = 'sent'", "permission denied for table"),
        ("ALTER TABLE bookings DISABLE TRIGGER USER", "must be owner of table bookings"),
        ("SET session_replication_role = replica", "permission denied to set parameter"),
    ],
)
async def test_the_apps_schema_credentials_and_bookkeeping_are_out_of_reach(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sql: str, error: str
) -> None:
    _refused(await _run(client, admin_headers, sql, dry_run=True), error)


async def test_copy_with_the_client_is_refused_with_a_reason(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    booking = _booking(sync_engine)
    sql = f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}; COPY bookings TO STDOUT"
    response = await _run(client, admin_headers, sql)
    _refused(response, "COPY to STDOUT or from STDIN cannot be used here")
    assert _scalar(sync_engine, "SELECT confirmed FROM bookings WHERE id = :i", i=booking) == 1


async def test_session_defaults_a_script_gives_its_role_do_not_reach_the_next_run(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    database = _scalar(sync_engine, "SELECT current_database()")
    sql = (
        f'ALTER ROLE coursedesk_scripts IN DATABASE "{database}" '
        "SET default_transaction_read_only = on"
    )
    assert (await _run(client, admin_headers, sql)).status_code == 200
    booking = _booking(sync_engine)
    response = await _run(
        client, admin_headers, f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}"
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("grant", "revoke", "excess"),
    [
        (
            'GRANT CREATE ON DATABASE "{database}" TO coursedesk_scripts',
            'REVOKE CREATE ON DATABASE "{database}" FROM coursedesk_scripts',
            "may create schemas and extensions",
        ),
        (
            "GRANT CREATE ON SCHEMA public TO coursedesk_scripts",
            "REVOKE CREATE ON SCHEMA public FROM coursedesk_scripts",
            "may create objects in schema public",
        ),
    ],
)
async def test_scripts_do_not_run_when_the_role_may_do_more(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    grant: str,
    revoke: str,
    excess: str,
) -> None:
    database = _scalar(sync_engine, "SELECT current_database()")
    booking = _booking(sync_engine)
    with sync_engine.begin() as connection:
        connection.execute(text(grant.format(database=database)))
    try:
        response = await _run(
            client, admin_headers, f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}"
        )
    finally:
        with sync_engine.begin() as connection:
            connection.execute(text(revoke.format(database=database)))
    assert response.status_code == 503
    assert response.json()["error"] == (
        f"scripts cannot run safely: the role coursedesk_scripts {excess}; "
        "take those rights away from it"
    )
    assert _scalar(sync_engine, "SELECT confirmed FROM bookings WHERE id = :i", i=booking) == 1
    [entry] = migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed"


async def test_no_one_else_can_connect_through_the_relay(
    monkeypatch: pytest.MonkeyPatch,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    # Through the relay, a connection reaches the server from the app: over a Unix socket
    # with peer authentication, as the app's own OS user.
    relays: list[Relay] = []

    class Recorded(Relay):
        async def __aenter__(self) -> Relay:
            relays.append(await super().__aenter__())
            return self

    monkeypatch.setattr("coursedesk.system.scripts.Relay", Recorded)
    run = asyncio.create_task(
        client.post(
            "/api/db-migrate", json=migrate_body("SELECT pg_sleep(1.5)"), headers=admin_headers
        )
    )
    url = sync_engine.url

    def connect_through_the_relay() -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not relays:
            time.sleep(0.02)
        time.sleep(0.3)
        [relay] = relays
        host = getattr(relay, "host", "127.0.0.1")
        if host.startswith("/"):
            assert stat.S_IMODE(os.stat(host).st_mode) == 0o700
        try:
            with psycopg.connect(
                host=host,
                port=relay.port,
                user=url.username,
                password=url.password,
                dbname=url.database,
                sslmode="disable",
                connect_timeout=2,
            ) as other:
                return str(other.execute("SELECT current_user").fetchone())
        except psycopg.OperationalError:
            return "refused"

    assert await asyncio.to_thread(connect_through_the_relay) == "refused"
    response = await run
    assert response.status_code == 200, response.text
