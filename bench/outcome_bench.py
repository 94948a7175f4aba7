"""A broadcast's outcome at scale: GET /api/messages/{id}/outcome's query, timed.

    python bench/outcome_bench.py --users 1000000 [--recipients 100000] [--holdout 10]
    python bench/outcome_bench.py --users 1000000 --database-url postgresql://…/bench_1m

Seeds a database at the scale (or reuses the one given, seeded when empty), then writes
straight into it a sent broadcast of --recipients recipients with a control group of
--holdout %, its sends spread over an hour a month before the data's last day, clicks of
6 % of the delivered, every user in bot_users with 2 % of them blocked, and an older
broadcast so that message_recipients is not the bench's alone. Times earnings.outcome_of (both
groups, one query) through the app's own engine and session, as the route calls it, at
windows of 7, 30 and 90 days; checks its figures once against a straightforward query
(one probe per recipient and table); times the CSV; prints p50/p95 and the machine's
load. What it wrote is removed at the end, so a kept database stays as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import psycopg
from bench_support import migrate, scratch_database, seed, server_admin_url
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from coursedesk.broadcasts import earnings
from coursedesk.broadcasts.service import get_message
from coursedesk.config import load_settings
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.embedded import ensure_database, server_url
from coursedesk.db.engine import Database, create_app_engine, libpq_url
from coursedesk.db.seed import default_anchor

console = Console(highlight=False, width=120)
BENCH_TEXT = "outcome bench"
BENCH_USERNAME = "outcome-bench"
GOAL_MS = 200.0
WINDOWS = (7, 30, 90)

# The straightforward reading of docs/reference.md §8: per recipient, one probe into each
# table. It answers the same figures, slowly; the bench checks the fast query against it.
NAIVE_GROUP = """
WITH g AS (
    SELECT r.id, r.user_id,
           CASE WHEN r.delivery_status = 'holdout' THEN %(holdout_from)s ELSE r.sent_at END
               AS s,
           make_interval(days => %(days)s) AS w
    FROM message_recipients AS r
    WHERE r.message_id = %(m)s AND r.delivery_status = ANY(%(statuses)s)
)
SELECT count(*),
       count(*) FILTER (WHERE EXISTS (SELECT FROM broadcast_clicks c WHERE c.recipient_id = g.id
                        AND c.first_clicked_at >= g.s AND c.first_clicked_at < g.s + g.w)),
       count(*) FILTER (WHERE EXISTS (SELECT FROM bookings k WHERE k.user_id = g.user_id
                        AND k.created_at >= g.s AND k.created_at < g.s + g.w)),
       count(*) FILTER (WHERE EXISTS (SELECT FROM bookings k WHERE k.user_id = g.user_id
                        AND k.confirmed = 2 AND k.created_at >= g.s AND k.created_at < g.s + g.w)),
       count(*) FILTER (WHERE EXISTS (SELECT FROM free_lesson_registrations f
                        WHERE f.user_id = g.user_id
                        AND f.registered_at >= g.s AND f.registered_at < g.s + g.w)),
       count(*) FILTER (WHERE EXISTS (SELECT FROM events v WHERE v.user_id = g.user_id
                        AND v.event_type = 'lesson_attended'
                        AND v.created_at >= g.s AND v.created_at < g.s + g.w)),
       count(*) FILTER (WHERE EXISTS (SELECT FROM events v WHERE v.user_id = g.user_id
                        AND v.event_type = 'bot_blocked'
                        AND v.created_at >= g.s AND v.created_at < g.s + g.w)
                        OR EXISTS (SELECT FROM bot_users u WHERE u.user_id = g.user_id
                        AND u.is_blocked AND u.blocked_at >= g.s AND u.blocked_at < g.s + g.w))
FROM g
"""


@contextmanager
def bench_database(arguments: argparse.Namespace) -> Iterator[str]:
    """The database given (seeded first if its bot tables are empty, kept afterwards), or a
    scratch one seeded now and dropped afterwards."""
    if arguments.database_url:
        url = libpq_url(arguments.database_url)
        ensure_database(server_url(url, "postgres"), make_url(url).database or "")
        migrate(url)
        with psycopg.connect(url) as connection:
            row = connection.execute("SELECT EXISTS (SELECT FROM events)").fetchone()
        if row is None or not row[0]:
            _seed(url, arguments)
        else:
            console.print("reusing the rows already in the database (--users not applied)")
        yield url
        return
    with scratch_database(server_admin_url(), "outcome_bench") as url:
        _seed(url, arguments)
        yield url


def _seed(url: str, arguments: argparse.Namespace) -> None:
    plan = GenerationPlan(users=arguments.users, seed=arguments.seed, anchor=default_anchor())
    console.print(f"seeding {arguments.users:,} users …")
    result = seed(url, plan)
    console.print(f"seeded {result.total_rows:,} rows in {result.seconds:.1f} s")


def _remove_bench_rows(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    connection.execute("DELETE FROM message_history WHERE message_text = %s", (BENCH_TEXT,))
    connection.execute("DELETE FROM bot_users WHERE username = %s", (BENCH_USERNAME,))


def write_broadcasts(url: str, arguments: argparse.Namespace) -> tuple[int, datetime]:
    """The measured broadcast (and an older one to everyone), written straight into the
    tables; answers its id and sent_at."""
    started_wall = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        _remove_bench_rows(connection)
        row = connection.execute("SELECT max(created_at) FROM events").fetchone()
        assert row is not None and row[0] is not None, "the database has no events"
        started: datetime = row[0] - timedelta(days=30)
        finished = started + timedelta(hours=1)
        connection.execute(
            "INSERT INTO message_history (message_text, status, recipient_type, recipient_group, "
            "audience, started_at, sent_at) VALUES (%s, 'sent', 'group', 'all', "
            '\'{"type": "all"}\', %s, %s)',
            (BENCH_TEXT, started - timedelta(days=20), started - timedelta(days=19)),
        )
        connection.execute(
            "INSERT INTO message_recipients (message_id, user_id, delivery_status, sent_at) "
            "SELECT currval('message_history_id_seq'), user_id, 'sent', %s "
            "FROM user_summaries ORDER BY user_id LIMIT %s",
            (started - timedelta(days=19, minutes=30), arguments.other_recipients),
        )
        message_id = connection.execute(
            "INSERT INTO message_history (message_text, status, recipient_type, recipient_group, "
            "audience, holdout_percent, started_at, sent_at, track_links) VALUES "
            "(%s, 'sent', 'group', 'all', '{\"type\": \"all\"}', %s, %s, %s, true) RETURNING id",
            (BENCH_TEXT, arguments.holdout, started, finished),
        ).fetchone()[0]  # type: ignore[index]
        held = (arguments.recipients * arguments.holdout + 50) // 100
        # The audience: every k-th user, so that they spread over the whole id range; the
        # control group: `held` of them in a random order; the others sent over the hour.
        connection.execute(
            """
            INSERT INTO message_recipients (message_id, user_id, delivery_status, sent_at,
                                            telegram_message_id, attempts)
            SELECT %(m)s, user_id,
                   CASE WHEN place <= %(held)s THEN 'holdout' ELSE 'sent' END,
                   CASE WHEN place <= %(held)s THEN NULL
                        ELSE %(started)s + (place - %(held)s) * (interval '1 hour' / %(n)s) END,
                   CASE WHEN place <= %(held)s THEN NULL ELSE place END,
                   CASE WHEN place <= %(held)s THEN 0 ELSE 1 END
            FROM (
                SELECT user_id, row_number() OVER (ORDER BY md5(user_id::text)) AS place
                FROM (SELECT user_id, row_number() OVER (ORDER BY user_id) AS n
                      FROM user_summaries) AS numbered
                WHERE n %% (SELECT greatest(1, count(*) / %(n)s) FROM user_summaries) = 0
                ORDER BY user_id
                LIMIT %(n)s
            ) AS audience
            ORDER BY user_id
            """,
            {"m": message_id, "held": held, "started": started, "n": arguments.recipients},
        )
        connection.execute(
            "INSERT INTO broadcast_links (message_id, position, url) VALUES "
            "(%s, 0, 'https://school.example/offer'), (%s, 1, 'https://school.example/book')",
            (message_id, message_id),
        )
        connection.execute(
            "INSERT INTO broadcast_clicks (recipient_id, position, message_id, first_clicked_at, "
            "last_clicked_at) SELECT id, (user_id %% 2)::smallint, message_id, "
            "sent_at + (user_id %% 48) * interval '1 hour', sent_at + interval '3 days' "
            "FROM message_recipients WHERE message_id = %s AND delivery_status = 'sent' "
            "AND user_id %% 17 = 0",
            (message_id,),
        )
        # Every user as the webhook would know them; 2 % have blocked the bot, on days
        # spread over four months around the broadcast.
        connection.execute(
            "INSERT INTO bot_users (user_id, username, is_blocked, blocked_at) "
            "SELECT user_id, %s, user_id %% 50 = 7, CASE WHEN user_id %% 50 = 7 "
            "THEN %s + (user_id %% 120) * interval '1 day' END "
            "FROM user_summaries ON CONFLICT (user_id) DO NOTHING",
            (BENCH_USERNAME, started - timedelta(days=60)),
        )
        # As autovacuum does within minutes of a bulk load: until then no page is marked
        # all-visible, and every index-only scan reads the table as well.
        for table in (
            "bookings",
            "events",
            "free_lesson_registrations",
            "message_history",
            "message_recipients",
            "broadcast_clicks",
            "bot_users",
        ):
            connection.execute(f"VACUUM (ANALYZE) {table}")
    console.print(
        f"wrote the broadcasts in {time.perf_counter() - started_wall:.1f} s "
        f"(measured broadcast {message_id}: {arguments.recipients:,} recipients, "
        f"{held:,} held out)"
    )
    return int(message_id), finished


def remove_broadcasts(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        _remove_bench_rows(connection)


async def time_outcomes(
    url: str, message_id: int, repeat: int
) -> tuple[dict[int, list[float]], dict[int, earnings.BroadcastOutcome], float]:
    """Milliseconds per call of earnings.outcome_of, in a session of the app's own engine
    (as the route's), per window; the answers; and the CSV's whole download in seconds."""
    database = Database(create_app_engine(url, load_settings(database_url=url)))
    samples: dict[int, list[float]] = {}
    answers: dict[int, earnings.BroadcastOutcome] = {}
    try:
        for days in WINDOWS:
            for _ in range(3):
                async with database.sessions() as session:
                    await earnings.outcome_of(session, message_id, days)
            timings = []
            for _ in range(repeat):
                started = time.perf_counter()
                async with database.sessions() as session:
                    answers[days] = await earnings.outcome_of(session, message_id, days)
                timings.append((time.perf_counter() - started) * 1000)
            samples[days] = timings
        started = time.perf_counter()
        async with database.sessions() as session:
            message = await get_message(session, message_id)
            rows = [row async for row in earnings.recipient_rows(session, message, 7)]
        csv_seconds = time.perf_counter() - started
        assert len(rows) == answers[7].sent.recipients + (
            answers[7].holdout.recipients if answers[7].holdout else 0
        )
        return samples, answers, csv_seconds
    finally:
        await database.dispose()


def naive_disagreements(
    url: str, message_id: int, holdout_from: datetime, answers: dict[int, earnings.BroadcastOutcome]
) -> tuple[list[str], float]:
    """Where the fast answer differs from the straightforward query's, and how long the
    straightforward query took for both groups at 7 days."""
    problems = []
    seconds = 0.0
    with psycopg.connect(url) as connection:
        connection.execute("SET jit = off")
        for days in (7, 90):
            for group, statuses in earnings.GROUP_STATUSES.items():
                started = time.perf_counter()
                row = connection.execute(
                    NAIVE_GROUP,
                    {"m": message_id, "statuses": list(statuses), "days": days,
                     "holdout_from": holdout_from},
                ).fetchone()  # fmt: skip
                if days == 7:
                    seconds += time.perf_counter() - started
                found = getattr(answers[days], group)
                fast = tuple(getattr(found, name) for name in earnings.GROUP_FIGURES)
                if row != fast:
                    problems.append(f"{group} at {days} days: {fast} but naive {row}")
    return problems, seconds


def _load() -> str:
    return ", ".join(f"{figure:.2f}" for figure in os.getloadavg())


def _scale(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT current_setting('server_version'), (SELECT count(*) FROM user_summaries), "
            "(SELECT count(*) FROM bookings), (SELECT count(*) FROM events), "
            "(SELECT count(*) FROM free_lesson_registrations), "
            "(SELECT count(*) FROM message_recipients)"
        ).fetchone()
    assert row is not None
    version, users, bookings, events, registrations, recipients = row
    return (
        f"{users:,} users, {bookings:,} bookings, {events:,} events, {registrations:,} "
        f"free-lesson registrations, {recipients:,} recipient rows; PostgreSQL {version}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000_000, help="users to seed (1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--recipients", type=int, default=100_000, help="of the broadcast")
    parser.add_argument("--holdout", type=int, default=10, help="its control group, percent")
    parser.add_argument(
        "--other-recipients", type=int, default=500_000, help="of an older broadcast"
    )
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per window")
    parser.add_argument("--database-url", help="measure this database and keep it")
    arguments = parser.parse_args()

    with bench_database(arguments) as url:
        message_id, holdout_from = write_broadcasts(url, arguments)
        try:
            load_before = _load()
            samples, answers, csv_seconds = asyncio.run(
                time_outcomes(url, message_id, arguments.repeat)
            )
            load_after = _load()
            problems, naive_seconds = naive_disagreements(url, message_id, holdout_from, answers)
            scale = _scale(url)
        finally:
            remove_broadcasts(url)

    table = Table(title=f"outcome of a {arguments.recipients:,}-recipient broadcast")
    for column in ("window", "p50 ms", "p95 ms", "max ms", "sent", "holdout", "goal"):
        table.add_column(column, justify="right")
    for days, timings in samples.items():
        ordered = sorted(timings)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        answer = answers[days]
        held = answer.holdout
        table.add_row(
            f"{days} days",
            f"{statistics.median(timings):.0f}",
            f"{p95:.0f}",
            f"{ordered[-1]:.0f}",
            f"{answer.sent.recipients:,}: {answer.sent.booked:,} booked",
            f"{held.recipients:,}: {held.booked:,} booked" if held else "—",
            ("met" if p95 <= GOAL_MS else "MISSED") if days == 7 else "",
        )
    console.print(table)
    console.print(
        f"CSV of both groups at 7 days: {csv_seconds:.2f} s; the straightforward query "
        f"(a probe per recipient and table): {1000 * naive_seconds:,.0f} ms for both groups"
    )
    console.print(f"data: {scale}")
    console.print(
        f"load average (1, 5, 15 min): {load_before} before, {load_after} after; "
        f"{os.cpu_count()} CPUs; {arguments.repeat} calls per window after 3 unmeasured"
    )
    for problem in problems:
        console.print(f"[red]MISMATCH[/] {problem}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
