"""GET /api/system/queries, GET /api/system/cache and the Prometheus /metrics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert

from coursedesk.broadcasts.models import MessageHistory, MessageRecipient
from coursedesk.config import Settings
from coursedesk.db.engine import Database, create_app_engine
from coursedesk.web.app import create_app


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def labelled(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> list[Any]:
    return [dict(labels) for sample, labels in found if sample == name]


async def test_the_queries_route_is_for_admins(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    assert (await client.get("/api/system/queries")).status_code == 401
    refused = await client.get("/api/system/queries", headers=viewer_headers)
    assert refused.status_code == 403 and "error" in refused.json()
    assert (await client.get("/api/system/cache", headers=viewer_headers)).status_code == 403
    assert (await client.get("/api/system/queries", headers=admin_headers)).status_code == 200


async def test_the_queries_route_shows_the_app_s_statements_and_pools(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    assert (await client.get("/api/stats", headers=admin_headers)).status_code == 200
    answer = await client.get("/api/system/queries", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert set(report) == {
        "since",
        "statements_tracked",
        "statements_dropped",
        "queries",
        "slowest",
        "pools",
    }
    shapes = {query["statement"]: query for query in report["queries"]}
    stats = next(query for shape, query in shapes.items() if "total_users" in shape)
    assert stats["database"] == "primary" and stats["count"] == 1
    assert 0 < stats["mean_ms"] <= stats["p95_ms"] <= stats["max_ms"]
    durations = [run["duration_ms"] for run in report["slowest"]]
    assert durations and durations == sorted(durations, reverse=True)
    (pool,) = report["pools"]
    assert pool["database"] == "primary" and pool["size"] == settings.db_pool_size
    assert pool["checked_out"] >= 1 and pool["waiting"] == 0


async def test_metrics_need_an_admin_unless_public(
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
    admin_headers: dict[str, str],
    settings: Settings,
    database: Database,
) -> None:
    assert (await client.get("/metrics")).status_code == 401
    refused = await client.get("/metrics", headers=viewer_headers)
    assert refused.status_code == 403 and "error" in refused.json()
    allowed = await client.get("/metrics", headers=admin_headers)
    assert allowed.status_code == 200 and allowed.headers["content-type"].startswith("text/plain")

    public = create_app(settings.model_copy(update={"metrics_public": True}), database=database)
    async with LifespanManager(public):
        transport = httpx.ASGITransport(app=public)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as anyone:
            assert (await anyone.get("/metrics")).status_code == 200


async def test_openmetrics_is_served_to_scrapers_that_ask_for_it_and_text_otherwise(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    answer = await client.get(
        "/metrics", headers={**admin_headers, "Accept": "application/openmetrics-text"}
    )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    for malformed in ("application/openmetrics-text; version=abc", "text/plain; version=x.y"):
        answer = await client.get("/metrics", headers={**admin_headers, "Accept": malformed})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")


async def test_metrics_cover_requests_queries_pools_cache_and_broadcasts(
    client: httpx.AsyncClient, admin_headers: dict[str, str], sync_engine: Engine
) -> None:
    with sync_engine.begin() as connection:
        message_id = connection.execute(
            insert(MessageHistory)
            .values(message_text="hi", recipient_type="group", audience={}, status="sending")
            .returning(MessageHistory.id)
        ).scalar_one()
        connection.execute(
            insert(MessageRecipient),
            [
                {"message_id": message_id, "user_id": 1, "delivery_status": "sent"},
                {"message_id": message_id, "user_id": 2, "delivery_status": "failed"},
                {"message_id": message_id, "user_id": 3, "delivery_status": "pending"},
            ],
        )
    for user_id in (5, 6):
        await client.get(f"/api/users/{user_id}", headers=admin_headers)
    await client.get("/no/such/page", headers=admin_headers)
    found = samples((await client.get("/metrics", headers=admin_headers)).text)

    user_route = frozenset(
        {("method", "GET"), ("route", "/api/users/{user_id}"), ("status", "404")}
    )
    assert found[("coursedesk_http_requests_total", user_route)] == 2
    unmatched = frozenset({("method", "GET"), ("route", "unmatched"), ("status", "404")})
    assert found[("coursedesk_http_requests_total", unmatched)] == 1
    latency = frozenset({("method", "GET"), ("route", "/api/users/{user_id}")})
    assert found[("coursedesk_http_request_duration_seconds_count", latency)] == 2

    runs = labelled(found, "coursedesk_db_statement_runs_total")
    assert runs and {labels["database"] for labels in runs} == {"primary"}
    assert all(len(labels["statement"]) <= 120 for labels in runs)
    assert any(labels["statement"].startswith("SELECT") for labels in runs)
    assert labelled(found, "coursedesk_db_statement_p95_seconds")
    assert found[("coursedesk_db_pool_size", frozenset({("database", "primary")}))] == 10
    waiting = frozenset({("database", "primary"), ("state", "waiting")})
    assert found[("coursedesk_db_pool_connections", waiting)] == 0

    assert found[("coursedesk_cache_up", frozenset())] == 0, "the tests run without a cache"
    assert found[("coursedesk_cache_errors_total", frozenset())] == 0

    assert found[("coursedesk_broadcasts", frozenset({("status", "sending")}))] == 1
    assert found[("coursedesk_broadcasts", frozenset({("status", "sent")}))] == 0
    for status, count in (("sent", 1), ("failed", 1), ("pending", 1), ("deleted", 0)):
        key = ("coursedesk_broadcast_recipients", frozenset({("delivery_status", status)}))
        assert found[key] == count


async def test_each_app_keeps_figures_of_its_own(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    settings: Settings,
    database: Database,
) -> None:
    await client.get("/api/stats", headers=admin_headers)
    other = create_app(settings, database=database)
    async with LifespanManager(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as second:
            found = samples((await second.get("/metrics", headers=admin_headers)).text)
    stats_route = frozenset({("method", "GET"), ("route", "/api/stats"), ("status", "200")})
    assert ("coursedesk_http_requests_total", stats_route) not in found


@pytest.mark.parametrize("path", ["/api/system/queries", "/api/system/cache"])
async def test_monitoring_routes_are_documented(client: httpx.AsyncClient, path: str) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "get" in document["paths"][path]


async def test_public_metrics_still_answer_while_the_database_is_down(
    settings: Settings,
) -> None:
    down = settings.model_copy(
        update={
            "metrics_public": True,
            "database_url": "postgresql://coursedesk@127.0.0.1:9/coursedesk",
            "db_connect_timeout": 1,
        }
    )
    unreachable = Database(create_app_engine(down.database_url, down))
    app = create_app(down, database=unreachable)
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as scraper:
                answer = await scraper.get("/metrics")
    finally:
        await unreachable.dispose()
    assert answer.status_code == 200
    assert "coursedesk_database_up 0.0" in answer.text
    assert "coursedesk_http_requests_total" in answer.text
    assert "coursedesk_broadcasts{" not in answer.text
