"""What watching costs and what the answer cache saves, measured in this process.

    python bench/monitoring_bench.py [--users 20000] [--redis-url redis://127.0.0.1:6379/0]

1. Query recording: `QueryMonitor.record` alone, then `SELECT 1` on one connection with
   and without the cursor-event listeners, so the difference is the cost per statement.
2. Request metrics: a do-nothing ASGI app called with and without the middleware.
3. The answer cache: `GET /api/stats` and `GET /api/stats/daily` through the app (ASGI,
   admin token) with CACHE_TTL_SECONDS=0, then with the in-process cache and with Redis
   (when --redis-url answers), on a scratch database seeded with --users users.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from asgi_lifespan import LifespanManager
from bench_support import scratch_database, seed, server_admin_url
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_token
from coursedesk.analytics.sql_files import named_sql
from coursedesk.config import Settings, load_settings
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.engine import Database, create_app_engine
from coursedesk.db.seed import default_anchor
from coursedesk.monitoring.metrics import AppMetrics, RequestMetricsMiddleware
from coursedesk.monitoring.queries import QueryMonitor
from coursedesk.web.app import create_app

console = Console(highlight=False, width=120)


def microseconds(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def time_record(calls: int) -> float:
    """Seconds per `record()` call, over the statements the dashboard really runs."""
    statements = [
        str(named_sql(name))
        for name in ("dashboard_stats", "daily_activity", "user_growth", "course_figures")
    ]
    monitor = QueryMonitor()
    started = time.perf_counter()
    for call in range(calls):
        monitor.record("primary", statements[call % len(statements)], 0.001)
    return (time.perf_counter() - started) / calls


async def time_select_one(database: Database, runs: int, *, watched: bool) -> float:
    """Median CPU seconds of this process per `SELECT 1` on one connection, in rounds of
    500: the server's share and the machine's other load stay out of the figure."""
    monitor = QueryMonitor()
    stop = monitor.watch("primary", database.primary) if watched else None
    rounds = []
    try:
        async with database.primary.connect() as connection:
            for _ in range(runs // 500):
                started = time.process_time()
                for _ in range(500):
                    await connection.execute(text("SELECT 1"))
                rounds.append((time.process_time() - started) / 500)
    finally:
        if stop is not None:
            stop()
    return statistics.median(rounds)


async def time_middleware(calls: int) -> tuple[float, float]:
    """Seconds per call of a do-nothing ASGI app, bare and behind the metrics middleware."""

    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    async def send(message: object) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": "/"}
    measured = RequestMetricsMiddleware(bare, AppMetrics())
    results = []
    for app in (bare, measured):
        started = time.perf_counter()
        for _ in range(calls):
            await app(dict(scope), receive, send)
        results.append((time.perf_counter() - started) / calls)
    return results[0], results[1]


async def request_times(
    settings: Settings, database: Database, path: str, requests: int
) -> tuple[float, float]:
    """p50 and p95 milliseconds of `path` through the app, after one warm-up request."""
    async with database.transaction() as session:
        _, token = await create_token(session, Role.admin, "bench", created_by="bench")
    application = create_app(settings, database=database)
    durations = []
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            (await client.get(path)).raise_for_status()
            for _ in range(requests):
                started = time.perf_counter()
                (await client.get(path)).raise_for_status()
                durations.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(durations, n=20)
    return statistics.median(durations), quantiles[18]


async def redis_answers(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def run(arguments: argparse.Namespace, url: str) -> None:
    base = load_settings(database_url=url, secret_key="bench-secret-key-0123456789")
    database = Database(create_app_engine(url, base))
    try:
        console.print(f"record(): {microseconds(time_record(200_000))} per statement")
        bare = await time_select_one(database, arguments.selects, watched=False)
        watched = await time_select_one(database, arguments.selects, watched=True)
        console.print(
            f"SELECT 1, client CPU: {microseconds(bare)} bare, {microseconds(watched)} watched "
            f"(+{microseconds(watched - bare)} per statement)"
        )
        plain, measured = await time_middleware(50_000)
        console.print(
            f"ASGI call: {microseconds(plain)} bare, {microseconds(measured)} with metrics "
            f"(+{microseconds(measured - plain)} per request)"
        )
        caches: list[tuple[str, dict[str, object]]] = [
            ("no cache (TTL 0)", {"cache_ttl_seconds": 0}),
            ("in-process cache", {"cache_ttl_seconds": 5, "redis_url": None}),
        ]
        if await redis_answers(arguments.redis_url):
            caches.append(
                ("Redis cache", {"cache_ttl_seconds": 5, "redis_url": arguments.redis_url})
            )
        for path in ("/api/stats", "/api/stats/daily?days=90"):
            for name, changes in caches:
                p50, p95 = await request_times(
                    base.model_copy(update=changes), database, path, arguments.requests
                )
                console.print(f"{path:<26} {name:<18} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
    finally:
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--selects", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    arguments = parser.parse_args()
    with scratch_database(server_admin_url(), "coursedesk_monitoring_bench") as url:
        seed(url, GenerationPlan(users=arguments.users, seed=1, anchor=default_anchor()))
        asyncio.run(run(arguments, url))


if __name__ == "__main__":
    main()
