"""The FastAPI application: create_app() and the lifespan that owns its resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from coursedesk import __version__
from coursedesk.accounts.router import router as accounts_router
from coursedesk.analytics.changes import source_changes
from coursedesk.analytics.folding import folding, process_name
from coursedesk.analytics.router import router as analytics_router
from coursedesk.audit.router import router as audit_router
from coursedesk.broadcasts.earnings_router import router as earnings_router
from coursedesk.broadcasts.link_router import click_engine
from coursedesk.broadcasts.link_router import router as link_router
from coursedesk.broadcasts.link_tokens import LinkKeys
from coursedesk.broadcasts.media_router import router as media_router
from coursedesk.broadcasts.router import router as broadcasts_router
from coursedesk.cache.answers import open_answer_cache
from coursedesk.config import Settings, load_settings
from coursedesk.db.engine import Database, open_database
from coursedesk.monitoring.metrics import AppMetrics, LiveFigures, RequestMetricsMiddleware
from coursedesk.monitoring.queries import QueryMonitor
from coursedesk.monitoring.router import router as monitoring_router
from coursedesk.pages.router import router as pages_router
from coursedesk.system.migrate import router as migrate_router
from coursedesk.system.router import router as system_router
from coursedesk.system.schema import router as schema_router
from coursedesk.telegram.client import TelegramClient
from coursedesk.telegram.router import ANSWER_TIMEOUT_SECONDS
from coursedesk.telegram.router import router as telegram_router
from coursedesk.users.router import router as users_router
from coursedesk.web.errors import install_error_handlers
from coursedesk.web.fresh_reads import ReadYourWrites
from coursedesk.web.openapi import install_openapi
from coursedesk.web.retry import RetryLostRaces


@asynccontextmanager
async def observing(app: FastAPI, settings: Settings, database: Database) -> AsyncIterator[None]:
    """The answer cache, dropped on every write through the app, the query, pool and
    cache figures of `database` in /metrics, the replica's lag probe (db/replica.py), and
    the analytics folder (analytics/folding.py), for as long as the app runs."""
    async with AsyncExitStack() as stack:
        cache = app.state.cache = open_answer_cache(settings, database)
        stack.push_async_callback(cache.close)
        stack.callback(source_changes.subscribe(cache.invalidate_soon))
        queries = app.state.queries = QueryMonitor()
        stack.callback(queries.watch("primary", database.primary))
        if database.replica is not None:
            stack.callback(queries.watch("replica", database.replica))
        if database.router is not None:
            await stack.enter_async_context(database.router.probing())
        stack.callback(app.state.metrics.watch(LiveFigures(queries, database, cache)))
        app.state.folder = await stack.enter_async_context(
            folding(
                database.primary,
                name=process_name("serve"),
                interval=settings.analytics_fold_seconds,
            )
        )
        yield


@asynccontextmanager
async def bot_client(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The app's own small Bot API client (the webhook answers button presses with it),
    when a bot token is set; app.state.telegram is None otherwise."""
    app.state.telegram = None
    if not settings.telegram_bot_token:
        yield
        return
    async with TelegramClient(
        settings.telegram_bot_token,
        settings.telegram_api_base_url,
        pool_size=4,
        timeout=ANSWER_TIMEOUT_SECONDS,
    ) as client:
        app.state.telegram = client
        yield


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app; with no `database` the lifespan opens one from `settings` and closes it."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or open_database(settings)
        try:
            async with (
                observing(app, settings, app.state.database),
                bot_client(app, settings),
                click_engine(app, settings, app.state.database),
            ):
                yield
        finally:
            if owned:
                await app.state.database.dispose()

    app = FastAPI(
        title="coursedesk",
        version=__version__,
        summary="Back office of a course school that runs on a Telegram bot",
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from other hosts; the
        # OpenAPI document itself stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = AppMetrics()
    app.state.link_keys = LinkKeys()
    # Added first, so it runs inside the metrics: a request run again is counted once.
    app.add_middleware(RetryLostRaces)
    app.add_middleware(ReadYourWrites)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    app.include_router(system_router)
    app.include_router(schema_router)
    app.include_router(analytics_router)
    app.include_router(users_router)
    app.include_router(pages_router)
    app.include_router(accounts_router)
    app.include_router(audit_router)
    app.include_router(migrate_router)
    app.include_router(broadcasts_router)
    app.include_router(earnings_router)
    app.include_router(media_router)
    app.include_router(link_router)
    app.include_router(telegram_router)
    app.include_router(monitoring_router)
    install_openapi(app)
    return app
