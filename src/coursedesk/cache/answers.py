"""The answer cache: kept for CACHE_TTL_SECONDS, dropped on every write through the app.

A failing store (Redis down, or failing mid-way) never fails a request: the answer
comes from the database, the failure is counted and logged once, and the store is
tried again RETRY_AFTER_SECONDS later. An invalidation the store missed meanwhile is
delivered before anything is read from it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from coursedesk import __version__
from coursedesk.analytics.service import percent
from coursedesk.cache.stores import CacheStore, Found, MemoryStore, RedisStore
from coursedesk.config import Settings
from coursedesk.db.engine import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

RETRY_AFTER_SECONDS = 5.0


class Lookups(BaseModel):
    name: str
    hits: int
    misses: int


class CacheFigures(BaseModel):
    """What `GET /api/system/cache` answers."""

    enabled: bool
    backend: str | None
    ttl_seconds: float
    available: bool
    hits: int
    misses: int
    hit_rate: float | None
    errors: int
    invalidations: int
    caches: list[Lookups]


@dataclass
class _Counts:
    hits: int = 0
    misses: int = 0


class AnswerCache:
    """Answers of read-only queries by name and key; without a store, nothing is kept."""

    def __init__(
        self,
        store: CacheStore | None,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_seconds = ttl_seconds
        self._clock = clock
        self._counts: dict[str, _Counts] = {}
        self._errors = 0
        self._invalidations = 0
        self._retry_at = 0.0
        self._failing = False
        self._invalidation_owed = False
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._store is not None

    async def answer(
        self, name: str, key: str, adapter: TypeAdapter[T], load: Callable[[], Awaitable[T]]
    ) -> T:
        """The cached answer to `key`, or `load()`'s, kept for the next asker."""
        if self._store is None:
            return await load()
        await self._settle_invalidations()
        counts = self._counts.setdefault(name, _Counts())
        found = await self._safely(lambda store: store.get(key))
        if found is not None and found.payload is not None:
            try:
                value = adapter.validate_json(found.payload)
            except ValidationError:
                log.warning("cache: dropping an unreadable entry of %s", name)
            else:
                counts.hits += 1
                return value
        counts.misses += 1
        value = await load()
        if found is not None:
            await self._keep(key, found, adapter.dump_json(value))
        return value

    async def _keep(self, key: str, found: Found, payload: bytes) -> None:
        generation = found.generation
        await self._safely(lambda store: store.put(key, generation, payload, self._ttl_seconds))

    async def invalidate(self) -> None:
        """Drop every answer: the data behind them has changed."""
        if self._store is None:
            return
        self._invalidations += 1
        self._invalidation_owed = True
        await self._safely(None)

    def invalidate_soon(self) -> None:
        """invalidate() from synchronous code (a commit hook) on the running event loop.

        Reads of this process wait for it to finish, so a page read after a write never
        gets an answer from before it.
        """
        if self._store is None:
            return
        task = asyncio.get_running_loop().create_task(self.invalidate())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle_invalidations(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending)

    async def _safely(self, operation: Callable[[CacheStore], Awaitable[R]] | None) -> R | None:
        """`operation` on the store, or None while the store is failing."""
        store = self._store
        if store is None or self._clock() < self._retry_at:
            return None
        try:
            if self._invalidation_owed:
                await store.invalidate()
                self._invalidation_owed = False
            result = await operation(store) if operation is not None else None
        except Exception as exc:  # whatever breaks in the cache, the database still answers
            self._store_failed(store, exc)
            return None
        if self._failing:
            self._failing = False
            log.info("cache: %s answers again", store.name)
        return result

    def _store_failed(self, store: CacheStore, exc: Exception) -> None:
        self._errors += 1
        self._retry_at = self._clock() + RETRY_AFTER_SECONDS
        if not self._failing:
            self._failing = True
            log.warning(
                "cache: %s failed (%s); answering from the database, trying again in %.0f s",
                store.name,
                exc,
                RETRY_AFTER_SECONDS,
            )

    def figures(self) -> CacheFigures:
        hits = sum(counts.hits for counts in self._counts.values())
        misses = sum(counts.misses for counts in self._counts.values())
        return CacheFigures(
            enabled=self.enabled,
            backend=self._store.name if self._store else None,
            ttl_seconds=self._ttl_seconds,
            available=self.enabled and not self._failing,
            hits=hits,
            misses=misses,
            hit_rate=percent(hits, hits + misses),
            errors=self._errors,
            invalidations=self._invalidations,
            caches=[
                Lookups(name=name, hits=counts.hits, misses=counts.misses)
                for name, counts in sorted(self._counts.items())
            ],
        )

    async def close(self) -> None:
        await self._settle_invalidations()
        if self._store is not None:
            await self._store.close()


def cache_namespace(database: Database) -> str:
    """Redis keys of this database and app version: installations, or versions, sharing a
    Redis never read each other's answers."""
    where = database.primary.url.render_as_string(hide_password=True).encode()
    return f"coursedesk:{__version__}:{hashlib.blake2b(where, digest_size=8).hexdigest()}"


def open_answer_cache(settings: Settings, database: Database) -> AnswerCache:
    """Redis when REDIS_URL is set, else in this process; nothing kept when the TTL is 0."""
    if settings.cache_ttl_seconds == 0:
        return AnswerCache(None, 0)
    store: CacheStore = (
        RedisStore.from_url(settings.redis_url, cache_namespace(database))
        if settings.redis_url
        else MemoryStore()
    )
    return AnswerCache(store, settings.cache_ttl_seconds)
