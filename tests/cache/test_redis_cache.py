"""The answer cache in Redis: shared by processes, and the app answering from the database
whenever Redis is down or fails mid-way."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cache_support import AddBooking, CuttableProxy, OpenClient
from pydantic import TypeAdapter

from coursedesk.cache import answers
from coursedesk.cache.answers import AnswerCache
from coursedesk.cache.stores import RedisStore
from coursedesk.web.threaded import free_port

INTS = TypeAdapter(list[int])


async def stats(client: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    answer = await client.get("/api/stats", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def cache_figures(client: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    answer = await client.get("/api/system/cache", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[CuttableProxy]:
    in_front = CuttableProxy("127.0.0.1", 6379)
    await in_front.start()
    yield in_front
    await in_front.cut()


async def test_processes_share_answers_and_one_invalidation_reaches_all(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    namespace = f"coursedesk:test:{request.node.name}:{free_port()}"
    one = AnswerCache(RedisStore.from_url(redis_url, namespace), ttl_seconds=10)
    other = AnswerCache(RedisStore.from_url(redis_url, namespace), ttl_seconds=10)
    reads = 0

    async def load() -> list[int]:
        nonlocal reads
        reads += 1
        return [reads]

    try:
        assert await one.answer("figures", "k", INTS, load) == [1]
        assert await other.answer("figures", "k", INTS, load) == [1]
        await other.invalidate()
        assert await one.answer("figures", "k", INTS, load) == [2]
        assert (one.figures().misses, other.figures().hits) == (2, 1)
    finally:
        await one.close()
        await other.close()


async def test_the_app_caches_in_redis_and_a_write_invalidates(
    open_client: OpenClient,
    redis_url: str,
    add_booking: AddBooking,
    operator_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    booking = add_booking(801)
    async with open_client(redis_url=redis_url) as client:
        first = await stats(client, admin_headers)
        add_booking(802)
        assert await stats(client, admin_headers) == first
        edit = await client.patch(
            f"/api/bookings/{booking}", json={"confirmed": 2}, headers=operator_headers
        )
        assert edit.status_code == 200, edit.text
        assert (await stats(client, admin_headers))["total_users"] == 2
        figures = await cache_figures(client, admin_headers)
        assert (figures["backend"], figures["available"], figures["errors"]) == ("redis", True, 0)
        assert (figures["hits"], figures["misses"]) == (1, 2)


async def test_with_redis_down_the_app_answers_from_the_database(
    open_client: OpenClient,
    add_booking: AddBooking,
    operator_headers: dict[str, str],
    admin_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    booking = add_booking(901)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with open_client(redis_url=closed) as client:
        with caplog.at_level(logging.WARNING, logger=answers.__name__):
            assert (await stats(client, admin_headers))["total_users"] == 1
            add_booking(902)
            assert (await stats(client, admin_headers))["total_users"] == 2
            edit = await client.patch(
                f"/api/bookings/{booking}", json={"confirmed": 2}, headers=operator_headers
            )
            assert edit.status_code == 200, edit.text
            assert (await stats(client, admin_headers))["confirmed_payments"] == 1
        figures = await cache_figures(client, admin_headers)
    assert (figures["backend"], figures["available"], figures["errors"]) == ("redis", False, 1)
    assert figures["hits"] == 0
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "answering from the database" in warnings[0]


async def test_redis_failing_mid_way_then_coming_back(
    open_client: OpenClient,
    proxy: CuttableProxy,
    add_booking: AddBooking,
    operator_headers: dict[str, str],
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(answers, "RETRY_AFTER_SECONDS", 0.0)
    booking = add_booking(1001)
    async with open_client(redis_url=proxy.url) as client:
        await stats(client, admin_headers)
        assert (await cache_figures(client, admin_headers))["hits"] == 0
        await stats(client, admin_headers)
        assert (await cache_figures(client, admin_headers))["hits"] == 1

        await proxy.cut()
        add_booking(1002)
        edit = await client.patch(
            f"/api/bookings/{booking}", json={"confirmed": 2}, headers=operator_headers
        )
        assert edit.status_code == 200, edit.text
        fresh = await stats(client, admin_headers)
        assert (fresh["total_users"], fresh["confirmed_payments"]) == (2, 1)
        figures = await cache_figures(client, admin_headers)
        assert not figures["available"] and figures["errors"] >= 1

        await proxy.start()
        assert await stats(client, admin_headers) == fresh, (
            "the invalidation Redis missed is delivered before anything is read from it"
        )
        assert await stats(client, admin_headers) == fresh
        figures = await cache_figures(client, admin_headers)
        assert figures["available"] and figures["hits"] == 2
