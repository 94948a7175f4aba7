"""The answer cache on its own: hits, TTL, invalidation, bounds and a failing store."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.analytics.periods import DayWindow
from coursedesk.cache import answers
from coursedesk.cache.answers import AnswerCache
from coursedesk.cache.reads import CachedReads
from coursedesk.cache.stores import Found, MemoryStore

INTS = TypeAdapter(list[int])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """A database stand-in: answers its current value and counts the reads."""

    def __init__(self, value: list[int]) -> None:
        self.value = value
        self.reads = 0

    async def __call__(self) -> list[int]:
        self.reads += 1
        return list(self.value)


class BrokenStore(MemoryStore):
    """A memory store that fails every operation while `broken` is set, as Redis would."""

    name = "broken"

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.broken = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.broken:
            raise ConnectionError("connection refused")

    async def get(self, key: str) -> Found:
        self._check()
        return await super().get(key)

    async def put(self, key: str, generation: int, payload: bytes, ttl_seconds: float) -> None:
        self._check()
        await super().put(key, generation, payload, ttl_seconds)

    async def invalidate(self) -> None:
        self._check()
        await super().invalidate()


async def test_an_answer_is_kept_for_its_ttl() -> None:
    clock = Clock()
    cache = AnswerCache(MemoryStore(clock=clock), ttl_seconds=5, clock=clock)
    load = Loader([1])
    assert await cache.answer("figures", "k", INTS, load) == [1]
    load.value = [2]
    clock.now += 4.9
    assert await cache.answer("figures", "k", INTS, load) == [1]
    clock.now += 0.2
    assert await cache.answer("figures", "k", INTS, load) == [2]
    assert load.reads == 2
    figures = cache.figures()
    assert (figures.hits, figures.misses, figures.hit_rate) == (1, 2, 33.33)
    assert [(c.name, c.hits, c.misses) for c in figures.caches] == [("figures", 1, 2)]


async def test_invalidation_drops_every_answer() -> None:
    cache = AnswerCache(MemoryStore(), ttl_seconds=5)
    first, second = Loader([1]), Loader([10])
    await cache.answer("a", "a", INTS, first)
    await cache.answer("b", "b", INTS, second)
    first.value, second.value = [2], [20]
    await cache.invalidate()
    assert await cache.answer("a", "a", INTS, first) == [2]
    assert await cache.answer("b", "b", INTS, second) == [20]
    assert cache.figures().invalidations == 1


async def test_an_answer_read_before_a_write_is_not_kept() -> None:
    cache = AnswerCache(MemoryStore(), ttl_seconds=5)
    load = Loader([1])

    async def read_while_a_write_commits() -> list[int]:
        answer = await load()
        await cache.invalidate()
        return answer

    assert await cache.answer("figures", "k", INTS, read_while_a_write_commits) == [1]
    load.value = [2]
    assert await cache.answer("figures", "k", INTS, load) == [2]


async def test_the_memory_store_keeps_the_most_recently_used_entries() -> None:
    store = MemoryStore(max_entries=2)
    for key in ("a", "b"):
        await store.put(key, 0, key.encode(), 5)
    assert (await store.get("a")).payload == b"a"
    await store.put("c", 0, b"c", 5)
    assert (await store.get("b")).payload is None
    assert (await store.get("a")).payload == b"a"
    assert (await store.get("c")).payload == b"c"


async def test_without_a_store_every_answer_comes_from_the_loader() -> None:
    cache = AnswerCache(None, ttl_seconds=0)
    load = Loader([1])
    await cache.answer("figures", "k", INTS, load)
    await cache.answer("figures", "k", INTS, load)
    assert load.reads == 2
    figures = cache.figures()
    assert not figures.enabled and figures.backend is None and figures.hits == 0


async def test_a_failing_store_is_logged_once_and_left_alone_until_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    store = BrokenStore(clock)
    cache = AnswerCache(store, ttl_seconds=5, clock=clock)
    load = Loader([1])
    await cache.answer("figures", "k", INTS, load)
    store.broken = True
    calls_before = store.calls
    load.value = [2]
    with caplog.at_level(logging.WARNING, logger=answers.__name__):
        assert await cache.answer("figures", "k", INTS, load) == [2]
        assert await cache.answer("figures", "k", INTS, load) == [2]
        await cache.invalidate()
    assert store.calls == calls_before + 1, "not asked again before the retry time"
    assert [record.getMessage() for record in caplog.records] == [
        "cache: broken failed (connection refused); answering from the database, "
        "trying again in 5 s"
    ]
    figures = cache.figures()
    assert figures.errors == 1 and not figures.available

    store.broken = False
    clock.now += answers.RETRY_AFTER_SECONDS
    assert await cache.answer("figures", "k", INTS, load) == [2], (
        "the invalidation missed while the store failed is delivered before a read"
    )
    assert cache.figures().available


async def test_a_store_failing_mid_way_through_an_answer_still_answers() -> None:
    clock = Clock()
    store = BrokenStore(clock)
    cache = AnswerCache(store, ttl_seconds=5, clock=clock)
    load = Loader([1])

    async def read_then_break() -> list[int]:
        store.broken = True
        return await load()

    assert await cache.answer("figures", "k", INTS, read_then_break) == [1]
    assert cache.figures().errors == 1


class Day(BaseModel):
    day: date
    count: int


async def day_counts(session: AsyncSession, window: DayWindow, limit: int) -> list[Day]:
    """A service read as the analytics service writes them."""
    return [Day(day=window.first_day, count=limit)]


async def test_cached_reads_key_by_function_and_arguments_and_keep_the_type() -> None:
    cache = AnswerCache(MemoryStore(), ttl_seconds=5)
    reads = CachedReads(AsyncSession(), cache)
    january = DayWindow(date(2025, 1, 1), date(2025, 1, 31))
    february = DayWindow(date(2025, 2, 1), date(2025, 2, 28))

    first = await reads(day_counts, january, 3)
    assert first == [Day(day=date(2025, 1, 1), count=3)]
    assert await reads(day_counts, january, 3) == first
    assert await reads(day_counts, january, limit=4) == [Day(day=date(2025, 1, 1), count=4)]
    assert await reads(day_counts, february, 3) == [Day(day=date(2025, 2, 1), count=3)]
    (counts,) = cache.figures().caches
    assert (counts.name, counts.hits, counts.misses) == ("test_answer_cache.day_counts", 1, 3)
