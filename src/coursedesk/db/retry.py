"""Units of work that lose a race to another transaction are tried again.

PostgreSQL ends one of two transactions that deadlock (40P01), and a REPEATABLE READ
transaction whose snapshot a concurrent commit invalidated (40001); running the same
work again from the start is then the right answer, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

T = TypeVar("T")

LOST_RACES = frozenset({"40P01", "40001"})
ATTEMPTS = 5


def sqlstate(exc: BaseException) -> str | None:
    """The server's error code of a database error SQLAlchemy wrapped (None: no such)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def is_lost_race(exc: BaseException) -> bool:
    """Whether `exc` is a deadlock or serialization failure (its transaction rolled back)."""
    return isinstance(exc, DBAPIError) and sqlstate(exc) in LOST_RACES


def backoff_seconds(attempt: int) -> float:
    """A short random pause before attempt `attempt` + 1, so the two sides do not meet again."""
    return random.uniform(0.0, 0.02 * 2**attempt)


async def retrying(work: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """Run `work` (one whole unit of work) again while it loses races, at most `attempts` times."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except DBAPIError as exc:
            if not is_lost_race(exc) or attempt == attempts:
                raise
            log.info("a unit of work lost a race (%s), trying again", exc.orig)
            await asyncio.sleep(backoff_seconds(attempt))
    raise AssertionError("unreachable")
