"""Fixtures of the analytics tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from analytics_data import BotWriter, ClientFactory, EdgeData, insert_edge_data
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine

from coursedesk.config import Settings
from coursedesk.db.engine import Database
from coursedesk.web.app import create_app


@pytest.fixture
def bot(sync_engine: Engine) -> BotWriter:
    return BotWriter(sync_engine)


@pytest.fixture
def edge_data(bot: BotWriter) -> EdgeData:
    return insert_edge_data(bot)


@pytest.fixture
def client_in_timezone(settings: Settings, database: Database) -> ClientFactory:
    """An HTTP client on an app whose APP_TIMEZONE is the one given."""

    @asynccontextmanager
    async def open_client(timezone: str) -> AsyncIterator[httpx.AsyncClient]:
        zoned = Settings(**{**settings.model_dump(), "app_timezone": timezone})
        application = create_app(zoned, database=database)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield http

    return open_client
