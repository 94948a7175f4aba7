"""Test harness: a real PostgreSQL, migrated once into a template, copied for each test.

With TEST_DATABASE_URL (a URL of any database on the server, e.g. `postgres`) the tests
run on that server; otherwise they start an embedded server of their own.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy import Engine, text

from cli_process import Completed, RunCli, run_coursedesk
from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_token
from coursedesk.analytics.folding import set_capture
from coursedesk.config import Settings, load_settings
from coursedesk.db import migrations
from coursedesk.db.embedded import drop_database, server_url, start_embedded
from coursedesk.db.engine import Database, create_app_engine, create_tool_engine, libpq_url
from coursedesk.web.app import create_app

TEST_SECRET_KEY = "test-secret-key-0123456789"
_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def server_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A URL on the test server with the right to create databases."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        return libpq_url(given)
    home = Path(tempfile.mkdtemp(prefix="coursedesk-test-pg-"))
    return libpq_url(server_url(start_embedded(home / "pgdata", delete_on_exit=True), "postgres"))


def _admin_execute(admin_url: str, statement: sql.Composable) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def template_database(server_admin_url: str) -> Iterator[str]:
    """The schema migrated once by Alembic into a template database."""
    name = f"coursedesk_template_{os.getpid()}"
    drop_database(server_admin_url, name)
    _admin_execute(server_admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = create_tool_engine(
        server_url(server_admin_url, name), load_settings(database_url=None)
    )
    migrations.upgrade(engine)
    engine.dispose()
    yield name
    drop_database(server_admin_url, name)


def new_database(server_admin_url: str, template: str | None) -> str:
    name = f"coursedesk_test_{os.getpid()}_{next(_database_numbers)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    _admin_execute(server_admin_url, statement)
    return name


@pytest.fixture
def database_url(server_admin_url: str, template_database: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    name = new_database(server_admin_url, template_database)
    yield server_url(server_admin_url, name)
    drop_database(server_admin_url, name)


@pytest.fixture
def empty_database_url(server_admin_url: str) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    name = new_database(server_admin_url, None)
    yield server_url(server_admin_url, name)
    drop_database(server_admin_url, name)


@pytest.fixture
def replica_database_url(server_admin_url: str, template_database: str) -> Iterator[str]:
    """A second migrated database, standing in for a read replica with data of its own."""
    name = new_database(server_admin_url, template_database)
    yield server_url(server_admin_url, name)
    drop_database(server_admin_url, name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The app's settings; answers are not cached and no folder runs, so that a test
    folds the rows it inserts with SQL when it chooses (`fold_pending`), and they show at
    once (the cache and the folder have tests of their own)."""
    return load_settings(
        database_url=database_url,
        coursedesk_home=tmp_path / "home",
        secret_key=TEST_SECRET_KEY,
        redis_url=None,
        database_replica_url=None,
        cache_ttl_seconds=0,
        analytics_fold_seconds=0,
    )


@pytest.fixture
def run_cli(database_url: str, tmp_path: Path) -> RunCli:
    """Run the real `coursedesk ARGS…` (keyword `stdin=`) against this test's database."""

    def run(*args: str | bytes, stdin: str | bytes | None = None) -> Completed:
        return run_coursedesk(database_url, tmp_path / "home", *args, stdin=stdin)

    return run


@pytest.fixture
def sync_engine(database_url: str, settings: Settings) -> Iterator[Engine]:
    """A sync engine on the test database, for arranging rows and checking them."""
    engine = create_tool_engine(database_url, settings)
    yield engine
    engine.dispose()


@pytest.fixture
async def database(settings: Settings, database_url: str) -> AsyncIterator[Database]:
    db = Database(create_app_engine(database_url, settings))
    yield db
    await db.dispose()


@pytest.fixture
async def app(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    application = create_app(settings, database=database)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, with no credentials."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _token(database: Database, role: Role) -> str:
    async with database.transaction() as session:
        _, token = await create_token(session, role, f"test-{role.value}", created_by="tests")
    return token


@pytest.fixture
async def admin_headers(database: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _token(database, Role.admin)}"}


@pytest.fixture
async def operator_headers(database: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _token(database, Role.operator)}"}


@pytest.fixture
async def viewer_headers(database: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _token(database, Role.viewer)}"}


@pytest.fixture
def logical_wal(sync_engine: Engine) -> None:
    """Skip where the server cannot serve the capture from the WAL (CI's second server
    runs with wal_level = replica)."""
    with sync_engine.connect() as connection:
        level = connection.scalar(text("SHOW wal_level"))
    if level != "logical":
        pytest.skip(f"the test server runs with wal_level = {level}; the WAL capture needs logical")


@pytest.fixture
def wal_engine(sync_engine: Engine, logical_wal: None) -> Engine:
    """The test database with the capture reading the WAL instead of triggers."""
    assert set_capture(sync_engine, "wal")
    return sync_engine


@pytest.fixture(params=["triggers", "wal"])
def capture(request: pytest.FixtureRequest, sync_engine: Engine) -> str:
    """Each capture in turn: a test using it runs once with each."""
    mode: str = request.param
    if mode == "wal":
        request.getfixturevalue("wal_engine")
    return mode
