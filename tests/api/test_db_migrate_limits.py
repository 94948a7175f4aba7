"""`POST /api/db-migrate` keeps a script to its limits from outside it: its time, its lock
waits, the locks a dry run may hold, and what its results may put in the app's memory."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from typing import Any

import httpx
import pytest
from db_migrate_calls import (
    CATCHES_ITS_CANCEL,
    migrate_audit,
    migrate_body,
    row_is_free,
    script_backends,
    script_limits_of,
)
from fastapi import FastAPI
from sqlalchemy import Engine, text


async def _run(
    client: httpx.AsyncClient, headers: dict[str, str], sql: str, *, dry_run: bool = False
) -> httpx.Response:
    return await client.post(
        "/api/db-migrate", json=migrate_body(sql, dry_run=dry_run), headers=headers
    )


def _booking(sync_engine: Engine) -> int:
    with sync_engine.begin() as connection:
        booking_id = connection.scalar(
            text("INSERT INTO bookings (user_id, confirmed) VALUES (5, 1) RETURNING id")
        )
    return int(booking_id)


def _confirmed(sync_engine: Engine, booking: int) -> Any:
    with sync_engine.connect() as connection:
        return connection.scalar(
            text("SELECT confirmed FROM bookings WHERE id = :i"), {"i": booking}
        )


@pytest.mark.parametrize(
    "sql",
    [
        "SET statement_timeout = 0; SELECT pg_sleep(5)",
        "SELECT set_config('statement_timeout', '0', false); SELECT pg_sleep(5)",
        "SELECT pg_sleep(5)",
        # The limit is the whole script's, not each statement's.
        "SELECT pg_sleep(0.3); SELECT pg_sleep(0.3); SELECT pg_sleep(0.3); SELECT pg_sleep(0.3)",
    ],
)
async def test_the_time_limit_holds_whatever_the_script_sets(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    sql: str,
) -> None:
    booking = _booking(sync_engine)
    started = time.monotonic()
    with script_limits_of(app, seconds=0.5):
        response = await _run(
            client, admin_headers, f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}; {sql}"
        )
    assert time.monotonic() - started < 3
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (
        "the script ran past its time limit of 0.5 s and was stopped; nothing was kept"
    )
    assert response.json()["sqlstate"] == "57014"
    assert _confirmed(sync_engine, booking) == 1
    [entry] = migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed"


async def test_a_lock_wait_is_bounded_whatever_the_script_sets(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    booking = _booking(sync_engine)
    with sync_engine.connect() as holder:
        holder.execute(text("SELECT 1 FROM bookings WHERE id = :i FOR UPDATE"), {"i": booking})
        started = time.monotonic()
        with script_limits_of(app, seconds=10, lock_wait_seconds=0.3):
            response = await _run(
                client,
                admin_headers,
                f"SET lock_timeout = 0; UPDATE bookings SET confirmed = 2 WHERE id = {booking}",
            )
        holder.rollback()
    assert time.monotonic() - started < 3
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (
        "the script waited for a lock longer than 0.3 s and was stopped; nothing was kept"
    )


async def test_a_dry_run_may_not_lock_a_table(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    response = await _run(
        client, admin_headers, "SELECT 1;\nLOCK TABLE bookings; SELECT pg_sleep(5)", dry_run=True
    )
    assert response.status_code == 400
    assert response.json()["error"] == (
        "statement 2 (LOCK TABLE) would hold other sessions' writes until the dry run ends; "
        "a dry run may not lock tables"
    )
    [entry] = migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed"


async def _insert_while_running(
    client: httpx.AsyncClient, headers: dict[str, str], sync_engine: Engine, sql: str
) -> tuple[httpx.Response, float]:
    """Run `sql` as a dry run; once it is under way, time a bot's one-row insert."""
    run = asyncio.create_task(_run(client, headers, sql, dry_run=True))

    def insert_when_under_way() -> float:
        with sync_engine.connect() as connection:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE state = 'active' AND query LIKE '%pg_sleep(5)%' "
                    "AND pid <> pg_backend_pid()"
                )
            ):
                time.sleep(0.02)
            started = time.monotonic()
            connection.execute(text("INSERT INTO bookings (user_id, confirmed) VALUES (8, 1)"))
            connection.commit()
            return time.monotonic() - started

    waited = await asyncio.to_thread(insert_when_under_way)
    return await run, waited


@pytest.mark.parametrize(
    "sql",
    [
        "DO $$ BEGIN LOCK TABLE bookings; PERFORM pg_sleep(5); END $$",
        "DO $$ BEGIN EXECUTE 'LOCK TABLE bookings IN SHARE MODE'; PERFORM pg_sleep(5); END $$",
        "SELECT pg_advisory_lock(7); SELECT pg_sleep(5)",
    ],
)
async def test_a_dry_run_holding_the_bots_writes_is_stopped_at_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine, sql: str
) -> None:
    response, waited = await _insert_while_running(client, admin_headers, sync_engine, sql)
    assert waited < 1.5
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (
        "a dry run may not take a lock that stops other sessions' writes (LOCK TABLE, an "
        "advisory lock); it was stopped and nothing was kept"
    )


async def test_an_applied_script_may_lock_a_table_within_its_limits(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sql = "LOCK TABLE courses IN SHARE ROW EXCLUSIVE MODE; UPDATE courses SET name = name"
    response = await _run(client, admin_headers, sql)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT repeat('x', 16 * 1024 * 1024)",
        "SELECT repeat('x', 1024) FROM generate_series(1, 16 * 1024)",
        "DO $$ BEGIN RAISE NOTICE '%', repeat('x', 16 * 1024 * 1024); END $$",
    ],
)
async def test_results_past_the_byte_limit_stop_the_script(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
    sql: str,
) -> None:
    booking = _booking(sync_engine)
    with script_limits_of(app, received_bytes=1024 * 1024):
        response = await _run(
            client, admin_headers, f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}; {sql}"
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (
        "the script's results passed 1 MB, more than the app takes in; it was stopped and "
        "nothing was kept (return fewer rows, or count them)"
    )
    assert _confirmed(sync_engine, booking) == 1
    [entry] = migrate_audit(sync_engine)
    assert entry.details["outcome"] == "failed"


async def test_a_large_result_does_not_grow_the_app(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # 256 MB of rows, as the attack's gigabyte but lighter on the test machine.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    response = await _run(
        client, admin_headers, "SELECT repeat('x', 1024 * 1024) FROM generate_series(1, 256)"
    )
    grown_megabytes = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_megabytes < 64
    assert response.status_code == 400
    assert response.json()["error"].startswith("the script's results passed 8 MB")


async def test_the_answer_keeps_the_first_rows_and_says_it_left_some_out(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sql = (
        "SELECT g FROM generate_series(1, 150) AS g;\n"
        "SELECT repeat('x', 300) FROM generate_series(1, 3);\n"
        "SELECT 'late'"
    )
    with script_limits_of(app, answer_rows=151, answer_bytes=150 * 3 + 400):
        response = await _run(client, admin_headers, sql)
    assert response.status_code == 200, response.text
    body = response.json()
    numbers, repeats, late = body["results"]
    assert (numbers["rowcount"], len(numbers["rows"]), numbers["rows"][-1]) == (150, 150, ["150"])
    # The 150 numbers take 342 bytes, so one 300-byte row still fits, and then none.
    assert (repeats["rowcount"], len(repeats["rows"]), late["rows"]) == (3, 1, [])
    assert body["truncated"] is True
    assert body["message"] == (
        "applied 3 statement(s); the answer holds the first rows only (at most 151, and "
        "850 bytes of values)"
    )


async def test_a_script_that_catches_its_cancel_is_ended_at_its_limit(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    booking = _booking(sync_engine)
    started = time.monotonic()
    with script_limits_of(app, seconds=0.5):
        response = await asyncio.wait_for(
            _run(
                client,
                admin_headers,
                f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}; {CATCHES_ITS_CANCEL}",
            ),
            10,
        )
    assert time.monotonic() - started < 4
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (
        "the script ran past its time limit of 0.5 s and was stopped; nothing was kept"
    )
    assert script_backends(sync_engine) == 0
    assert row_is_free(sync_engine, booking)
    assert _confirmed(sync_engine, booking) == 1


async def test_a_script_whose_request_is_dropped_is_ended(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    booking = _booking(sync_engine)
    run = asyncio.create_task(
        _run(
            client,
            admin_headers,
            f"UPDATE bookings SET confirmed = 2 WHERE id = {booking}; {CATCHES_ITS_CANCEL}",
        )
    )

    def wait_until_running() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not script_backends(sync_engine):
            time.sleep(0.02)
        time.sleep(0.3)

    await asyncio.to_thread(wait_until_running)
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    assert script_backends(sync_engine) == 0
    assert row_is_free(sync_engine, booking)
    assert _confirmed(sync_engine, booking) == 1


async def test_a_script_taking_the_login_lock_cannot_stop_the_next_run(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    with script_limits_of(app, seconds=0.5):
        first = await asyncio.wait_for(
            _run(
                client, admin_headers, f"SELECT pg_advisory_lock(7130412003); {CATCHES_ITS_CANCEL}"
            ),
            10,
        )
    assert first.status_code == 400, first.text
    started = time.monotonic()
    second = await asyncio.wait_for(_run(client, admin_headers, "SELECT 1"), 10)
    assert second.status_code == 200, second.text
    assert time.monotonic() - started < 3


async def test_waiting_for_the_login_lock_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    monkeypatch.setattr("coursedesk.system.script_role.LOGIN_WAIT_SECONDS", 0.5)
    with sync_engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(7130412003)"))
        started = time.monotonic()
        response = await asyncio.wait_for(_run(client, admin_headers, "SELECT 1"), 10)
        holder.execute(text("SELECT pg_advisory_unlock(7130412003)"))
    assert time.monotonic() - started < 3
    assert response.status_code == 503, response.text
    assert "logging in" in response.json()["error"]
