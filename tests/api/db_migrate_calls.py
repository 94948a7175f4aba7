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
