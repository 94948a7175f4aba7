"""Calling `POST /api/db-migrate` from tests, with limits of the test's choosing, and
reading what it left in the audit log."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, text

from coursedesk.system.migrate import SCRIPT_LIMITS, script_limits


def migrate_body(sql: str, *, dry_run: bool = False, description: str = "rooms") -> dict[str, Any]:
    return {"sql": sql, "description": description, "dry_run": dry_run}


def migrate_audit(sync_engine: Engine) -> list[Any]:
    with sync_engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT actor, target_type, details FROM audit_log "
                    "WHERE action = 'db.migrate' ORDER BY id"
                )
            )
        )


@contextmanager
def script_limits_of(app: FastAPI, **changes: Any) -> Iterator[None]:
    """Run the app's scripts with these limits changed, for the block."""
    limits = dataclasses.replace(SCRIPT_LIMITS, **changes)
    app.dependency_overrides[script_limits] = lambda: limits
    try:
        yield
    finally:
        app.dependency_overrides.pop(script_limits, None)


# PL/pgSQL catches the cancel request: only ending the backend stops this.
CATCHES_ITS_CANCEL = (
    "DO $$BEGIN LOOP BEGIN PERFORM pg_sleep(10); "
    "EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END$$"
)


def script_backends(sync_engine: Engine) -> int:
    with sync_engine.connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE usename = 'coursedesk_scripts' AND datname = current_database()"
                )
            )
        )


def row_is_free(sync_engine: Engine, booking: int) -> bool:
    """The booking can be locked at once: no script holds it any more."""
    with sync_engine.begin() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '500ms'"))
        found = connection.scalar(
            text("SELECT id FROM bookings WHERE id = :i FOR UPDATE"), {"i": booking}
        )
    return found == booking
