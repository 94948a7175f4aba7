"""Two writers on the same user at once: nothing deadlocks and no count is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from analytics_data import assert_summaries_match_a_rebuild
from sqlalchemy import Engine

from coursedesk.db.engine import libpq_url

USER = 6_100_000_000
LOCK_WAIT_DEADLINE_SECONDS = 30


class Writer:
    """A connection of its own whose statements can run while another one holds locks."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url)
        self.pid = self.connection.info.backend_pid
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def run(self, sql: str, *params: object) -> None:
        self.connection.execute(sql, params)

    def start(self, sql: str, *params: object) -> None:
        """Run `sql` in the background (it is expected to wait for a lock)."""

        def target() -> None:
            try:
                self.run(sql, *params)
            except BaseException as exc:
                self.error = exc

        self._thread = threading.Thread(target=target)
        self._thread.start()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join()
        if self.error is not None:
            raise self.error


@contextmanager
def two_writers(url: str) -> Iterator[tuple[Writer, Writer]]:
    first, second = Writer(url), Writer(url)
    try:
        yield first, second
    finally:
        first.connection.close()
        second.connection.close()


def wait_until_blocked(observer: psycopg.Connection, blocked: Writer) -> None:
    """Sequencing only: returns once `blocked` waits for a lock held by another writer."""
    deadline = time.monotonic() + LOCK_WAIT_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        row = observer.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (blocked.pid,)
        ).fetchone()
        observer.commit()
        if row and row[0] == "Lock":
            return
        time.sleep(0.01)
    pytest.fail("the second writer never waited for the first")


def summary(url: str) -> tuple[object, ...]:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT bookings_count, confirmed_bookings, pending_bookings, events_count, status,"
            " course_stream, (SELECT sum(users) FROM user_segments),"
            " (SELECT sum(new_users) FROM activity_buckets WHERE span = 1440)"
            " FROM user_summaries WHERE user_id = %s",
            (USER,),
        ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture
def url(database_url: str) -> str:
    return libpq_url(database_url)


def _race(url: str, first: str, second: str, *, setup: str | None = None) -> None:
    """`first` runs and holds its locks; `second` starts and waits; then both commit."""
    with two_writers(url) as (one, two), psycopg.connect(url) as observer:
        if setup is not None:
            one.run(setup)
            one.connection.commit()
        one.run(first)
        two.start(second)
        wait_until_blocked(observer, two)
        one.connection.commit()
        two.join()
        two.connection.commit()


def test_two_first_rows_of_a_new_user(url: str, sync_engine: Engine) -> None:
    _race(
        url,
        f"INSERT INTO bookings (user_id, confirmed, course_stream) VALUES ({USER}, 2, 'A')",
        f"INSERT INTO events (user_id, event_type, created_at)"
        f" VALUES ({USER}, 'start', now() - interval '1 day')",
    )
    assert summary(url) == (1, 1, 0, 1, "confirmed", "A", 1, 1)
    assert_summaries_match_a_rebuild(sync_engine)


def test_an_insert_waits_for_a_recomputation(url: str, sync_engine: Engine) -> None:
    _race(
        url,
        f"UPDATE bookings SET confirmed = -1 WHERE user_id = {USER}",
        f"INSERT INTO bookings (user_id, confirmed, course_stream) VALUES ({USER}, 1, 'B')",
        setup=f"INSERT INTO bookings (user_id, confirmed, course_stream) VALUES ({USER}, 2, 'A')",
    )
    assert summary(url) == (2, 0, 1, 0, "pending", "B", 1, 1)
    assert_summaries_match_a_rebuild(sync_engine)


def test_a_recomputation_waits_for_an_insert(url: str, sync_engine: Engine) -> None:
    _race(
        url,
        f"INSERT INTO bookings (user_id, confirmed, course_stream) VALUES ({USER}, 2, 'C')",
        f"DELETE FROM bookings WHERE user_id = {USER} AND course_stream = 'A'",
        setup=(
            f"INSERT INTO bookings (user_id, confirmed, course_stream, created_at)"
            f" VALUES ({USER}, 1, 'A', now() - interval '1 day')"
        ),
    )
    assert summary(url) == (1, 1, 0, 0, "confirmed", "C", 1, 1)
    assert_summaries_match_a_rebuild(sync_engine)


def test_many_users_in_opposite_orders_do_not_deadlock(url: str, sync_engine: Engine) -> None:
    users = [USER + n for n in range(5)]
    forward = ", ".join(f"({u}, 'start')" for u in users)
    backward = ", ".join(f"({u}, 'start')" for u in reversed(users))
    _race(
        url,
        f"INSERT INTO events (user_id, event_type) VALUES {forward}",
        f"INSERT INTO events (user_id, event_type) VALUES {backward}",
    )
    with psycopg.connect(url) as connection:
        counts = connection.execute(
            "SELECT array_agg(events_count ORDER BY user_id) FROM user_summaries"
        ).fetchone()
    assert counts == ([2] * 5,)
    assert_summaries_match_a_rebuild(sync_engine)
