"""Typed rows of the source tables: small factories for tests, and whole generated data sets.

Each row is a dict keyed by column, ready for `connection.execute(insert(Model), rows)`;
ids are left to the table's sequence. Factories default every column to a plain value,
so a test names only what it is about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypedDict

from sqlalchemy import Connection, insert

from coursedesk.db.datagen import vocabulary
from coursedesk.db.datagen.plan import (
    GenerationPlan,
    RawBooking,
    RawEvent,
    RawRegistration,
    day_text,
)
from coursedesk.db.datagen.simulation import generate_chunks
from coursedesk.sources.models import (
    BOOKING_PENDING,
    Booking,
    Course,
    Event,
    FreeLessonRegistration,
)


class CourseRow(TypedDict):
    id: int
    name: str


class BookingRow(TypedDict):
    user_id: int
    username: str | None
    first_name: str | None
    course_id: int | None
    course_stream: str | None
    confirmed: int
    created_at: datetime
    referral_code: str | None
    discount_percent: Decimal | None


class EventRow(TypedDict):
    user_id: int | None
    event_type: str
    created_at: datetime
    details: dict[str, Any] | None


class FreeLessonRow(TypedDict):
    user_id: int
    username: str | None
    first_name: str | None
    email: str | None
    registered_at: datetime
    notification_sent: bool
    lesson_type: str | None
    lesson_date: date | None


def _now() -> datetime:
    return datetime.now(UTC)


def course_row(course_id: int, name: str | None = None) -> CourseRow:
    return {"id": course_id, "name": name or f"Course {course_id}"}


def booking_row(
    user_id: int,
    *,
    confirmed: int = BOOKING_PENDING,
    course_id: int | None = 1,
    course_stream: str | None = "PY-19",
    created_at: datetime | None = None,
    username: str | None = None,
    first_name: str | None = "Anna",
    referral_code: str | None = None,
    discount_percent: Decimal | str | None = None,
) -> BookingRow:
    return {
        "user_id": user_id,
        "username": username,
        "first_name": first_name,
        "course_id": course_id,
        "course_stream": course_stream,
        "confirmed": confirmed,
        "created_at": created_at or _now(),
        "referral_code": referral_code,
        "discount_percent": None if discount_percent is None else Decimal(discount_percent),
    }


def event_row(
    user_id: int | None,
    event_type: str = "button_click",
    *,
    created_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> EventRow:
    return {
        "user_id": user_id,
        "event_type": event_type,
        "created_at": created_at or _now(),
        "details": details,
    }


def lesson_attended_row(
    user_id: int, lesson_type: str, lesson_date: date, *, created_at: datetime | None = None
) -> EventRow:
    """An attendance as the bot records it: details carry the lesson's type and date."""
    return event_row(
        user_id,
        "lesson_attended",
        created_at=created_at,
        details={"lesson_type": lesson_type, "lesson_date": lesson_date.isoformat()},
    )


def free_lesson_row(
    user_id: int,
    *,
    lesson_type: str | None = "python_intro",
    lesson_date: date | None = None,
    registered_at: datetime | None = None,
    email: str | None = None,
    notification_sent: bool = False,
    username: str | None = None,
    first_name: str | None = "Anna",
) -> FreeLessonRow:
    registered = registered_at or _now()
    return {
        "user_id": user_id,
        "username": username,
        "first_name": first_name,
        "email": email,
        "registered_at": registered,
        "notification_sent": notification_sent,
        "lesson_type": lesson_type,
        "lesson_date": lesson_date if lesson_date is not None else registered.date(),
    }


def _from_epoch(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def booking_from_raw(raw: RawBooking) -> BookingRow:
    user_id, username, first_name, course_id, stream, confirmed, ts, code, discount = raw
    return booking_row(
        user_id,
        confirmed=confirmed,
        course_id=course_id,
        course_stream=stream,
        created_at=_from_epoch(ts),
        username=username,
        first_name=first_name,
        referral_code=code,
        discount_percent=discount,
    )


def event_from_raw(raw: RawEvent) -> EventRow:
    user_id, event_type, ts, details = raw
    return event_row(
        user_id,
        event_type,
        created_at=_from_epoch(ts),
        details=None if details is None else json.loads(details),
    )


def free_lesson_from_raw(raw: RawRegistration) -> FreeLessonRow:
    user_id, username, first_name, email, ts, notified, lesson_type, lesson_day = raw
    return free_lesson_row(
        user_id,
        lesson_type=lesson_type,
        lesson_date=date.fromisoformat(day_text(lesson_day)),
        registered_at=_from_epoch(ts),
        email=email,
        notification_sent=notified,
        username=username,
        first_name=first_name,
    )


@dataclass(frozen=True)
class Dataset:
    """A generated data set as typed rows, in the order the seeder loads them."""

    courses: list[CourseRow]
    bookings: list[BookingRow]
    events: list[EventRow]
    free_lessons: list[FreeLessonRow]


def named_courses() -> list[CourseRow]:
    """The courses rows the seeder writes (one course of the bookings is left unnamed)."""
    return [course_row(c.id, c.name) for c in vocabulary.COURSES if c.name is not None]


def generate_dataset(plan: GenerationPlan) -> Dataset:
    """The rows `db seed` would load for the plan, as typed rows (for small plans)."""
    bookings: list[BookingRow] = []
    events: list[EventRow] = []
    free_lessons: list[FreeLessonRow] = []
    for chunk in generate_chunks(plan):
        bookings += map(booking_from_raw, chunk.bookings)
        events += map(event_from_raw, chunk.event_rows())
        free_lessons += map(free_lesson_from_raw, chunk.registrations)
    return Dataset(named_courses(), bookings, events, free_lessons)


def insert_dataset(connection: Connection, dataset: Dataset) -> None:
    """Insert the data set's rows on `connection`; the caller's transaction commits or not."""
    for model, rows in (
        (Course, dataset.courses),
        (Booking, dataset.bookings),
        (Event, dataset.events),
        (FreeLessonRegistration, dataset.free_lessons),
    ):
        if rows:
            connection.execute(insert(model), list(rows))
