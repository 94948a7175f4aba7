"""Test data of the analytics tests: the bot's writes by plain SQL, and the edge cases."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, insert, text

from coursedesk.analytics.drift import find_drift
from coursedesk.analytics.folding import fold_pending
from coursedesk.db.datagen.rows import (
    BookingRow,
    EventRow,
    FreeLessonRow,
    booking_row,
    course_row,
    event_row,
    free_lesson_row,
    lesson_attended_row,
)
from coursedesk.sources.models import Booking, Course, Event, FreeLessonRegistration


class BotWriter:
    """Writes source rows the way the bot does: plain SQL, each call its own transaction,
    then folds them into the summaries as the folder would within a second."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def bookings(self, *rows: BookingRow) -> list[int]:
        return self._insert(Booking, rows)

    def events(self, *rows: EventRow) -> list[int]:
        return self._insert(Event, rows)

    def registrations(self, *rows: FreeLessonRow) -> list[int]:
        return self._insert(FreeLessonRegistration, rows)

    def courses(self, *rows: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(Course), list(rows))

    def execute(self, statement: str, **params: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(statement), params)
        fold_pending(self.engine)

    def _insert(self, model: Any, rows: tuple[Any, ...]) -> list[int]:
        with self.engine.begin() as connection:
            result = connection.execute(
                insert(model).returning(model.id, sort_by_parameter_order=True), list(rows)
            )
            ids = list(result.scalars())
        fold_pending(self.engine)
        return ids


def at(text_value: str) -> datetime:
    """A UTC instant from 'YYYY-MM-DD HH:MM'."""
    return datetime.strptime(text_value, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


# The hand-built data set: one user for each edge case docs/reference.md §4 has to get right.
U1 = 5_000_000_001  # above 2^31; renamed; pending then confirmed; registered and attended
U2 = 42  # only in events, on both sides of midnight in Asia/Kathmandu (+05:45)
U3 = 7  # cancelled bookings only
U4 = 3_000_000_000  # bookings without a courses row; latest non-cancelled has no stream
U5 = 99  # attendances without a registration, one with an impossible date
U6 = 100  # two registrations for the same lesson
PYTHON_LESSON = date(2024, 3, 15)


@dataclass(frozen=True)
class EdgeData:
    bookings: list[int]
    events: list[int]
    registrations: list[int]


def insert_edge_data(bot: BotWriter) -> EdgeData:
    bot.courses(course_row(1, "Python"), course_row(2, "Design"))
    bookings = bot.bookings(
        booking_row(
            U1,
            confirmed=1,
            course_id=1,
            course_stream="PY-1",
            created_at=at("2024-03-10 10:00"),
            username="old_u1",
            first_name="Ann",
            referral_code="SPRING",
            discount_percent="10",
        ),
        booking_row(
            U1,
            confirmed=2,
            course_id=1,
            course_stream="PY-2",
            created_at=at("2024-03-12 10:00"),
            username="new_u1",
            first_name=None,
            referral_code="SPRING",
        ),
        booking_row(
            U3,
            confirmed=-1,
            course_id=2,
            course_stream="DS-1",
            created_at=at("2024-03-12 12:00"),
            username="u3",
            first_name="Cat",
        ),
        booking_row(
            U4,
            confirmed=1,
            course_id=3,
            course_stream=None,
            created_at=at("2024-03-13 08:00"),
            first_name=None,
        ),
        booking_row(
            U4,
            confirmed=2,
            course_id=3,
            course_stream="X-1",
            created_at=at("2024-03-13 07:00"),
            first_name=None,
            referral_code="AUTUMN",
            discount_percent="15.5",
        ),
    )
    events = bot.events(
        lesson_attended_row(U1, "python", PYTHON_LESSON, created_at=at("2024-03-15 18:00")),
        event_row(U2, "start", created_at=at("2024-03-11 18:20")),
        event_row(U2, "button_click", created_at=at("2024-03-11 18:10")),
        lesson_attended_row(U5, "python", PYTHON_LESSON, created_at=at("2024-03-15 19:00")),
        event_row(
            U5,
            "lesson_attended",
            created_at=at("2024-03-16 10:00"),
            details={"lesson_type": "design", "lesson_date": "2024-02-30"},
        ),
        event_row(None, "start", created_at=at("2024-03-12 00:00")),
        event_row(
            None,
            "lesson_attended",
            created_at=at("2024-03-15 20:00"),
            details={"lesson_type": "python", "lesson_date": "2024-03-15"},
        ),
    )
    without_date = free_lesson_row(
        U4,
        lesson_type="design",
        registered_at=at("2024-03-01 12:00"),
        username="four",
        first_name=None,
    )
    without_date["lesson_date"] = None
    registrations = bot.registrations(
        free_lesson_row(
            U1,
            lesson_type="python",
            lesson_date=PYTHON_LESSON,
            registered_at=at("2024-03-05 09:00"),
            first_name="Anna",
        ),
        without_date,
        free_lesson_row(
            U6,
            lesson_type="python",
            lesson_date=PYTHON_LESSON,
            registered_at=at("2024-03-14 23:50"),
            username="six_user",
            first_name="Six",
        ),
        free_lesson_row(
            U6,
            lesson_type="python",
            lesson_date=PYTHON_LESSON,
            registered_at=at("2024-03-14 23:55"),
            username="six_user",
            first_name="Six",
        ),
    )
    return EdgeData(bookings, events, registrations)


ClientFactory = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


def summary_snapshot(connection: Connection) -> dict[str, list[tuple]]:
    """Every live row of every summary table, in a stable order."""
    queries = {
        "user_summaries": "SELECT * FROM user_summaries ORDER BY user_id",
        "user_names": "SELECT * FROM user_names ORDER BY user_id",
        "activity_buckets": "SELECT * FROM activity_buckets WHERE (new_users, bookings, events,"
        " free_lesson_registrations) <> (0, 0, 0, 0) ORDER BY span, bucket",
        "user_segments": "SELECT * FROM user_segments WHERE users <> 0 ORDER BY 1, 2",
        "user_funnel": "SELECT * FROM user_funnel WHERE users <> 0 ORDER BY 1, 2, 3",
        "user_retention": "SELECT * FROM user_retention WHERE users <> 0 ORDER BY 1, 2, 3",
        "course_figures": "SELECT * FROM course_figures WHERE total_bookings <> 0 ORDER BY 1",
        "course_members": "SELECT * FROM course_members WHERE bookings <> 0 ORDER BY 1, 2",
        "stream_figures": "SELECT * FROM stream_figures WHERE total_bookings <> 0 ORDER BY 1, 2",
        "stream_members": "SELECT * FROM stream_members WHERE bookings <> 0 ORDER BY 1, 2, 3",
        "event_type_figures": "SELECT * FROM event_type_figures WHERE events <> 0 ORDER BY 1",
        "event_type_members": "SELECT * FROM event_type_members WHERE events <> 0 ORDER BY 1, 2",
        "referral_figures": "SELECT * FROM referral_figures WHERE bookings <> 0 ORDER BY 1",
        "referral_members": "SELECT * FROM referral_members WHERE bookings <> 0 ORDER BY 1, 2",
        "lesson_figures": "SELECT * FROM lesson_figures"
        " WHERE (registrations, attendances) <> (0, 0) ORDER BY 1, 2",
        "lesson_members": "SELECT * FROM lesson_members"
        " WHERE (registrations, attendances) <> (0, 0) ORDER BY 1, 2, 3",
    }
    return {
        name: [tuple(row) for row in connection.execute(text(sql))] for name, sql in queries.items()
    }


def assert_summaries_match_a_rebuild(engine: Engine) -> None:
    drifts = find_drift(engine)
    assert drifts == [], [drift.describe() for drift in drifts]
