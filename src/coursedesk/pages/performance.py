"""The system page's performance blocks: pools, the answer cache, PostgreSQL's own
figures, and the app's query figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from coursedesk.cache.answers import AnswerCache
from coursedesk.db.engine import Database
from coursedesk.monitoring.pools import database_pools
from coursedesk.monitoring.queries import QueryMonitor
from coursedesk.monitoring.router import get_queries
from coursedesk.pages.rendering import render_fragment
from coursedesk.pages.routes import page_router
from coursedesk.web.deps import PageViewer, Session, get_cache, get_database

router = page_router(fragments=True)

STATEMENTS_SHOWN = 10
SLOWEST_SHOWN = 8

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
    cache: Annotated[AnswerCache, Depends(get_cache)],
) -> HTMLResponse:
    figures = (await session.execute(DATABASE_FIGURES_SQL)).one()
    running = [RunningStatement(*row) for row in await session.execute(RUNNING_STATEMENTS_SQL)]
    return render_fragment(
        request,
        "system/performance.html",
        {
            "figures": figures,
            "running": running,
            "pools": database_pools(database),
            "cache": cache.figures(),
        },
    )


@router.get("/system/blocks/queries")
async def queries_block(
    request: Request,
    _: PageViewer,
    monitor: Annotated[QueryMonitor, Depends(get_queries)],
) -> HTMLResponse:
    return render_fragment(
        request,
        "system/queries.html",
        {
            "statements": monitor.statements()[:STATEMENTS_SHOWN],
            "slowest": monitor.slowest(SLOWEST_SHOWN),
            "since": monitor.since,
        },
    )
