"""The bot's transactions, run as the bot runs them, never wait on or deadlock with each
other because of coursedesk, and every committed row is counted once folded."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from analytics_data import assert_summaries_match_a_rebuild
from sqlalchemy import Engine, text

from coursedesk.analytics.folding import fold_pending, rebuild_summaries
from coursedesk.db.engine import libpq_url

pytestmark = pytest.mark.usefixtures("capture")

USER = 6_100_000_000
# Long enough that any wait on a lock is seen as an error rather than a slow statement.
LOCK_TIMEOUT = "2s"


@pytest.fixture
def url(database_url: str) -> str:
    return libpq_url(database_url)


@contextmanager
def sessions(url: str, count: int) -> Iterator[list[psycopg.Connection]]:
    """`count` connections of the bot's, each giving up on any lock after LOCK_TIMEOUT."""
    connections = [
        psycopg.connect(url, options=f"-c lock_timeout={LOCK_TIMEOUT}") for _ in range(count)
    ]
    try:
        yield connections
    finally:
        for connection in connections:
            connection.close()


def test_the_two_users_deadlock_of_the_old_triggers_is_gone(url: str, sync_engine: Engine) -> None:
    """S1 and S2 write about two different users, crossing on a shared course and stream;
    the counter rows the old triggers updated made this a deadlock every time."""
    u1, u2 = USER + 1, USER + 2
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute(
            "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
            " VALUES (%s, 7, 'S-1', 1)",
            (u2,),
        )
    fold_pending(sync_engine)
    with sessions(url, 2) as (s1, s2):
        s1.execute("INSERT INTO events (user_id, event_type) VALUES (%s, 'start')", (u1,))
        s2.execute("UPDATE bookings SET confirmed = 2 WHERE user_id = %s", (u2,))
        s1.execute(
            "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
            " VALUES (%s, 7, 'S-1', 1)",
            (u1,),
        )
        s2.execute("INSERT INTO events (user_id, event_type) VALUES (%s, 'start')", (u2,))
        s1.commit()
        s2.commit()
    fold_pending(sync_engine)
    with sync_engine.connect() as connection:
        figures = connection.execute(
            text(
                "SELECT total_bookings, confirmed, pending, unique_users FROM stream_figures"
                " WHERE course_id = 7 AND course_stream = 'S-1'"
            )
        ).one()
    assert tuple(figures) == (2, 1, 1, 2)
    assert_summaries_match_a_rebuild(sync_engine)


def test_an_open_bot_transaction_blocks_no_other_insert(url: str, sync_engine: Engine) -> None:
    with sessions(url, 2) as (holder, other):
        holder.execute("INSERT INTO events (user_id, event_type) VALUES (%s, 'start')", (USER,))
        # Every kind of write, about other users, while the first transaction stays open;
        # a wait longer than LOCK_TIMEOUT would fail the statement.
        for n in range(1, 21):
            other.execute(
                "INSERT INTO events (user_id, event_type) VALUES (%s, 'start')", (USER + n,)
            )
            other.execute(
                "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
                " VALUES (%s, 1, 'A', 1)",
                (USER + n,),
            )
            other.commit()
        other.execute("UPDATE bookings SET confirmed = 2 WHERE user_id > %s", (USER,))
        other.commit()
        # The folder does not wait for the open transaction either, and leaves its row.
        assert fold_pending(sync_engine) == 20 + 20 + 2 * 20  # an UPDATE: old row and new
        with sync_engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM analytics_changes")) == 0
            assert connection.scalar(text("SELECT count(*) FROM user_summaries")) == 20
        holder.commit()
    # Committed late, still counted.
    assert fold_pending(sync_engine) == 1
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM user_summaries")) == 21
    assert_summaries_match_a_rebuild(sync_engine)


def _bot_transactions(
    connection: psycopg.Connection, users: list[int], rng: random.Random
) -> Callable[[], None]:
    """One of the bot's ordinary transactions about the session's own users, at random."""

    def booking_then_event() -> None:
        user = rng.choice(users)
        connection.execute(
            "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
            " VALUES (%s, %s, %s, 1)",
            (user, rng.choice([1, 2]), rng.choice(["A", "B"])),
        )
        connection.execute("INSERT INTO events (user_id, event_type) VALUES (%s, 'book')", (user,))

    def event_then_booking() -> None:
        user = rng.choice(users)
        connection.execute("INSERT INTO events (user_id, event_type) VALUES (%s, 'pay')", (user,))
        connection.execute(
            "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
            " VALUES (%s, 1, 'A', 2)",
            (user,),
        )

    def confirm_a_booking() -> None:
        connection.execute(
            "UPDATE bookings SET confirmed = 2 WHERE id = ("
            " SELECT id FROM bookings WHERE user_id = ANY(%s) AND confirmed = 1 LIMIT 1)",
            (users,),
        )

    def transaction() -> None:
        rng.choice([booking_then_event, event_then_booking, confirm_a_booking])()
        connection.commit()

    return transaction


def test_sixteen_sessions_of_mixed_bot_transactions_never_fail(
    url: str, sync_engine: Engine
) -> None:
    errors: list[BaseException] = []
    committed = [0] * 16
    stop = threading.Event()

    def run(number: int, connection: psycopg.Connection) -> None:
        rng = random.Random(number)
        users = [USER + number * 100 + n for n in range(5)]
        transaction = _bot_transactions(connection, users, rng)
        while not stop.is_set():
            try:
                transaction()
            except psycopg.Error as exc:
                errors.append(exc)
                connection.rollback()
                return
            committed[number] += 1

    with sessions(url, 16) as connections:
        threads = [
            threading.Thread(target=run, args=(number, connection))
            for number, connection in enumerate(connections)
        ]
        for thread in threads:
            thread.start()
        # The folder runs beside the bot, as it would in production.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            fold_pending(sync_engine)
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert all(count > 0 for count in committed)
    fold_pending(sync_engine)
    assert_summaries_match_a_rebuild(sync_engine)


def test_a_rebuild_while_the_bot_writes_counts_every_row(url: str, sync_engine: Engine) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(number: int, connection: psycopg.Connection) -> None:
        user = USER + 10_000 + number
        while not stop.is_set():
            try:
                connection.execute(
                    "INSERT INTO events (user_id, event_type) VALUES (%s, 'x')", (user,)
                )
                connection.execute(
                    "INSERT INTO bookings (user_id, course_id, confirmed) VALUES (%s, 1, 1)",
                    (user,),
                )
                connection.commit()
            except psycopg.Error as exc:
                errors.append(exc)
                return

    with sessions(url, 4) as connections:
        threads = [
            threading.Thread(target=write, args=(number, connection))
            for number, connection in enumerate(connections)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        rebuild_summaries(sync_engine)
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    fold_pending(sync_engine)
    with sync_engine.connect() as connection:
        events = connection.scalar(text("SELECT count(*) FROM events"))
        counted = connection.scalar(text("SELECT sum(events) FROM event_type_figures"))
    assert events == counted
    assert_summaries_match_a_rebuild(sync_engine)
