"""A real hot standby behind DATABASE_REPLICA_URL: reads go to it while it keeps up, to
the primary while its replay is paused or it is down, and back once it catches up; the
figures stay within their freshness bound throughout, and no request fails."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request

from cli_process import run_process, start_serve
from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_token
from coursedesk.analytics.folding import fold_pending
from coursedesk.config import FRESHNESS_BOUND_SECONDS, load_settings
from coursedesk.db import migrations
from coursedesk.db.engine import create_tool_engine, open_database
from coursedesk.db.local_servers import (
    Server,
    embedded_binaries,
    scratch_root,
    start_primary,
    start_standby,
)
from coursedesk.web.app import create_app
from coursedesk.web.deps import ReplicaLost, read_session
from coursedesk.web.retry import LostRace
from coursedesk.web.threaded import free_port

pytestmark = pytest.mark.slow

MAX_LAG_SECONDS = 2.0
POSTGRESQL_15 = Path("/usr/lib/postgresql/15/bin")


def _installations() -> list[Any]:
    installations = [pytest.param(embedded_binaries(), id="embedded")]
    if (POSTGRESQL_15 / "pg_basebackup").exists():
        installations.append(pytest.param(POSTGRESQL_15, id="postgresql-15"))
    return installations


@pytest.fixture(params=_installations())
def servers(request: pytest.FixtureRequest) -> Iterator[tuple[Server, Server]]:
    """A primary migrated to head, and a standby streaming from it."""
    root = scratch_root()
    started: list[Server] = []
    try:
        primary = start_primary(request.param, root)
        started.append(primary)
        engine = create_tool_engine(primary.url, load_settings(database_url=primary.url))
        migrations.upgrade(engine)
        engine.dispose()
        standby = start_standby(primary, root)
        started.append(standby)
        yield primary, standby
    finally:
        for server in reversed(started):
            with suppress(subprocess.CalledProcessError):  # already stopped by the test
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def served(
    servers: tuple[Server, Server], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    primary, standby = servers
    settings = load_settings(
        database_url=primary.url,
        database_replica_url=standby.url,
        replica_max_lag_seconds=MAX_LAG_SECONDS,
        coursedesk_home=tmp_path / "home",
        secret_key="standby-test-secret-key",
        redis_url=None,
        cache_ttl_seconds=0,
        analytics_fold_seconds=0,
        metrics_public=True,
    )
    database = open_database(settings)
    async with database.transaction() as session:
        _, token = await create_token(session, Role.operator, "standby", created_by="tests")
    app = create_app(settings, database=database)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, {"Authorization": f"Bearer {token}"}
    await database.dispose()


def bot_books(primary: Server, count: int, user_offset: int) -> None:
    """The bot's inserts, straight into the primary, then folded as its folder would."""
    engine = create_tool_engine(primary.url, load_settings(database_url=primary.url))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
                " SELECT :first + n, 1, 'PY-1', 2 FROM generate_series(1, :count) AS n"
            ),
            {"first": user_offset, "count": count},
        )
    fold_pending(engine)
    engine.dispose()


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Seconds until `check` holds, polled every 0.1 s; fails after `within` seconds."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, f"not so within {within} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_reads_follow_the_replica_only_while_it_keeps_up(
    servers: tuple[Server, Server], served: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    primary, standby = servers
    client, headers = served
    answers: list[int] = []

    async def get(path: str) -> dict[str, Any]:
        response = await client.get(path, headers=headers)
        answers.append(response.status_code)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def replica_is(state: str) -> bool:
        health = await client.get("/api/health")
        return bool(health.json()["replica"]["state"] == state)

    async def bookings_shown(count: int) -> bool:
        return (await get("/api/stats"))["active_bookings"] == count

    await eventually(lambda: replica_is("ok"), FRESHNESS_BOUND_SECONDS)
    health = (await client.get("/api/health")).json()
    assert health["replica"]["reads"] == "replica"
    assert health["replica"]["name"] == f"127.0.0.1:{standby.port}/postgres"
    bot_books(primary, 5, 1000)
    await eventually(lambda: bookings_shown(5), FRESHNESS_BOUND_SECONDS)

    # Replay paused: 25 more bookings reach only the primary, and show within the bound.
    standby.execute("SELECT pg_wal_replay_pause()")
    bot_books(primary, 25, 2000)
    await eventually(lambda: bookings_shown(30), FRESHNESS_BOUND_SECONDS)
    await eventually(lambda: replica_is("lagging"), FRESHNESS_BOUND_SECONDS)
    lagging = (await client.get("/api/health")).json()
    assert lagging["replica"]["reads"] == "primary"
    assert lagging["replica"]["lag_seconds"] > MAX_LAG_SECONDS
    assert lagging["status"] == "ok"  # the figures are fresh: they come from the primary
    metrics = (await client.get("/metrics")).text
    assert "coursedesk_replica_reads_from_replica 0.0" in metrics
    system = await client.get("/system", headers=headers)
    assert 'data-replica-state="lagging"' in system.text
    assert "reads go to the primary" in system.text
    for _ in range(10):
        assert (await get("/api/stats"))["active_bookings"] == 30

    # Resumed: the replica catches up and is read again, with the same figures.
    standby.execute("SELECT pg_wal_replay_resume()")
    await eventually(lambda: replica_is("ok"), FRESHNESS_BOUND_SECONDS)
    assert (await get("/api/stats"))["active_bookings"] == 30
    assert "coursedesk_replica_reads_from_replica 1.0" in (await client.get("/metrics")).text

    # Killed: every request still answers, from the primary; restarted: read again.
    standby.stop("immediate")
    for _ in range(20):
        assert (await get("/api/stats"))["active_bookings"] == 30
        await get("/api/users?limit=5")
    await eventually(lambda: replica_is("down"), FRESHNESS_BOUND_SECONDS)
    down = (await client.get("/api/health")).json()
    assert down["replica"]["reads"] == "primary" and down["replica"]["error"]
    standby.start()
    await eventually(lambda: replica_is("ok"), 30)
    assert (await get("/api/stats"))["active_bookings"] == 30
    assert set(answers) == {200}


async def test_writes_go_to_the_primary_and_are_read_back_at_once(
    servers: tuple[Server, Server], served: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    primary, standby = servers
    client, headers = served
    bot_books(primary, 1, 3000)

    async def replica_ok() -> bool:
        return bool((await client.get("/api/health")).json()["replica"]["state"] == "ok")

    await eventually(replica_ok, FRESHNESS_BOUND_SECONDS)
    booking = primary.execute("SELECT max(id) FROM bookings")

    async def standby_has_it() -> bool:
        return standby.execute(f"SELECT count(*) FROM bookings WHERE id = {booking}") == 1

    await eventually(standby_has_it, FRESHNESS_BOUND_SECONDS)
    standby.execute("SELECT pg_wal_replay_pause()")
    # The standby refuses writes of its own; the edit goes to the primary.
    edited = await client.patch(f"/api/bookings/{booking}", json={"confirmed": 1}, headers=headers)
    assert edited.status_code == 200, edited.text
    assert primary.execute(f"SELECT confirmed FROM bookings WHERE id = {booking}") == 1
    assert standby.execute(f"SELECT confirmed FROM bookings WHERE id = {booking}") == 2
    # A browser that made the edit reads the primary for a while, whatever the replica.
    cookie = edited.headers["set-cookie"]
    assert cookie.startswith("coursedesk_wrote=1;") and "Max-Age=3" in cookie
    assert client.cookies["coursedesk_wrote"] == "1"
    stats = (await client.get("/api/stats", headers=headers)).json()
    assert (stats["active_bookings"], stats["confirmed_payments"]) == (1, 0)
    standby.execute("SELECT pg_wal_replay_resume()")


def _serve(primary: Server, standby: Server, home: Path, port: int) -> subprocess.Popen[bytes]:
    settings = {
        "DATABASE_URL": primary.url,
        "DATABASE_REPLICA_URL": standby.url,
        "REPLICA_MAX_LAG_SECONDS": str(MAX_LAG_SECONDS),
        "COURSEDESK_HOME": str(home),
        "SECRET_KEY": "standby-test-secret-key",
        "METRICS_PUBLIC": "true",
    }
    return start_serve(port, settings)


def test_several_serve_processes_agree_and_fold_on_the_primary(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """Two `serve` processes on one primary and one standby: each measures the lag, one
    of them folds the bot's rows on the primary, and both show them within the bound
    while the standby's replay is paused."""
    primary, standby = servers
    home = tmp_path / "home"
    created = run_process(
        "admin", "create-token", "--role", "viewer",
        env={"DATABASE_URL": primary.url, "COURSEDESK_HOME": str(home)},
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
    ports = [free_port(), free_port()]
    processes = [_serve(primary, standby, home, port) for port in ports]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]

        def health(base: str) -> dict[str, Any] | None:
            try:
                answer = httpx.get(f"{base}/api/health", timeout=2)
            except httpx.TransportError:
                return None
            body: dict[str, Any] = answer.json()
            return body

        def wait_for(check: Callable[[], bool], within: float) -> None:
            deadline = time.monotonic() + within
            while not check():
                assert all(p.poll() is None for p in processes), "serve stopped"
                assert time.monotonic() < deadline, f"not so within {within} s"
                time.sleep(0.2)

        def replicas_are(state: str) -> bool:
            bodies = [health(base) for base in bases]
            return all(b is not None and b["replica"]["state"] == state for b in bodies)

        def stats(base: str) -> dict[str, int]:
            answer = httpx.get(f"{base}/api/stats", headers=headers, timeout=5)
            assert answer.status_code == 200, answer.text
            body: dict[str, int] = answer.json()
            return body

        wait_for(lambda: replicas_are("ok"), 60)
        standby.execute("SELECT pg_wal_replay_pause()")
        bot_books_unfolded(primary, 12)
        wait_for(lambda: all(stats(base)["active_bookings"] == 12 for base in bases), 10)
        wait_for(lambda: replicas_are("lagging"), 10)
        folders = {health(base)["analytics"]["folder"] for base in bases}  # type: ignore[index]
        assert len(folders) == 1  # one process folds for all
        standby.execute("SELECT pg_wal_replay_resume()")
        wait_for(lambda: replicas_are("ok"), 30)
        assert [stats(base)["active_bookings"] for base in bases] == [12, 12]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def bot_books_unfolded(primary: Server, count: int) -> None:
    """The bot's inserts alone: the serve processes' folder is to count them."""
    with psycopg.connect(primary.url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
            " SELECT 5000 + n, 1, 'PY-1', 2 FROM generate_series(1, %s) AS n",
            (count,),
        )


async def test_a_replica_lost_during_a_request_sends_it_round_again_on_the_primary(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """A replica connection that breaks after it was checked out: the replica is marked
    down and the request raises ReplicaLost, which web/retry.py runs again."""
    primary, standby = servers
    settings = load_settings(
        database_url=primary.url,
        database_replica_url=standby.url,
        coursedesk_home=tmp_path / "home",
        secret_key="standby-test-secret-key",
    )
    database = open_database(settings)
    assert database.router is not None
    try:
        await database.router.probe()
        assert database.router.status.state == "ok"
        request = Request({"type": "http", "headers": [], "app": None})
        async with database.sessions() as primary_session:
            dependency = read_session(request, database, primary_session)
            session = await anext(dependency)
            assert session is not primary_session
            standby.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'coursedesk-ro'"
            )
            with pytest.raises(DBAPIError) as broken:
                await session.execute(text("SELECT count(*) FROM bookings"))
            with pytest.raises(ReplicaLost):
                await dependency.athrow(broken.value)
        assert database.router.status.state == "down"
        assert not database.reads_replica
        assert isinstance(ReplicaLost(), LostRace)
    finally:
        await database.dispose()
