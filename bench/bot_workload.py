"""What the sections of bot_writes.py share: the bot's statements, its sessions, the folder."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
import uvloop
from psycopg.types.json import Jsonb
from rich.console import Console

from coursedesk.analytics.folding import folding, process_name
from coursedesk.config import load_settings
from coursedesk.db.engine import create_app_engine

console = Console(highlight=False, width=120)

FOLDER_ROLE = "bot-writes-bench"
# Ids of users the bench makes up, far above the seeded ones (simulation.USER_ID_RANGE).
NEW_USERS = 9_000_000_000
# A statement of the bot's that waits longer than this counts as an error.
BOT_STATEMENT_TIMEOUT = "-c statement_timeout=10s"
NO_TIMEOUT = "-c statement_timeout=0"

EVENT_TYPES = ("start", "button_click", "course_view", "free_lesson_signup", "lesson_attended")
LESSON_TYPES = ("python_intro", "sql_basics", "web_design", "qa_testing")
# The bot's own statements.
INSERT_EVENT: LiteralString = (
    "INSERT INTO events (user_id, event_type, details) VALUES (%s, %s, %s)"
)
INSERT_BOOKING: LiteralString = (
    "INSERT INTO bookings (user_id, username, first_name, course_id, course_stream, "
    "confirmed, referral_code, discount_percent) VALUES (%s, %s, %s, %s, %s, 1, %s, %s) "
    "RETURNING id"
)
CONFIRM_BOOKING: LiteralString = "UPDATE bookings SET confirmed = 2 WHERE id = %s"
# Whether a change committed before `since` (a server time) is still to be folded: the
# change log's rows with the capture triggers; with the capture reading the WAL, whether
# the last batch's snapshot (wal_read_at) is older.
UNFOLDED_SINCE: LiteralString = """
    SELECT CASE WHEN s.capture = 'wal' THEN coalesce(s.wal_read_at <= %s, true)
                ELSE EXISTS (SELECT FROM analytics_changes) END
    FROM analytics_fold_state AS s
"""

# The folder process is the entry script run with its hidden --fold option (run_folder).
BENCH_SCRIPT = Path(__file__).with_name("bot_writes.py")


# -- small helpers -------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def met(ok: bool) -> str:
    return "met" if ok else "[bold]not met[/]"


def query(url: str, statement: LiteralString, *parameters: object) -> Any:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement, parameters)
        row = cursor.fetchone() if cursor.description else None
        return None if row is None else row[0]


def event_details(rng: random.Random, event_type: str) -> dict[str, object]:
    """A small jsonb like the bot's; an attendance names its lesson as the bot does."""
    if event_type == "lesson_attended":
        day = date(2026, 11, 1) + timedelta(days=rng.randrange(60))
        return {"lesson_type": rng.choice(LESSON_TYPES), "lesson_date": day.isoformat()}
    return {"button": rng.choice(("courses", "prices", "faq")), "chat": rng.randrange(99)}


async def connect(url: str, options: str = BOT_STATEMENT_TIMEOUT) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        url, autocommit=True, options=options, application_name="bot-writes-bench"
    )


async def wait_drained(connection: psycopg.AsyncConnection[Any], limit: float = 120.0) -> float:
    """Seconds until the folder has folded every change committed before the call."""
    started = time.perf_counter()
    since = await server_time(connection)
    while await unfolded_since(connection, since):
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"the change log was not folded within {limit:.0f} s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def server_time(connection: psycopg.AsyncConnection[Any]) -> datetime:
    row = await (await connection.execute("SELECT clock_timestamp()")).fetchone()
    assert row is not None
    return cast(datetime, row[0])


async def unfolded_since(connection: psycopg.AsyncConnection[Any], since: datetime) -> bool:
    row = await (await connection.execute(UNFOLDED_SINCE, (since,))).fetchone()
    return bool(row and row[0])


# -- the seeded data, and the bot's writes -------------------------------------------------


@dataclass
class Data:
    """What the workloads draw from: the seeded users, their names, and the busiest course
    streams."""

    url: str
    users: list[int]
    names: dict[int, tuple[str | None, str | None]]
    streams: list[tuple[int, str]]
    failures: list[str] = field(default_factory=list)
    goals: list[tuple[str, str, str]] = field(default_factory=list)

    def goal(self, name: str, measured: str, ok: bool) -> None:
        self.goals.append((name, measured, met(ok)))

    def fail(self, message: str) -> None:
        self.failures.append(message)
        console.print(f"[bold red]FAILED:[/] {message}")


def look_up(url: str) -> Data:
    with psycopg.connect(url, autocommit=True) as connection:
        names = {
            int(user): (username, first_name)
            for user, username, first_name in connection.execute(
                "SELECT user_id, username, first_name FROM user_summaries"
            )
        }
        streams = connection.execute(
            "SELECT course_id, course_stream FROM bookings WHERE course_stream IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 8"
        ).fetchall()
    if not names or not streams:
        raise RuntimeError("the database holds no users or no course streams: seed it first")
    return Data(url, list(names), names, [(int(c), str(s)) for c, s in streams])


def names_of(data: Data, user: int) -> tuple[str | None, str | None]:
    """A user's names as the bot sends them: a seeded user's own, made up for a new one
    (a username that changed would rewrite the user's name indexes, which is rare)."""
    return data.names.get(user) or (f"u{user}", "Anna")


async def insert_booking(
    connection: psycopg.AsyncConnection[Any],
    data: Data,
    user: int,
    stream: tuple[int, str],
    referral: tuple[str | None, int | None] = (None, None),
) -> int:
    row = await (
        await connection.execute(
            INSERT_BOOKING, (user, *names_of(data, user), stream[0], stream[1], *referral)
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def insert_event(
    connection: psycopg.AsyncConnection[Any], user: int, event_type: str, rng: random.Random
) -> None:
    await connection.execute(
        INSERT_EVENT, (user, event_type, Jsonb(event_details(rng, event_type)))
    )


# -- the folder, in a process of its own ---------------------------------------------------


def run_folder(url: str) -> None:
    """The --fold entry point: a Folder at the configured interval until SIGTERM."""

    async def fold_until_stopped() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        settings = load_settings(database_url=url)
        engine = create_app_engine(url, settings, application_name=FOLDER_ROLE)
        try:
            async with folding(
                engine, name=process_name(FOLDER_ROLE), interval=settings.analytics_fold_seconds
            ):
                await stop.wait()
        finally:
            await engine.dispose()

    uvloop.run(fold_until_stopped())


@contextmanager
def folder_running(data: Data) -> Iterator[None]:
    """A folder process that holds the lease (checked) for as long as the block lasts; a
    fold failure it recorded in analytics_fold_state is a failed check."""
    url = data.url
    process = subprocess.Popen([sys.executable, str(BENCH_SCRIPT), "--fold", url])
    try:
        deadline = time.monotonic() + 60
        while not str(query(url, "SELECT folder FROM analytics_fold_state") or "").endswith(
            f":{process.pid}"
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the folder process did not take the folding lease")
            time.sleep(0.05)
        yield
        error = query(url, "SELECT error FROM analytics_fold_state")
        if error:
            data.fail(f"the folder recorded a failure: {error}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def folded_rows(url: str) -> int:
    return int(query(url, "SELECT folded_rows FROM analytics_fold_state"))
