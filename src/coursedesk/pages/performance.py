"""The system page's performance block: connection pools and PostgreSQL's own figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from coursedesk.db.engine import Database
from coursedesk.pages.rendering import render_fragment
from coursedesk.pages.routes import page_router
from coursedesk.web.deps import PageViewer, Session, get_database

router = page_router(fragments=True)

# The share of block reads this database served from PostgreSQL's buffer cache since
# its statistics were last reset, and how many connections it has against the limit.
DATABASE_FIGURES_SQL = text(
    """
    SELECT round(100.0 * blks_hit / nullif(blks_hit + blks_read, 0), 2) AS cache_hit_rate,
           numbackends AS connections,
           current_setting('max_connections')::int AS max_connections,
           pg_database_size(datname) AS size_bytes
    FROM pg_stat_database
    WHERE datname = current_database()
    """
)
# Statements running now in this database, longest first (not this query itself).
RUNNING_STATEMENTS_SQL = text(
    """
    SELECT pid, application_name, now() - query_start AS running_for, left(query, 300) AS query
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND state = 'active'
      AND pid <> pg_backend_pid()
    ORDER BY query_start
    LIMIT 5
    """
)


@dataclass(frozen=True)
class PoolFigures:
    name: str
    size: int
    checked_out: int
    overflow: int
    idle: int


def pool_figures(name: str, engine: AsyncEngine) -> PoolFigures | None:
    """The engine's pool as this process sees it; None for a pool that keeps no count."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return None
    return PoolFigures(
        name, pool.size(), pool.checkedout(), max(pool.overflow(), 0), pool.checkedin()
    )


@dataclass(frozen=True)
class RunningStatement:
    pid: int
    application_name: str
    running_for: timedelta
    query: str


@router.get("/system/blocks/performance")
async def performance_block(
    request: Request,
    _: PageViewer,
    session: Session,
    database: Annotated[Database, Depends(get_database)],
) -> HTMLResponse:
    figures = (await session.execute(DATABASE_FIGURES_SQL)).one()
    running = [RunningStatement(*row) for row in await session.execute(RUNNING_STATEMENTS_SQL)]
    engines = [("Primary", database.primary)]
    if database.replica is not None:
        engines.append(("Replica", database.replica))
    pools = [found for name, engine in engines if (found := pool_figures(name, engine))]
    return render_fragment(
        request,
        "system/performance.html",
        {"figures": figures, "running": running, "pools": pools},
    )
