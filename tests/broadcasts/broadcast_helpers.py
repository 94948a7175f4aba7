"""Helpers of the broadcast tests: users in the source tables, polling, figures."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from coursedesk.analytics.folding import fold_pending

BOT_TOKEN = "424242:broadcast-test-token"
TEST_RATE = 400.0
PROCESS_IN_FLIGHT = 32
"""The --in-flight of the worker processes start_process starts."""


def fast_backoff(attempt: int) -> float:
    return 0.05 * attempt


@dataclass(frozen=True)
class UserRow:
    """A user as the bot records them; `bookings` are (stream, confirmed) pairs."""

    user_id: int
    username: str | None = None
    bookings: Sequence[tuple[str | None, int]] = ()
    event: bool = False
    free_lesson: bool = False
    blocked: bool = False


def add_users(engine: Engine, users: Sequence[UserRow]) -> None:
    """Insert the users' rows into the source tables (and bot_users for the blocked)."""
    with engine.begin() as connection:
        for user in users:
            for stream, confirmed in user.bookings:
                connection.execute(
                    text(
                        "INSERT INTO bookings (user_id, username, first_name, course_id, "
                        "course_stream, confirmed) VALUES (:u, :name, 'First', 1, :s, :c)"
                    ),
                    {"u": user.user_id, "name": user.username, "s": stream, "c": confirmed},
                )
            if user.event:
                connection.execute(
                    text("INSERT INTO events (user_id, event_type) VALUES (:u, 'start')"),
                    {"u": user.user_id},
                )
            if user.free_lesson:
                connection.execute(
                    text(
                        "INSERT INTO free_lesson_registrations (user_id, username) "
                        "VALUES (:u, :name)"
                    ),
                    {"u": user.user_id, "name": user.username},
                )
            if user.blocked:
                connection.execute(
                    text(
                        "INSERT INTO bot_users (user_id, is_blocked, blocked_at) "
                        "VALUES (:u, true, now())"
                    ),
                    {"u": user.user_id},
                )
    fold_pending(engine)


def add_many_users(engine: Engine, first: int, count: int) -> None:
    """`count` users with ids from `first`, each known by one start event."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO events (user_id, event_type) "
                "SELECT g, 'start' FROM generate_series(CAST(:first AS bigint), :last) AS g"
            ),
            {"first": first, "last": first + count - 1},
        )
    fold_pending(engine)


def scalar(engine: Engine, sql: str, **parameters: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), parameters).scalar()


def rows(engine: Engine, sql: str, **parameters: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql), parameters))


async def wait_for(
    check: Callable[[], bool], *, within: float, what: str, interval: float = 0.05
) -> None:
    """Poll `check` until it holds; fail naming `what` if it does not within `within` s."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def figures_agree(engine: Engine, message_id: int) -> None:
    """The counters on message_history equal the counts over the recipient rows."""
    [counted] = rows(
        engine,
        """
        SELECT count(*) AS total,
               count(*) FILTER (WHERE delivery_status IN ('sent', 'deleted')) AS successful,
               count(*) FILTER (WHERE delivery_status = 'failed') AS failed,
               count(*) FILTER (WHERE delivery_status = 'pending') AS pending,
               count(*) FILTER (WHERE delivery_status = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE delivery_status = 'deleted') AS deleted,
               count(*) FILTER (WHERE delivery_status = 'holdout') AS holdout
        FROM message_recipients WHERE message_id = :m
        """,
        m=message_id,
    )
    [kept] = rows(
        engine,
        """
        SELECT total_recipients, successful_deliveries, failed_deliveries,
               pending_deliveries, cancelled_deliveries, deleted_deliveries, holdout_count
        FROM message_history WHERE id = :m
        """,
        m=message_id,
    )
    assert tuple(kept) == tuple(counted)


async def send_broadcast(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post("/api/messages/send", json=body, headers=headers)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


@dataclass
class WorkerHandle:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def stopped(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)


RunWorker = Callable[..., Awaitable[WorkerHandle]]


@asynccontextmanager
async def running_worker(start: RunWorker, **options: Any) -> AsyncIterator[WorkerHandle]:
    handle = await start(**options)
    try:
        yield handle
    finally:
        await handle.stopped()


StartProcess = Callable[..., subprocess.Popen[bytes]]
