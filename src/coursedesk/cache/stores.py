"""Where cached answers live: a bounded store in the process, or Redis shared by all.

Both keep a generation number that every write through the app raises. An entry is
stored with the generation its answer was read under and counts only while that is
still the current one, so in Redis one INCR invalidates the answers of every process.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# A cache that cannot answer at once is worth less than the database query it saves.
REDIS_TIMEOUT_SECONDS = 0.25
# The generation key outlives every entry by far; once it lapses, after a day without
# writes, counting restarts from 0 with no entry left that could be mistaken for current.
GENERATION_TTL_SECONDS = 86_400
MEMORY_MAX_ENTRIES = 1024


@dataclass(frozen=True)
class Found:
    """The current generation, and the entry's payload if it was stored under it."""

    generation: int
    payload: bytes | None


class CacheStore(Protocol):
    name: str

    async def get(self, key: str) -> Found: ...

    async def put(self, key: str, generation: int, payload: bytes, ttl_seconds: float) -> None:
        """Keep `payload` for `ttl_seconds`, unless `generation` is already out of date."""

    async def invalidate(self) -> None:
        """Start a new generation: no entry stored before counts any more."""

    async def close(self) -> None: ...


class MemoryStore:
    """Entries of this process only, the least recently used dropped beyond `max_entries`."""

    name = "memory"

    def __init__(
        self,
        max_entries: int = MEMORY_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._generation = 0
        self._max_entries = max_entries
        self._clock = clock

    async def get(self, key: str) -> Found:
        held = self._entries.get(key)
        if held is None:
            return Found(self._generation, None)
        expires_at, payload = held
        if expires_at <= self._clock():
            del self._entries[key]
            return Found(self._generation, None)
        self._entries.move_to_end(key)
        return Found(self._generation, payload)

    async def put(self, key: str, generation: int, payload: bytes, ttl_seconds: float) -> None:
        if generation != self._generation:
            return
        self._entries[key] = (self._clock() + ttl_seconds, payload)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def invalidate(self) -> None:
        self._generation += 1
        self._entries.clear()

    async def close(self) -> None:
        self._entries.clear()


class RedisStore:
    """Entries shared by every process using the same Redis and database.

    Keys live under `namespace`; an entry is `<generation>:<payload>` with a TTL, and a
    lookup reads the generation and the entry in one MGET round trip.
    """

    name = "redis"

    def __init__(self, client: Redis, namespace: str) -> None:
        self._client = client
        self._generation_key = f"{namespace}:generation"
        self._entry_prefix = f"{namespace}:answer:"

    @classmethod
    def from_url(cls, url: str, namespace: str) -> RedisStore:
        """A client that fails fast: no retries of its own, short timeouts."""
        client = Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, namespace)

    async def get(self, key: str) -> Found:
        generation, entry = await self._client.mget(
            [self._generation_key, self._entry_prefix + key]
        )
        current = int(generation or 0)
        if not isinstance(entry, bytes):
            return Found(current, None)
        stored, _, payload = entry.partition(b":")
        return Found(current, payload if int(stored) == current else None)

    async def put(self, key: str, generation: int, payload: bytes, ttl_seconds: float) -> None:
        await self._client.set(
            self._entry_prefix + key,
            b"%d:%b" % (generation, payload),
            px=max(1, round(ttl_seconds * 1000)),
        )

    async def invalidate(self) -> None:
        async with self._client.pipeline(transaction=False) as pipeline:
            pipeline.incr(self._generation_key)
            pipeline.expire(self._generation_key, GENERATION_TTL_SECONDS)
            await pipeline.execute()

    async def close(self) -> None:
        await self._client.aclose()
