"""Random rows, inserted, updated and deleted by plain SQL: every summary-backed figure
equals the same figure computed in Python from the source rows that are left."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import analytics_reference as reference
from analytics_data import assert_summaries_match_a_rebuild
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, insert, text

from coursedesk.analytics.folding import fold_pending
from coursedesk.analytics.periods import DayWindow
from coursedesk.analytics.sql_files import named_sql
from coursedesk.sources.models import Booking, Course, Event, FreeLessonRegistration
from coursedesk.users import queries

START = datetime(2024, 3, 10, tzinfo=UTC)
MINUTES = 3 * 24 * 60
USERS = [1, 2, 3, 2**31 + 5, 9_000_000_000]
TIMEZONES = ["UTC", "Asia/Kathmandu", "America/New_York"]
WINDOW = DayWindow(date(2024, 3, 9), date(2024, 3, 14))
COHORT_MONDAY = date(2024, 3, 4)

# Bookings and registrations never share a time, so "the most recent name" has no
# cross-table tie; rows of one table may share one (then the higher id wins).
booking_times = st.integers(0, MINUTES // 3 - 1).map(lambda n: START + timedelta(minutes=3 * n))
registration_times = st.integers(0, MINUTES // 3 - 1).map(
    lambda n: START + timedelta(minutes=3 * n + 1)
)
event_times = st.integers(0, MINUTES - 1).map(lambda n: START + timedelta(minutes=n))
names = st.sampled_from([None, "anna", "Bob_1", "100%", "o'neil"])

bookings = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from(USERS),
        "username": names,
        "first_name": names,
        "course_id": st.sampled_from([None, 1, 2, 3]),
        "course_stream": st.sampled_from([None, "A", "B"]),
        "confirmed": st.sampled_from([-1, 1, 2]),
        "created_at": booking_times,
        "referral_code": st.sampled_from([None, "R1", "R2"]),
        "discount_percent": st.sampled_from(
            [None, Decimal("0"), Decimal("12.5"), Decimal("33.33"), Decimal("100")]
        ),
    }
)
events = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from([*USERS, None]),
        "event_type": st.sampled_from(["start", "click", "lesson_attended"]),
        "created_at": event_times,
        "details": st.sampled_from(
            [
                None,
                {"lesson_type": "py", "lesson_date": "2024-03-11"},
                {"lesson_type": "py", "lesson_date": "2024-02-30"},
                {"lesson_type": "ux", "lesson_date": "2024-03-12"},
                {"lesson_type": "py"},
                {"lesson_date": "2024-03-12"},
                {"lesson_type": 5, "lesson_date": "not a date"},
                [1, 2],
            ]
        ),
    }
)
registrations = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from(USERS),
        "username": names,
        "first_name": names,
        "registered_at": registration_times,
        "lesson_type": st.sampled_from([None, "py", "ux"]),
        "lesson_date": st.sampled_from([None, date(2024, 3, 11), date(2024, 3, 12)]),
    }
)
# Edits run by hand on the source tables; :k picks a subset of rows, :v a new value.
EDITS = [
    "UPDATE bookings SET confirmed = (ARRAY[-1, 1, 2])[1 + :v % 3] WHERE id % 3 = :k % 3",
    "UPDATE bookings SET course_stream = NULL, referral_code = 'R3' WHERE id % 2 = :k % 2",
    "UPDATE bookings SET user_id = 3, created_at = created_at - interval '1 day' WHERE id = :k",
    "UPDATE bookings SET username = NULLIF('b' || :v, 'b0'), first_name = NULL WHERE id = :k",
    "UPDATE bookings SET created_at = created_at + :v * interval '3 minutes' WHERE id % 4 = :k % 4",
    "UPDATE bookings SET discount_percent = discount_percent WHERE id % 2 = :k % 2",
    "UPDATE events SET user_id = NULLIF(:v % 4, 0) WHERE id % 4 = :k % 4",
    "UPDATE events SET event_type = 'lesson_attended' WHERE id % 3 = :k % 3",
    "UPDATE events SET created_at = created_at + :v * interval '2 days' WHERE id % 5 = :k % 5",
    "UPDATE free_lesson_registrations SET username = 'renamed', lesson_date = NULL"
    " WHERE id % 2 = :k % 2",
    "DELETE FROM bookings WHERE id % 3 = :k % 3",
    "DELETE FROM events WHERE user_id = 1 OR id = :k",
    "DELETE FROM free_lesson_registrations WHERE user_id = 2 OR id % 4 = :k % 4",
]
operations = st.lists(
    st.one_of(
        st.tuples(st.just(Booking), st.lists(bookings, min_size=1, max_size=4)),
        st.tuples(st.just(Event), st.lists(events, min_size=1, max_size=6)),
        st.tuples(st.just(FreeLessonRegistration), st.lists(registrations, min_size=1, max_size=3)),
        st.tuples(st.sampled_from(EDITS), st.tuples(st.integers(0, 12), st.integers(0, 12))),
    ),
    min_size=1,
    max_size=12,
)


def _apply(connection: Connection, operation: tuple[Any, Any]) -> None:
    target, payload = operation
    if isinstance(target, str):
        k, v = payload
        connection.execute(text(target), {"k": k, "v": v})
    else:
        connection.execute(insert(target), payload)


def _sources(connection: Connection) -> reference.Sources:
    def rows(table: str) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in connection.execute(text(f"SELECT * FROM {table}"))]

    return reference.Sources(
        bookings=rows("bookings"),
        events=rows("events"),
        registrations=rows("free_lesson_registrations"),
        course_names={row["id"]: row["name"] for row in rows("courses")},
    )


def _with_float_rate(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row[:4], None if row[4] is None else float(row[4]))


def _figures(connection: Connection, timezone: str) -> dict[str, Any]:
    def run(name: str, **params: Any) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in connection.execute(named_sql(name), params)]

    window = {**WINDOW.as_params(), "tz": timezone}
    users = {
        row.user_id: {
            "username": row.username,
            "first_name": row.first_name,
            "first_seen": row.first_seen,
            "last_seen": row.last_seen,
            "status": row.status,
            "course_stream": row.course_stream,
            "bookings_count": row.bookings_count,
            "events_count": row.events_count,
            "free_lessons_count": row.free_lessons_count,
        }
        for row in connection.execute(queries.user_rows(queries.UserFilter()))
    }
    stats = connection.execute(named_sql("dashboard_stats")).one()._asdict()
    funnel_rows = {row.funnel_steps: row.users for row in connection.execute(
        named_sql("funnel_steps"), window)}  # fmt: skip
    funnel = []
    required = 0
    for bit in (0, 1, 2, 4, 8):
        required |= bit
        funnel.append(
            (
                sum(n for steps, n in funnel_rows.items() if steps & required == required),
                sum(n for steps, n in funnel_rows.items() if steps & bit == bit),
            )
        )
    return {
        "users": users,
        "stats": stats,
        "courses": run("course_figures"),
        "streams": [(r[0], *r[2:]) for r in run("stream_figures")],
        "top_events": run("top_events", limit=100),
        "referrals": [_with_float_rate(r) for r in run("referral_figures")],
        "conversion": [_with_float_rate(r) for r in run("lesson_conversion")],
        "daily": run("daily_activity", **window),
        "growth": run("user_growth", **window),
        "funnel": funnel,
        "retention": {
            (row.cohort_week, row.lifetime_weeks): row.users
            for row in connection.execute(
                named_sql("retention_cohorts"),
                {"first_day": COHORT_MONDAY, "weeks": 2, "tz": timezone},
            )
        },
    }  # fmt: skip


def _expected(sources: reference.Sources, timezone: str) -> dict[str, Any]:
    first, last = WINDOW.first_day, WINDOW.last_day
    return {
        "users": reference.users(sources),
        "stats": reference.stats(sources),
        "courses": reference.courses(sources),
        "streams": reference.streams(sources),
        "top_events": reference.top_events(sources),
        "referrals": reference.referrals(sources),
        "conversion": reference.conversion(sources),
        "daily": reference.daily(sources, first, last, timezone),
        "growth": reference.growth(sources, first, last, timezone),
        "funnel": reference.funnel(sources, first, last, timezone),
        "retention": reference.retention(sources, COHORT_MONDAY, 2, timezone),
    }


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=operations, timezone=st.sampled_from(TIMEZONES))
def test_every_figure_matches_plain_python(
    sync_engine: Engine, capture: str, operations: list[tuple[Any, Any]], timezone: str
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(
            text("TRUNCATE bookings, events, free_lesson_registrations, courses RESTART IDENTITY")
        )
        connection.execute(insert(Course), [{"id": 1, "name": "One"}, {"id": 2, "name": "Two"}])
    for number, operation in enumerate(operations):
        with sync_engine.begin() as connection:
            _apply(connection, operation)
        # Batches of one operation and of several, as the folder would meet them, and
        # (from the change log) batches of one to three rows, which cut through a
        # transaction's rows and split an update's old and new versions.
        if number % 2:
            fold_pending(sync_engine, batch_rows=1 + number // 2 % 3)
    fold_pending(sync_engine)
    with sync_engine.begin() as connection:
        actual = _figures(connection, timezone)
        expected = _expected(_sources(connection), timezone)
    assert actual == expected
    assert_summaries_match_a_rebuild(sync_engine)
