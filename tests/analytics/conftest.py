"""Fixtures of the analytics tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from analytics_data import (
    BotWriter,
    ClientFactory,
    EdgeData,
    insert_edge_data,
    require_logical_wal,
)
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine

from coursedesk.analytics.folding import set_capture
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


@pytest.fixture
def wal_engine(sync_engine: Engine) -> Engine:
    """The test database with the capture reading the WAL instead of triggers."""
    require_logical_wal(sync_engine)
    assert set_capture(sync_engine, "wal")
    return sync_engine


@pytest.fixture(params=["triggers", "wal"])
def capture(request: pytest.FixtureRequest, sync_engine: Engine) -> str:
    """Each capture in turn: a test using it runs once with each."""
    mode: str = request.param
    if mode == "wal":
        request.getfixturevalue("wal_engine")
    return mode
