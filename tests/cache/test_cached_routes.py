"""The in-process answer cache behind the analytics routes and dashboard blocks: answers
kept within the TTL, and dropped by every write made through the app."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from cache_support import WEBHOOK_SECRET, AddBooking, OpenClient
from sqlalchemy import Engine

from coursedesk.analytics.folding import fold_pending
from coursedesk.config import load_settings
from coursedesk.errors import ConfigError


async def get_json(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    answer = await client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def cache_figures(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> Any:
    return await get_json(client, "/api/system/cache", admin_headers)


async def test_answers_are_kept_until_a_booking_edit(
    client: httpx.AsyncClient,
    add_booking: AddBooking,
    viewer_headers: dict[str, str],
    operator_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    booking = add_booking(101)
    before = await get_json(client, "/api/stats", viewer_headers)
    assert (before["total_users"], before["confirmed_payments"]) == (1, 0)

    add_booking(102)
    assert await get_json(client, "/api/stats", viewer_headers) == before

    edit = await client.patch(
        f"/api/bookings/{booking}", json={"confirmed": 2}, headers=operator_headers
    )
    assert edit.status_code == 200, edit.text
    after = await get_json(client, "/api/stats", viewer_headers)
    assert (after["total_users"], after["confirmed_payments"]) == (2, 1)

    figures = await cache_figures(client, admin_headers)
    assert figures["backend"] == "memory" and figures["available"]
    assert (figures["hits"], figures["misses"], figures["invalidations"]) == (1, 2, 1)
    assert figures["caches"] == [{"name": "analytics.dashboard_stats", "hits": 1, "misses": 2}]


async def test_a_stream_change_refreshes_the_stream_figures(
    client: httpx.AsyncClient,
    add_booking: AddBooking,
    viewer_headers: dict[str, str],
    operator_headers: dict[str, str],
) -> None:
    add_booking(201, course_stream="spring")
    streams = await get_json(client, "/api/courses/streams", viewer_headers)
    assert [row["course_stream"] for row in streams["items"]] == ["spring"]

    moved = await client.put(
        "/api/users/201/stream",
        json={"course_stream": "autumn", "create_stream": True},
        headers=operator_headers,
    )
    assert moved.status_code == 200, moved.text
    streams = await get_json(client, "/api/courses/streams", viewer_headers)
    assert [row["course_stream"] for row in streams["items"]] == ["autumn"]


async def test_webhook_events_refresh_the_event_figures(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], sync_engine: Engine
) -> None:
    assert (await get_json(client, "/api/events/top", viewer_headers))["items"] == []
    update = {
        "update_id": 7001,
        "message": {
            "message_id": 1,
            "from": {"id": 301, "is_bot": False, "first_name": "Anna"},
            "chat": {"id": 301, "type": "private"},
            "date": 1_750_000_000,
            "text": "/start",
        },
    }
    posted = await client.post(
        "/api/telegram/webhook",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
    )
    assert posted.status_code == 200, posted.text
    fold_pending(sync_engine)  # as the folder does within a second
    top = await get_json(client, "/api/events/top", viewer_headers)
    assert top["items"] == [{"event_type": "/start", "count": 1, "unique_users": 1}]


async def test_sql_run_through_the_app_refreshes_answers_unless_a_dry_run(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    assert (await get_json(client, "/api/stats", viewer_headers))["total_users"] == 0
    insert = "INSERT INTO events (user_id, event_type) VALUES (401, 'visit')"

    async def migrate(dry_run: bool) -> None:
        body = {"sql": insert, "description": "a visit", "dry_run": dry_run}
        answer = await client.post("/api/db-migrate", json=body, headers=admin_headers)
        assert answer.status_code == 200, answer.text

    await migrate(dry_run=True)
    assert (await cache_figures(client, admin_headers))["invalidations"] == 0
    await migrate(dry_run=False)
    assert (await get_json(client, "/api/stats", viewer_headers))["total_users"] == 1
    assert (await cache_figures(client, admin_headers))["invalidations"] == 1


async def test_the_dashboard_blocks_share_the_answers_of_the_api(
    client: httpx.AsyncClient, add_booking: AddBooking, admin_headers: dict[str, str]
) -> None:
    add_booking(501)
    await get_json(client, "/api/stats", admin_headers)
    block = await client.get("/dashboard/blocks/stats", headers=admin_headers)
    assert block.status_code == 200, block.text
    (stats,) = (await cache_figures(client, admin_headers))["caches"]
    assert (stats["name"], stats["hits"], stats["misses"]) == ("analytics.dashboard_stats", 1, 1)


async def test_rows_the_bot_inserts_show_once_the_ttl_has_passed(
    open_client: OpenClient, add_booking: AddBooking, viewer_headers: dict[str, str]
) -> None:
    async with open_client(cache_ttl_seconds=0.3) as client:
        add_booking(601)
        assert (await get_json(client, "/api/stats", viewer_headers))["total_users"] == 1
        add_booking(602)
        assert (await get_json(client, "/api/stats", viewer_headers))["total_users"] == 1
        await asyncio.sleep(0.35)
        assert (await get_json(client, "/api/stats", viewer_headers))["total_users"] == 2


async def test_a_ttl_of_zero_turns_the_cache_off(
    open_client: OpenClient,
    add_booking: AddBooking,
    viewer_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    async with open_client(cache_ttl_seconds=0) as client:
        assert (await get_json(client, "/api/stats", viewer_headers))["total_users"] == 0
        add_booking(701)
        assert (await get_json(client, "/api/stats", viewer_headers))["total_users"] == 1
        figures = await cache_figures(client, admin_headers)
        assert (figures["enabled"], figures["backend"], figures["hits"]) == (False, None, 0)


@pytest.mark.parametrize("value", ["11", "-1", "soon", "nan"])
def test_a_ttl_beyond_the_freshness_bound_or_not_a_number_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_TTL_SECONDS", value)
    with pytest.raises(ConfigError, match=r"^CACHE_TTL_SECONDS: "):
        load_settings()


def test_the_ttl_defaults_to_five_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHE_TTL_SECONDS", raising=False)
    assert load_settings().cache_ttl_seconds == 5
    monkeypatch.setenv("CACHE_TTL_SECONDS", "2.5")
    assert load_settings().cache_ttl_seconds == 2.5


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1:6379", "redis://127.0.0.1:port", "redis://127.0.0.1:70000"]
)
def test_a_redis_url_that_cannot_work_is_refused_at_start(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", value)
    with pytest.raises(ConfigError, match=r"^REDIS_URL: "):
        load_settings()
