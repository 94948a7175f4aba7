"""Fixtures of the cache tests: the app with its answer cache on, source rows, Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from cache_support import LONG_TTL_SECONDS, REDIS_URL, WEBHOOK_SECRET, AddBooking, OpenClient
from sqlalchemy import Engine, insert

from coursedesk.analytics.folding import fold_pending
from coursedesk.config import Settings
from coursedesk.db.engine import Database
from coursedesk.sources.models import Booking
from coursedesk.web.app import create_app


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"cache_ttl_seconds": LONG_TTL_SECONDS, "telegram_webhook_secret": WEBHOOK_SECRET}
    )


@pytest.fixture
def add_booking(sync_engine: Engine) -> AddBooking:
    """Inserts one booking with plain SQL, as the bot does, and folds it as the folder
    would (dropping no cached answer); answers its id."""

    def add(user_id: int, **columns: Any) -> int:
        row = {"user_id": user_id, "confirmed": 1, "course_id": 1, **columns}
        with sync_engine.begin() as connection:
            booking_id: int = connection.execute(
                insert(Booking).values(row).returning(Booking.id)
            ).scalar_one()
        fold_pending(sync_engine)
        return booking_id

    return add


@pytest.fixture
def open_client(settings: Settings, database: Database) -> OpenClient:
    """A client on an app of its own, with the settings changed as given."""

    @asynccontextmanager
    async def open_with(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(settings.model_copy(update=changes), database=database)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield http

    return open_with


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis at 127.0.0.1:6379, or the test is skipped."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis answers at {REDIS_URL} ({exc}); the Redis cache tests need one")
    finally:
        client.close()
    return REDIS_URL
