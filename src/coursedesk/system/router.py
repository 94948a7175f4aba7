"""Health and migration status routes."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from coursedesk import __version__
from coursedesk.db import migrations
from coursedesk.db.engine import Database
from coursedesk.web.deps import Viewer, get_database

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["system"])

HEALTH_TIMEOUT_SECONDS = 3.0


async def migration_status(database: Database) -> migrations.MigrationStatus:
    async with database.primary.connect() as connection:
        return await connection.run_sync(migrations.status)


@router.get("/health", summary="Is the database reachable and the schema current?")
async def health(database: Annotated[Database, Depends(get_database)]) -> JSONResponse:
    body: dict[str, Any] = {"version": __version__}
    try:
        status = await asyncio.wait_for(migration_status(database), HEALTH_TIMEOUT_SECONDS)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("health check: database unreachable: %s", exc)
        body |= {"status": "degraded", "database": "unreachable", "migrations": None}
        return JSONResponse(body, status_code=503)
    body |= {
        "status": "ok" if status.is_current else "degraded",
        "database": "ok",
        "migrations": status.as_dict(),
    }
    # Reachable, but at a revision this code does not know: it cannot vouch for the schema.
    return JSONResponse(body, status_code=200 if status.current_known else 503)


@router.get("/db-migrations", summary="Current revision, head and pending migrations")
async def db_migrations(
    _: Viewer, database: Annotated[Database, Depends(get_database)]
) -> dict[str, Any]:
    return (await migration_status(database)).as_dict()
