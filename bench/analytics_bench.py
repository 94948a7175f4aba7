"""Analytics speed: every dashboard and users route over HTTP, against the original SQL.

    python bench/analytics_bench.py --users 100000 [--repeat 200]
    python bench/analytics_bench.py --users 1000000 --database-url postgresql://…/bench_1m

Seeds a database at the scale, serves the real app with uvicorn in a process of its own
(cache off: CACHE_TTL_SECONDS=0, no REDIS_URL), times each route of docs/reference.md §5
over HTTP with an admin token, then runs the straightforward SQL of the original design
(naive_analytics.sql) on the same data, checks once that both give the same answer, and
prints p50/p95 per route, the naive p50, the speed-up and the goals of issue 3.

Without --database-url the database is a scratch one on DATABASE_URL's server (or on an
embedded PostgreSQL in a temporary directory), dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
from analytics_probes import (
    COMMON_TERM,
    DAYS,
    RARE_MATCHES,
    BenchData,
    Probe,
    dashboard_probes,
    route_path,
    users_probes,
)
from bench_support import migrate, scratch_database, seed, server_admin_url
from naive_analytics import disagreement, run_naive
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_token
from coursedesk.config import load_settings
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.embedded import ensure_database, server_url
from coursedesk.db.engine import Database, create_app_engine, create_tool_engine, libpq_url
from coursedesk.db.seed import default_anchor, source_tables_empty
from coursedesk.web.threaded import free_port

# Wide enough for the table when the output goes to a file or a pipe.
console = Console(highlight=False, width=120)

WARM_UP_ROUNDS = 3


@contextmanager
def bench_database(arguments: argparse.Namespace) -> Iterator[str]:
    """The database to measure: the one given (seeded first if empty, kept afterwards), or
    a scratch one seeded now and dropped afterwards."""
    if arguments.database_url:
        url = libpq_url(arguments.database_url)
        ensure_database(server_url(url, "postgres"), make_url(url).database or "")
        migrate(url)
        if _sources_empty(url):
            _seed(url, arguments)
        else:
            console.print("reusing the rows already in the database (--users not applied)")
        yield url
        return
    with scratch_database(server_admin_url(), "analytics_bench") as url:
        _seed(url, arguments)
        yield url


def vacuum(url: str) -> None:
    """VACUUM (ANALYZE), as autovacuum does within minutes of a bulk load: until then no
    page is marked all-visible, and every index-only scan reads the table as well."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")
    console.print(f"vacuumed in {time.perf_counter() - started:.1f} s")


def _sources_empty(url: str) -> bool:
    engine = create_tool_engine(url, load_settings(database_url=url))
    try:
        with engine.connect() as connection:
            return source_tables_empty(connection)
    finally:
        engine.dispose()


def _seed(url: str, arguments: argparse.Namespace) -> None:
    plan = GenerationPlan(users=arguments.users, seed=arguments.seed, anchor=default_anchor())
    console.print(f"seeding {arguments.users:,} users …")
    result = seed(url, plan)
    console.print(f"seeded {result.total_rows:,} rows in {result.seconds:.1f} s")


async def _admin_token(url: str) -> str:
    """A bearer token for the role that may read every route, made as the tests make theirs."""
    database = Database(create_app_engine(url, load_settings(database_url=url)))
    try:
        async with database.transaction() as session:
            _, token = await create_token(
                session, Role.admin, "analytics-bench", created_by="analytics-bench"
            )
        return token
    finally:
        await database.dispose()


def serve(port: int) -> None:
    """The app as `coursedesk serve` runs it, without the access log."""
    import uvicorn

    from coursedesk.web.app import create_app

    uvicorn.run(
        create_app(load_settings()),
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
    )


@contextmanager
def served_app(url: str, replica_url: str | None = None) -> Iterator[str]:
    """The app on `url`'s database (and `replica_url`'s replica, if given), in a process
    of its own, with every cache off."""
    port = free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REDIS_URL", "DATABASE_REPLICA_URL")
    } | {"DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(32), "CACHE_TTL_SECONDS": "0"}
    if replica_url is not None:
        environment["DATABASE_REPLICA_URL"] = replica_url
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=environment)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(30)


def _wait_until_healthy(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/api/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the app did not come up at {base_url}")


def _get(client: httpx.Client, path: str) -> httpx.Response:
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
    return response


def look_up(client: httpx.Client, url: str, timezone: str) -> BenchData:
    """The inputs of the probes: the busiest stream, and a user from the middle of the
    bookings whose username only a handful of users share, the rare search term."""
    users = _get(client, "/api/stats").json()["total_users"]
    streams = _get(client, "/api/courses/streams").json()["items"]
    stream = max(streams, key=lambda item: item["unique_users"])["course_stream"]
    user_id, rare_term = _rare_user(client, url)
    today = datetime.now(ZoneInfo(timezone)).date()
    return BenchData(
        users=users,
        stream=stream,
        user_id=user_id,
        rare_term=rare_term,
        first_day=today - timedelta(days=DAYS - 1),
        last_day=today,
        timezone=timezone,
    )


def _rare_user(client: httpx.Client, url: str) -> tuple[int, str]:
    """Generated usernames repeat (a first name, a suffix, often a number below 1,000), so
    the candidates are tried until one's username matches few enough users."""
    with psycopg.connect(url) as connection:
        candidates = connection.execute(
            "SELECT user_id FROM bookings WHERE username IS NOT NULL ORDER BY id "
            "LIMIT 200 OFFSET (SELECT count(*) FROM bookings) / 2"
        ).fetchall()
    for (user_id,) in candidates:
        username = _get(client, f"/api/users/{user_id}").json()["username"]
        if username and search_matches(client, username) <= RARE_MATCHES:
            return int(user_id), username
    raise RuntimeError("no user in the middle of the bookings has a rare username")


def search_matches(client: httpx.Client, term: str) -> int:
    total: int = _get(client, route_path("/api/users", search=term, limit=1)).json()["total"]
    return total


def time_routes(client: httpx.Client, probes: list[Probe], repeat: int) -> dict[str, list[float]]:
    """Seconds per request of each probe; the probes take turns, so a busy moment on the
    machine spreads over all of them rather than landing on one."""
    for _ in range(WARM_UP_ROUNDS):
        for probe in probes:
            _get(client, probe.path)
    samples: dict[str, list[float]] = {probe.path: [] for probe in probes}
    for _ in range(repeat):
        for probe in probes:
            started = time.perf_counter()
            _get(client, probe.path)
            samples[probe.path].append(time.perf_counter() - started)
    return samples


@dataclass(frozen=True)
class Measured:
    probe: Probe
    p50_ms: float
    p95_ms: float
    naive_ms: float | None
    disagreement: str | None

    @property
    def speed_up(self) -> float | None:
        return None if self.naive_ms is None else self.naive_ms / self.p50_ms

    def verdict(self) -> str:
        if self.probe.goal is None:
            return ""
        if self.probe.goal.met(self.p50_ms, self.p95_ms, self.speed_up):
            return "[green]met[/]"
        return "[red]not met[/]"


def measure(
    probes: list[Probe],
    samples: dict[str, list[float]],
    answers: dict[str, object],
    url: str,
    naive_repeat: int,
) -> list[Measured]:
    measured = []
    for probe in probes:
        seconds = samples[probe.path]
        naive_ms = problem = None
        if probe.naive is not None:
            console.print(f"naive SQL for {probe.path} …")
            run = run_naive(url, probe.naive, naive_repeat)
            naive_ms, problem = run.median_ms, disagreement(answers[probe.path], run.rows)
        measured.append(
            Measured(
                probe=probe,
                p50_ms=1000 * statistics.median(seconds),
                p95_ms=1000 * statistics.quantiles(seconds, n=20, method="inclusive")[-1],
                naive_ms=naive_ms,
                disagreement=problem,
            )
        )
    return measured


def report(title: str, measured: list[Measured]) -> None:
    table = Table(title=title)
    table.add_column("route")
    for column in ("p50 ms", "p95 ms", "naive p50 ms", "speed-up"):
        table.add_column(column, justify="right")
    table.add_column("goal")
    table.add_column("")
    for row in measured:
        speed_up = row.speed_up
        table.add_row(
            row.probe.path,
            f"{row.p50_ms:.1f}",
            f"{row.p95_ms:.1f}",
            "" if row.naive_ms is None else _figure(row.naive_ms),
            "" if speed_up is None else f"{_figure(speed_up)}×",
            row.probe.goal.describe() if row.probe.goal else "",
            row.verdict(),
        )
    console.print(table)


def _figure(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def _scale(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT current_setting('server_version'), (SELECT count(*) FROM bookings), "
            "(SELECT count(*) FROM events), (SELECT count(*) FROM free_lesson_registrations)"
        ).fetchone()
    assert row is not None
    version, bookings, events, registrations = row
    return (
        f"{bookings:,} bookings, {events:,} events, {registrations:,} free-lesson "
        f"registrations; PostgreSQL {version}"
    )


def _load() -> str:
    return ", ".join(f"{figure:.2f}" for figure in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=100_000, help="users to seed (100,000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per route")
    parser.add_argument("--naive-repeat", type=int, default=3, help="runs of each naive query")
    parser.add_argument(
        "--database-url",
        help=(
            "measure this database and keep it: created, migrated and seeded at --users when "
            "its source tables are empty, reused as it is otherwise, so that a 1M-user data "
            "set is seeded once and measured as often as wanted"
        ),
    )
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve)
        return

    timezone = load_settings().app_timezone
    load_before = _load()
    with bench_database(arguments) as url:
        vacuum(url)
        token = asyncio.run(_admin_token(url))
        with (
            served_app(url) as base_url,
            httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=600
            ) as client,
        ):
            data = look_up(client, url, timezone)
            probes = dashboard_probes(data) + users_probes(data)
            console.print(f"timing {len(probes)} routes × {arguments.repeat} requests …")
            samples = time_routes(client, probes, arguments.repeat)
            answers = {p.path: _get(client, p.path).json() for p in probes if p.naive}
            common_matches = search_matches(client, COMMON_TERM)
            rare_matches = search_matches(client, data.rare_term)
        load_after_routes = _load()
        measured = measure(probes, samples, answers, url, arguments.naive_repeat)
        scale = _scale(url)
    report(f"analytics at {data.users:,} users (the goals of issue 3 hold at 1M)", measured)
    console.print(f"data: {data.users:,} users, {scale}; APP_TIMEZONE {timezone}")
    console.print(
        f"search terms: {COMMON_TERM!r} matches {common_matches:,} users, "
        f"{data.rare_term!r} {rare_matches:,}"
    )
    console.print(
        f"load average (1, 5, 15 min): {load_before} before, {load_after_routes} after the "
        f"routes, {_load()} at the end; {os.cpu_count()} CPUs; "
        f"{arguments.repeat} requests per route, naive p50 of {arguments.naive_repeat} runs"
    )
    problems = [row for row in measured if row.disagreement]
    for row in problems:
        console.print(f"[red]MISMATCH[/] {row.probe.path}: {row.disagreement}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
