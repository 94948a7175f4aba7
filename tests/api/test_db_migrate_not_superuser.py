"""`POST /api/db-migrate` when coursedesk's database user is no superuser: a user that may
create roles, owning the database it migrated itself, lets scripts run as
coursedesk_scripts and keeps them to the same limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
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
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from coursedesk.config import load_settings
from coursedesk.db import migrations
from coursedesk.db.embedded import server_url
from coursedesk.db.engine import create_tool_engine


@pytest.fixture
def database_url(server_admin_url: str) -> Iterator[str]:
    """This module's tests run on a database owned and migrated by a user that may create
    roles and administer coursedesk_scripts (makes it, or is given what its maker has from
    PostgreSQL 16 on), but is no superuser."""
    suffix = uuid.uuid4().hex[:12]
    owner, name = f"coursedesk_owner_{suffix}", f"coursedesk_owned_{suffix}"
    with psycopg.connect(server_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(owner)))
        # Made by another user before: this one is given what its maker would have.
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'coursedesk_scripts'").fetchone():
            admin.execute(
                sql.SQL("GRANT coursedesk_scripts TO {} WITH ADMIN OPTION").format(
                    sql.Identifier(owner)
                )
            )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    url = make_url(server_url(server_admin_url, name)).set(username=owner)
    owners_url = url.render_as_string(hide_password=False)
    engine = create_tool_engine(owners_url, load_settings(database_url=None))
    migrations.upgrade(engine)
    engine.dispose()
    yield owners_url
    with psycopg.connect(server_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(owner)))


def _scalar(sync_engine: Engine, query: str) -> Any:
    with sync_engine.connect() as connection:
        return connection.scalar(text(query))


async def test_scripts_run_as_the_role_and_within_limits(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    assert (
        _scalar(sync_engine, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
    )
    with sync_engine.begin() as connection:
        connection.execute(text("INSERT INTO bookings (id, user_id, confirmed) VALUES (1, 5, 1)"))

    async def run(script: str, *, dry_run: bool = False) -> httpx.Response:
        body = migrate_body(script, dry_run=dry_run)
        return await client.post("/api/db-migrate", json=body, headers=admin_headers)

    dry = await run("UPDATE bookings SET confirmed = 2 WHERE id = 1", dry_run=True)
    assert dry.status_code == 200, dry.text
    assert dry.json()["results"][0]["rowcount"] == 1
    applied = await run(
        "SELECT set_config('coursedesk.actor', 'someone-else', true);\n"
        "UPDATE bookings SET confirmed = -1 WHERE id = 1"
    )
    assert applied.status_code == 200, applied.text
    assert _scalar(sync_engine, "SELECT confirmed FROM bookings WHERE id = 1") == -1
    actor = _scalar(sync_engine, "SELECT actor FROM audit_log WHERE action = 'booking.update'")
    assert actor == "token:test-admin"

    refused = await run("SELECT pg_read_file('/etc/passwd')")
    assert refused.status_code == 400
    assert "root:" not in refused.text
    with script_limits_of(app, seconds=0.5):
        stopped = await run("SET statement_timeout = 0; SELECT pg_sleep(5)")
    assert stopped.json()["error"].startswith("the script ran past its time limit of 0.5 s")
    outcomes = [entry.details["outcome"] for entry in migrate_audit(sync_engine)]
    assert outcomes == ["dry_run", "applied", "failed", "failed"]
    # The role may log in again only when the app lets it.
    assert (
        _scalar(
            sync_engine, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'coursedesk_scripts'"
        )
        is False
    )


async def test_a_script_that_catches_its_cancel_is_ended_at_its_limit(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text("INSERT INTO bookings (id, user_id, confirmed) VALUES (1, 5, 1)"))
    sql_text = f"UPDATE bookings SET confirmed = 2 WHERE id = 1; {CATCHES_ITS_CANCEL}"
    started = time.monotonic()
    with script_limits_of(app, seconds=0.5):
        response = await asyncio.wait_for(
            client.post("/api/db-migrate", json=migrate_body(sql_text), headers=admin_headers),
            10,
        )
    assert time.monotonic() - started < 4
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("the script ran past its time limit of 0.5 s")
    assert script_backends(sync_engine) == 0
    assert row_is_free(sync_engine, 1)
    # The app's user was given the role's privileges to end its backends, and the role
    # still belongs to no role: the next run is let through.
    assert _scalar(sync_engine, "SELECT pg_has_role(current_user, 'coursedesk_scripts', 'USAGE')")
    again = await client.post(
        "/api/db-migrate", json=migrate_body("SELECT 1"), headers=admin_headers
    )
    assert again.status_code == 200, again.text
