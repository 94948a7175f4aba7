"""Sign-in throttling: per username and per address, shared by every app process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine, text

from coursedesk.accounts import throttle
from coursedesk.config import Settings
from coursedesk.db.engine import Database, create_app_engine
from coursedesk.web.app import create_app
from coursedesk.web.deps import SESSION_COOKIE

Fixture = Any
WRONG = "not the password"


@pytest.fixture
async def second_process_client(
    settings: Settings, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another app instance with engines of its own, as another process has."""
    database = Database(create_app_engine(database_url, settings))
    application = create_app(settings, database=database)
    try:
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c
    finally:
        await database.dispose()


async def _fail(login: Fixture, client: httpx.AsyncClient, username: str, times: int) -> None:
    for _ in range(times):
        response = await login(client, username, WRONG)
        assert response.status_code == 401


async def test_a_username_is_locked_after_repeated_failures(
    client: httpx.AsyncClient, make_staff: Fixture, login: Fixture, sync_engine: Engine
) -> None:
    staff = await make_staff("alice")
    await _fail(login, client, "alice", throttle.MAX_FAILURES_PER_USERNAME)

    refused = await login(client, "alice", staff.password)
    assert refused.status_code == 429
    assert "Too many failed sign-ins for this username" in refused.text
    retry_after = int(refused.headers["retry-after"])
    assert 0 < retry_after <= throttle.WINDOW.total_seconds()
    assert SESSION_COOKIE not in client.cookies
    with sync_engine.connect() as connection:
        # The refused attempt was not even checked, so it is neither counted nor audited.
        assert connection.scalar(text("SELECT count(*) FROM login_attempts")) == (
            throttle.MAX_FAILURES_PER_USERNAME
        )
        assert connection.scalar(
            text("SELECT count(*) FROM audit_log WHERE action LIKE 'auth.%'")
        ) == (throttle.MAX_FAILURES_PER_USERNAME)


async def test_the_lock_holds_in_another_process(
    client: httpx.AsyncClient,
    second_process_client: httpx.AsyncClient,
    make_staff: Fixture,
    login: Fixture,
) -> None:
    staff = await make_staff("alice")
    await _fail(login, client, "Alice", throttle.MAX_FAILURES_PER_USERNAME)
    refused = await login(second_process_client, "alice", staff.password)
    assert refused.status_code == 429


async def test_a_success_clears_the_usernames_failures(
    client: httpx.AsyncClient, make_staff: Fixture, login: Fixture, signed_in: Fixture
) -> None:
    staff = await make_staff("alice")
    almost = throttle.MAX_FAILURES_PER_USERNAME - 1
    await _fail(login, client, "alice", almost)
    await signed_in(client, staff)
    await _fail(login, client, "alice", almost)
    await signed_in(client, staff)


async def test_an_address_is_locked_after_failures_on_many_usernames(
    client: httpx.AsyncClient, make_staff: Fixture, login: Fixture
) -> None:
    staff = await make_staff("alice")
    for number in range(throttle.MAX_FAILURES_PER_ADDRESS):
        await _fail(login, client, f"guess{number}", 1)
    refused = await login(client, "alice", staff.password)
    assert refused.status_code == 429
    assert "Too many failed sign-ins for this address" in refused.text


async def test_failures_older_than_the_window_do_not_count(
    client: httpx.AsyncClient, make_staff: Fixture, login: Fixture, sync_engine: Engine
) -> None:
    staff = await make_staff("alice")
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO login_attempts (username, address, attempted_at) "
                "SELECT 'alice', '127.0.0.1', now() - :age FROM generate_series(1, :n)"
            ),
            {"age": throttle.WINDOW, "n": throttle.MAX_FAILURES_PER_ADDRESS},
        )
    await _fail(login, client, "alice", 1)
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM login_attempts")) == 1
    response = await login(client, "alice", staff.password)
    assert response.status_code == 303


async def test_parallel_guesses_get_no_more_tries_than_the_limit(
    client: httpx.AsyncClient, make_staff: Fixture, page_form_token: Fixture
) -> None:
    await make_staff("alice")
    nonce = page_form_token(await client.get("/login"))
    guess = {"username": "alice", "password": WRONG, "csrf_token": nonce}
    answers = await asyncio.gather(*(client.post("/login", data=guess) for _ in range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    limit = throttle.MAX_FAILURES_PER_USERNAME
    assert statuses == [401] * limit + [429] * (8 - limit)
