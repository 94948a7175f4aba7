"""Connection pool figures: size, connections in use, overflow, idle, and checkouts waiting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool

if TYPE_CHECKING:  # the engines module builds its pools from this one
    from coursedesk.db.engine import Database


class WaitCountingPool(AsyncAdaptedQueuePool):
    """The async engine's usual pool, which also counts the checkouts waiting for a
    connection: SQLAlchemy's pool keeps no such count of its own.

    Everything runs on the event loop's thread, and a checkout only yields inside
    `_do_get` while it waits, so whoever reads `waiting` sees exactly those.
    """

    waiting: int = 0

    def _do_get(self) -> ConnectionPoolEntry:
        self.waiting += 1
        try:
            return super()._do_get()
        finally:
            self.waiting -= 1


@dataclass(frozen=True)
class PoolFigures:
    database: str
    size: int
    checked_out: int
    overflow: int
    idle: int
    waiting: int | None


def pool_figures(database: str, engine: AsyncEngine) -> PoolFigures | None:
    """The engine's pool as this process sees it; None for a pool that keeps no count."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return None
    return PoolFigures(
        database=database,
        size=pool.size(),
        checked_out=pool.checkedout(),
        overflow=max(pool.overflow(), 0),
        idle=pool.checkedin(),
        waiting=pool.waiting if isinstance(pool, WaitCountingPool) else None,
    )


def database_pools(database: Database) -> list[PoolFigures]:
    """The pools of the primary and, when there is one, of the replica."""
    engines = [("primary", database.primary)]
    if database.replica is not None:
        engines.append(("replica", database.replica))
    return [found for name, engine in engines if (found := pool_figures(name, engine))]
