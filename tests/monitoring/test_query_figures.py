"""Statement shapes, per-statement figures within their bounds, and pool figures."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from coursedesk.config import Settings
from coursedesk.db.engine import Database, create_app_engine
from coursedesk.monitoring import queries
from coursedesk.monitoring.pools import WaitCountingPool, database_pools
from coursedesk.monitoring.queries import QueryMonitor
from coursedesk.monitoring.statements import SHOWN_CHARS, normalize


@pytest.mark.parametrize(
    ("statement", "shape"),
    [
        (
            "SELECT * FROM users\n  WHERE id = %(id_1)s AND name = 'O''Brien'",
            "SELECT * FROM users WHERE id = ? AND name = ?",
        ),
        (
            "SELECT 1 FROM t1 WHERE x IN (%(x_1_1)s, %(x_1_2)s, %(x_1_3)s) LIMIT 20",
            "SELECT ? FROM t1 WHERE x IN (?, …) LIMIT ?",
        ),
        (
            "UPDATE events SET n = 2.5 -- a comment\nWHERE id = $1",
            "UPDATE events SET n = ? WHERE id = ?",
        ),
        ('SELECT count_2024 FROM "col1"', 'SELECT count_2024 FROM "col1"'),
    ],
)
def test_statements_are_reduced_to_their_shape(statement: str, shape: str) -> None:
    assert normalize(statement) == shape


def test_a_huge_statement_is_shown_shortened() -> None:
    shape = normalize("SELECT " + ", ".join(f"column_{n}" for n in range(5000)))
    assert len(shape) == SHOWN_CHARS and shape.endswith("…")


def test_runs_of_one_shape_count_together_with_mean_p95_and_max() -> None:
    monitor = QueryMonitor()
    for milliseconds in range(1, 101):
        monitor.record(
            "primary", f"SELECT * FROM events WHERE id = {milliseconds}", milliseconds / 1000
        )
    (figures,) = monitor.statements()
    assert figures.statement == "SELECT * FROM events WHERE id = ?"
    assert (figures.count, figures.mean_ms, figures.p95_ms, figures.max_ms) == (100, 50.5, 95, 100)
    assert figures.total_ms == 5050


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "MAX_STATEMENTS", 3)
    monkeypatch.setattr(queries, "RECENT_RUNS", 5)
    monitor = QueryMonitor()
    for table in ("a", "b", "c", "a", "d"):
        monitor.record("primary", f"SELECT * FROM {table}", 0.001)
    report = monitor.report(pools=[])
    assert [figure.statement for figure in report.queries] == [
        "SELECT * FROM a",
        "SELECT * FROM c",
        "SELECT * FROM d",
    ]
    assert report.statements_dropped == 1, "the least recently run shape (b) made room"
    for seconds in (0.5, 0.1, 0.2, 0.3, 0.4, 0.05):
        monitor.record("replica", "SELECT 1", seconds)
    slowest = monitor.slowest(limit=2)
    assert [(run.database, run.duration_ms) for run in slowest] == [
        ("replica", 400),
        ("replica", 300),
    ], "the 0.5 s run is older than the last RECENT_RUNS runs"


async def test_watching_an_engine_times_its_statements_until_stopped(database: Database) -> None:
    monitor = QueryMonitor()
    stop = monitor.watch("primary", database.primary)
    async with database.primary.connect() as connection:
        await connection.execute(text("SELECT pg_sleep(0.02)"))
        stop()
        await connection.execute(text("SELECT pg_sleep(0.02)"))
    (figures,) = monitor.statements()
    assert figures.statement == "SELECT pg_sleep(?)" and figures.count == 1
    assert figures.mean_ms >= 20
    (slowest,) = monitor.slowest()
    assert slowest.statement_id == figures.statement_id


async def test_the_pool_counts_checkouts_waiting_for_a_connection(
    settings: Settings, database_url: str
) -> None:
    small = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    database = Database(create_app_engine(database_url, small))
    pool = database.primary.sync_engine.pool
    assert isinstance(pool, WaitCountingPool)
    try:
        async with database.primary.connect() as holding:
            await holding.execute(text("SELECT 1"))
            waiting = asyncio.create_task(database.primary.connect().start())
            await asyncio.sleep(0.05)
            (figures,) = database_pools(database)
            assert (figures.database, figures.size, figures.checked_out) == ("primary", 1, 1)
            assert figures.waiting == 1
        connection = await waiting
        await connection.close()
        (figures,) = database_pools(database)
        assert (figures.checked_out, figures.idle, figures.waiting) == (0, 1, 0)
    finally:
        await database.dispose()
