"""`GET /api/system/queries`, `GET /api/system/cache` and the Prometheus `/metrics`."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import Principal
from coursedesk.analytics.folding import Freshness, read_freshness
from coursedesk.cache.answers import AnswerCache, CacheFigures
from coursedesk.db.engine import Database
from coursedesk.monitoring.broadcast_figures import BroadcastTotals, broadcast_totals
from coursedesk.monitoring.metrics import AppMetrics
from coursedesk.monitoring.pools import database_pools
from coursedesk.monitoring.queries import QueryMonitor, QueryReport
from coursedesk.web.deps import (
    Admin,
    Session,
    check_role,
    current_principal,
    get_cache,
    get_database,
    optional_principal,
    settings_of,
)
from coursedesk.web.errors import database_failure

router = APIRouter(tags=["system"])


async def get_queries(request: Request) -> QueryMonitor:
    queries: QueryMonitor = request.app.state.queries
    return queries


async def get_metrics(request: Request) -> AppMetrics:
    metrics: AppMetrics = request.app.state.metrics
    return metrics


async def metrics_reader(
    request: Request,
    session: Session,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> None:
    """Admins only, unless METRICS_PUBLIC is true."""
    if settings_of(request).metrics_public:
        return
    check_role(await current_principal(request, session, principal), Role.admin)


@router.get(
    "/api/system/queries",
    summary="The app's query figures and connection pools (admin)",
    description=(
        "Figures of this process since it started, per statement shape (literals and "
        "parameters as `?`) and database (`primary` or `replica`): count, total, mean, p95 "
        "over the last 500 runs and max, in milliseconds, the most total time first; the "
        "slowest of the last 1,000 runs; and each pool's size, connections checked out, "
        "overflow, idle and checkouts waiting."
    ),
)
async def queries(
    _: Admin,
    monitor: Annotated[QueryMonitor, Depends(get_queries)],
    database: Annotated[Database, Depends(get_database)],
) -> QueryReport:
    return monitor.report(database_pools(database))


@router.get(
    "/api/system/cache",
    summary="Answer cache figures (admin)",
    description=(
        "Backend (`redis`, `memory`, or null when CACHE_TTL_SECONDS is 0), TTL, whether the "
        "store answers, hits, misses, hit rate (percent), store errors, invalidations, and "
        "hits and misses per cached query, for this process since it started."
    ),
)
async def cache_figures(
    _: Admin, cache: Annotated[AnswerCache, Depends(get_cache)]
) -> CacheFigures:
    return cache.figures()


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin, or anyone when METRICS_PUBLIC is true)",
    response_class=Response,
    dependencies=[Depends(metrics_reader)],
)
async def metrics(
    request: Request, session: Session, app_metrics: Annotated[AppMetrics, Depends(get_metrics)]
) -> Response:
    # The figures kept in the process (requests, pools, cache) matter most while the
    # database is down, so its being down leaves out only what is read from it.
    totals: BroadcastTotals | None = None
    freshness: Freshness | None = None
    try:
        totals = await broadcast_totals(session)
        freshness = await read_freshness(await session.connection())
    except Exception as exc:
        if database_failure(exc) is None:
            raise
        with suppress(Exception):
            await session.rollback()
        totals = freshness = None
    app_metrics.show_broadcasts(totals)
    app_metrics.show_freshness(freshness)
    body, content_type = app_metrics.exposition(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
