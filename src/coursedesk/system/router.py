"""Health and migration status routes."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from coursedesk import __version__
from coursedesk.analytics.folding import Freshness, read_freshness
from coursedesk.db import migrations
from coursedesk.db.engine import Database
from coursedesk.web.deps import Viewer, get_database

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["system"])

HEALTH_TIMEOUT_SECONDS = 3.0


async def migration_status(database: Database) -> migrations.MigrationStatus:
    async with database.primary.connect() as connection:
        return await connection.run_sync(migrations.status)


async def analytics_freshness(database: Database) -> Freshness:
    async with database.primary.connect() as connection:
        return await read_freshness(connection)


def freshness_body(freshness: Freshness) -> dict[str, Any]:
    """analytics_lag_seconds and what the folding is doing, for /api/health."""
    return {
        "analytics_lag_seconds": round(freshness.lag_seconds, 3),
        "analytics": {
            "status": freshness.status,
            "figures_as_of": freshness.as_of.isoformat() if freshness.as_of else None,
            "folder": freshness.folder,
            "folder_running": freshness.folder_running,
            "folded_at": freshness.folded_at.isoformat() if freshness.folded_at else None,
            "error": freshness.error,
            "failed_at": freshness.failed_at.isoformat() if freshness.failed_at else None,
        },
    }


def replica_body(database: Database) -> dict[str, Any] | None:
    """The replica's name (host:port/database), state, lag and where reads go; None without
    one. A lagging or down replica is not a degraded service: reads go to the primary."""
    if database.replica is None or database.router is None:
        return None
    url = database.replica.url
    router = database.router
    return (
        {"name": f"{url.host}:{url.port or 5432}/{url.database}"}
        | router.status.as_dict()
        | {"reads": "replica" if router.use_replica else "primary"}
    )


@router.get("/health", summary="Is the database reachable and the schema current?")
async def health(database: Annotated[Database, Depends(get_database)]) -> JSONResponse:
    body: dict[str, Any] = {"version": __version__}
    try:
        status = await asyncio.wait_for(migration_status(database), HEALTH_TIMEOUT_SECONDS)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("health check: database unreachable: %s", exc)
        body |= {"status": "degraded", "database": "unreachable", "migrations": None}
        return JSONResponse(body, status_code=503)
    healthy = status.is_current
    body |= {"database": "ok", "migrations": status.as_dict()}
    if status.is_current:
        try:
            freshness = await asyncio.wait_for(
                analytics_freshness(database), HEALTH_TIMEOUT_SECONDS
            )
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("health check: analytics freshness unreadable: %s", exc)
            body |= {"analytics_lag_seconds": None, "analytics": None}
            healthy = False
        else:
            body |= freshness_body(freshness)
            healthy = freshness.status == "ok"
    body["replica"] = replica_body(database)
    body = {"status": "ok" if healthy else "degraded", **body}
    # Reachable, but at a revision this code does not know: it cannot vouch for the schema.
    return JSONResponse(body, status_code=200 if status.current_known else 503)


@router.get("/db-migrations", summary="Current revision, head and pending migrations")
async def db_migrations(
    _: Viewer, database: Annotated[Database, Depends(get_database)]
) -> dict[str, Any]:
    return (await migration_status(database)).as_dict()
