"""Engines and sessions: one async engine for the app, a sync one for tooling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from coursedesk.config import DEFAULT_MAX_REPLICA_LAG_SECONDS, Settings
from coursedesk.db.embedded import start_embedded
from coursedesk.db.replica import ReplicaRouter
from coursedesk.monitoring.pools import WaitCountingPool


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server under COURSEDESK_HOME started on demand."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.home / "pgdata")


def sqlalchemy_url(url: str) -> URL:
    """A libpq-style URL as SQLAlchemy's psycopg 3 dialect wants it."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+psycopg")


def libpq_url(url: str | URL) -> str:
    """A URL that psycopg.connect() takes directly (no driver suffix)."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _connect_args(
    settings: Settings, *, application_name: str, read_only: bool = False
) -> dict[str, Any]:
    options = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    return {
        "connect_timeout": settings.db_connect_timeout,
        "application_name": application_name,
        "options": options,
    }


def create_app_engine(
    url: str,
    settings: Settings,
    *,
    application_name: str = "coursedesk",
    read_only: bool = False,
    pre_ping: bool = True,
) -> AsyncEngine:
    """The async engine with a bounded pool that checks connections before use.

    pool_pre_ping replaces connections broken by a database restart, so the app
    recovers by itself once the server is back. A `read_only` engine's transactions
    refuse to write, so a write sent to the replica by mistake fails loudly. Without
    `pre_ping` a statement saves that round trip, and its caller retries one that meets
    a broken connection (broadcasts/link_router.py).
    """
    return create_async_engine(
        sqlalchemy_url(url),
        poolclass=WaitCountingPool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        connect_args=_connect_args(
            settings, application_name=application_name, read_only=read_only
        ),
    )


def create_tool_engine(
    url: str, settings: Settings, *, application_name: str = "coursedesk-cli"
) -> Engine:
    """A small sync engine for migrations, seeding and inspection."""
    return create_engine(
        sqlalchemy_url(url),
        pool_size=2,
        max_overflow=2,
        pool_pre_ping=True,
        connect_args=_connect_args(settings, application_name=application_name),
    )


@dataclass
class Database:
    """The engines of one process: the primary, and the replica for analytics reads.

    With a replica, `router` measures its lag (db/replica.py) once `run_router` runs, and
    `read_sessions` open on the replica only while it keeps up; until the first
    measurement, and whenever it lags or is down, they open on the primary.
    """

    primary: AsyncEngine
    replica: AsyncEngine | None = None
    max_replica_lag_seconds: float = DEFAULT_MAX_REPLICA_LAG_SECONDS

    def __post_init__(self) -> None:
        self.sessions = async_sessionmaker(self.primary, expire_on_commit=False)
        self.router = (
            None
            if self.replica is None
            else ReplicaRouter(self.primary, self.replica, self.max_replica_lag_seconds)
        )
        self.replica_sessions = (
            None
            if self.replica is None
            else async_sessionmaker(self.replica, expire_on_commit=False)
        )

    @property
    def reads_replica(self) -> bool:
        """Whether reads go to the replica now."""
        return self.router is not None and self.router.use_replica

    @property
    def read_sessions(self) -> async_sessionmaker[AsyncSession]:
        """Sessions for reads that promise fresh figures: the replica's while it keeps up."""
        if self.replica_sessions is not None and self.reads_replica:
            return self.replica_sessions
        return self.sessions

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work on the primary: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.primary.dispose()
        if self.replica is not None:
            await self.replica.dispose()


def open_database(settings: Settings, *, application_name: str = "coursedesk") -> Database:
    url = resolve_database_url(settings)
    replica = (
        create_app_engine(
            settings.database_replica_url,
            settings,
            application_name=application_name + "-ro",
            read_only=True,
        )
        if settings.database_replica_url
        else None
    )
    return Database(
        create_app_engine(url, settings, application_name=application_name),
        replica,
        settings.replica_max_lag_seconds,
    )
