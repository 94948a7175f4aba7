"""The FastAPI application: create_app() and the lifespan that owns its resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from coursedesk import __version__
from coursedesk.accounts.router import router as accounts_router
from coursedesk.analytics.router import router as analytics_router
from coursedesk.audit.router import router as audit_router
from coursedesk.broadcasts.router import router as broadcasts_router
from coursedesk.config import Settings, load_settings
from coursedesk.db.engine import Database, open_database
from coursedesk.pages.router import router as pages_router
from coursedesk.system.migrate import router as migrate_router
from coursedesk.system.router import router as system_router
from coursedesk.system.schema import router as schema_router
from coursedesk.telegram.router import router as telegram_router
from coursedesk.users.router import router as users_router
from coursedesk.web.errors import install_error_handlers


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app; with no `database` the lifespan opens one from `settings` and closes it."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or open_database(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.database.dispose()

    app = FastAPI(
        title="coursedesk",
        version=__version__,
        summary="Back office of a course school that runs on a Telegram bot",
        lifespan=lifespan,
    )
    app.state.settings = settings
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
    app.include_router(telegram_router)
    return app
