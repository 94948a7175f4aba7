"""Section 4 of bot_writes.py: fold throughput, the summaries' lag under load, and drift."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, LiteralString

import psycopg
from bot_workload import (
    CONFIRM_BOOKING,
    EVENT_TYPES,
    LESSON_TYPES,
    NEW_USERS,
    Data,
    connect,
    console,
    event_details,
    insert_booking,
    insert_event,
    names_of,
    percentile,
    wait_drained,
)
from rich.table import Table

from coursedesk.analytics.drift import find_drift
from coursedesk.analytics.folding import READ_STATE, fold_pending
from coursedesk.config import FRESHNESS_BOUND_SECONDS, load_settings
from coursedesk.db.engine import create_tool_engine

LOAD_SESSIONS = 8
FOLD_RATE_GOAL = 20_000
# The bot's registration for a free lesson, one of 4b's paced statements.
INSERT_REGISTRATION: LiteralString = (
    "INSERT INTO free_lesson_registrations (user_id, username, first_name, lesson_type, "
    "lesson_date) VALUES (%s, %s, %s, %s, current_date + 7)"
)


COPY_COLUMNS: dict[str, LiteralString] = {
    "events": "COPY events (user_id, event_type, details) FROM STDIN",
    "bookings": "COPY bookings (user_id, username, first_name, course_id, course_stream, "
    "confirmed, referral_code, discount_percent) FROM STDIN",
    "free_lesson_registrations": "COPY free_lesson_registrations (user_id, username, "
    "first_name, email, lesson_type, lesson_date) FROM STDIN",
}
# The shares of the three tables in what `db seed` generates (docs/benchmarks.md).
SEEDED_MIX = {"events": 0.91, "bookings": 0.05, "free_lesson_registrations": 0.04}
BOOKINGS = {"bookings": 1.0}


def load_backlog(data: Data, rows: int, mix: dict[str, float]) -> tuple[int, float]:
    """COPY `rows` rows into the source tables in the shares of `mix`, 1,000 rows a
    statement in random order (so the log interleaves them as the bot's writes do), for
    seeded users and (a quarter) new ones; COPY fires the capture triggers row by row."""
    rng = random.Random(f"backlog:{rows}:{sorted(mix)}")
    new_users = [NEW_USERS + 400_000_000 + n for n in range(20_000)]

    def user() -> int:
        return rng.choice(new_users) if rng.random() < 0.25 else rng.choice(data.users)

    def row(table: str) -> tuple[object, ...]:
        who = user()
        if table == "events":
            event_type = rng.choice(EVENT_TYPES)
            return (who, event_type, json.dumps(event_details(rng, event_type)))
        day = date(2026, 11, 1) + timedelta(days=rng.randrange(60))
        if table == "free_lesson_registrations":
            return (who, *names_of(data, who), f"{who}@example.org", rng.choice(LESSON_TYPES), day)
        course, stream = rng.choice(data.streams)
        referral = rng.random() < 0.1
        return (
            who,
            *names_of(data, who),
            course,
            stream,
            rng.choice((1, 1, 1, 2, -1)),
            "FRIEND10" if referral else None,
            10 if referral else None,
        )

    tables = list(mix)
    started = time.perf_counter()
    with psycopg.connect(data.url, autocommit=True) as connection:
        for first in range(0, rows, 1_000):
            table = rng.choices(tables, weights=[mix[t] for t in tables])[0]
            with connection.cursor().copy(COPY_COLUMNS[table]) as copy:
                for _ in range(min(1_000, rows - first)):
                    copy.write_row(row(table))
    return rows, time.perf_counter() - started


def confirm_backlog(data: Data, count: int) -> tuple[int, float]:
    """`count` pending bookings confirmed, 500 a statement: two change rows each, and a
    user recomputed from the source tables in the fold."""
    started = time.perf_counter()
    with psycopg.connect(data.url, autocommit=True) as connection:
        ids = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM bookings WHERE confirmed = 1 ORDER BY random() LIMIT %s", (count,)
            )
        ]
        for first in range(0, len(ids), 500):
            connection.execute(
                "UPDATE bookings SET confirmed = 2 WHERE id = ANY(%s)", (ids[first : first + 500],)
            )
    return 2 * len(ids), time.perf_counter() - started


def fold_throughput(data: Data, rows: int) -> None:
    """With no folder running, a backlog written fast, then `fold_pending` timed."""
    engine = create_tool_engine(data.url, load_settings(database_url=data.url))
    table = Table(
        title="4a. fold throughput: a backlog written with no folder running, then "
        "fold_pending() timed"
    )
    for column in ("backlog", "change rows", "written in s", "folded rows", "fold s", "rows/s"):
        table.add_column(column, justify="left" if column == "backlog" else "right")
    try:
        fold_pending(engine)
        runs = (
            (
                f"{rows:,} rows as seeded (91 % events, 5 % bookings, 4 % registrations), COPY",
                lambda: load_backlog(data, rows, SEEDED_MIX),
            ),
            (f"{rows // 10:,} bookings, COPY", lambda: load_backlog(data, rows // 10, BOOKINGS)),
            (
                f"{rows // 20:,} pending bookings confirmed, UPDATE",
                lambda: confirm_backlog(data, rows // 20),
            ),
        )
        for name, write in runs:
            written, writing = write()
            started = time.perf_counter()
            folded = fold_pending(engine)
            seconds = time.perf_counter() - started
            table.add_row(
                name,
                f"{written:,}",
                f"{writing:.2f}",
                f"{folded:,}",
                f"{seconds:.2f}",
                f"{folded / seconds:,.0f}",
            )
            data.goal(
                f"fold ≥ {FOLD_RATE_GOAL:,} rows/s: {name}",
                f"{folded / seconds:,.0f} rows/s",
                folded / seconds >= FOLD_RATE_GOAL,
            )
    finally:
        engine.dispose()
    console.print(table)


@dataclass
class LagRun:
    statements: int
    change_rows: int
    seconds: float
    lags: list[float]
    drained: float
    client_cpu: float


async def paced_session(
    connection: psycopg.AsyncConnection[Any],
    number: int,
    rate: float,
    deadline: float,
    data: Data,
    counts: Counter[str],
) -> None:
    """One-row statements at `rate` a second (catching up when late): 88 % events, 5 %
    bookings, 4 % free-lesson registrations, 3 % confirmations of this session's pending
    bookings; half the bookings and registrations are by new users."""
    rng = random.Random(f"lag:{number}")
    pending: list[int] = []
    next_user = NEW_USERS + 500_000_000 + number * 1_000_000
    due = time.perf_counter()
    while due < deadline:
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        due += 1 / rate
        draw = rng.random()
        if draw < 0.03 and pending:
            await connection.execute(CONFIRM_BOOKING, (pending.pop(),))
            counts["change rows"] += 2
        elif draw < 0.12:
            user = next_user if rng.random() < 0.5 else rng.choice(data.users)
            next_user += 1
            if draw < 0.08:
                stream = rng.choice(data.streams)
                pending.append(await insert_booking(connection, data, user, stream))
            else:
                await connection.execute(
                    INSERT_REGISTRATION, (user, *names_of(data, user), rng.choice(LESSON_TYPES))
                )
            counts["change rows"] += 1
        else:
            event_type = rng.choice(EVENT_TYPES)
            await insert_event(connection, rng.choice(data.users), event_type, rng)
            counts["change rows"] += 1
        counts["statements"] += 1


async def lag_under_load(data: Data, rate: float, seconds: float) -> LagRun:
    counts: Counter[str] = Counter()
    lags: list[float] = []
    connections = [await connect(data.url) for _ in range(LOAD_SESSIONS)]
    async with await connect(data.url) as watcher:
        await wait_drained(watcher)
        started = time.perf_counter()
        cpu = time.process_time()
        deadline = started + seconds
        load = asyncio.gather(
            *(
                paced_session(c, n, rate / LOAD_SESSIONS, deadline, data, counts)
                for n, c in enumerate(connections)
            )
        )
        while time.perf_counter() < deadline:
            row = await (await watcher.execute(READ_STATE.text)).fetchone()
            assert row is not None
            oldest, now = row[0], row[1]
            lags.append((now - oldest).total_seconds() if oldest else 0.0)
            await asyncio.sleep(0.25)
        await load
        elapsed = time.perf_counter() - started
        client_cpu = (time.process_time() - cpu) / elapsed
        drained = await wait_drained(watcher)
    for connection in connections:
        await connection.close()
    return LagRun(counts["statements"], counts["change rows"], elapsed, lags, drained, client_cpu)


def report_lag(data: Data, run: LagRun, rate: float) -> None:
    table = Table(
        title=f"4b. lag under load: {LOAD_SESSIONS} sessions paced to {rate:,.0f} statements/s, "
        "folder at its 1 s interval"
    )
    for column in (
        "statements/s",
        "change rows/s",
        "lag samples",
        "lag p50 s",
        "lag p95 s",
        "lag max s",
        "drained after",
        "client CPU",
    ):
        table.add_column(column, justify="right")
    p95, worst = percentile(run.lags, 0.95), max(run.lags)
    table.add_row(
        f"{run.statements / run.seconds:,.0f}",
        f"{run.change_rows / run.seconds:,.0f}",
        str(len(run.lags)),
        f"{percentile(run.lags, 0.5):.2f}",
        f"{p95:.2f}",
        f"{worst:.2f}",
        f"{run.drained:.2f} s",
        f"{run.client_cpu:.0%} of a core",
    )
    console.print(table)
    console.print(
        "lag = age of the oldest change row not yet folded (READ_STATE), sampled every 0.25 s"
    )
    data.goal(
        f"lag at {rate:,.0f} inserts/s: p95 ≤ 2 s, max under the {FRESHNESS_BOUND_SECONDS} s "
        "freshness bound",
        f"p95 {p95:.2f} s, max {worst:.2f} s at {run.statements / run.seconds:,.0f}/s",
        p95 <= 2.0 and worst < FRESHNESS_BOUND_SECONDS,
    )


def check_drift(data: Data) -> None:
    engine = create_tool_engine(data.url, load_settings(database_url=data.url))
    try:
        started = time.perf_counter()
        drifts = find_drift(engine)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    console.print(f"find_drift(): {drifts!r} ({seconds:.1f} s)")
    for drift in drifts:
        console.print(f"  {drift.describe()}")
    data.goal("summaries exact (find_drift() == [])", repr(drifts)[:60], not drifts)
    if drifts:
        data.fail(f"{len(drifts)} summary tables drifted from the source tables")
