"""Every figure of docs/reference.md §4, read from the summary tables; one function per figure.

Each takes the session to read with and answers plain response models, so a cache can
wrap any of them by its arguments. Nothing here writes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.analytics import rows
from coursedesk.analytics.periods import DayWindow, cohort_window
from coursedesk.analytics.schemas import (
    BookingRow,
    CourseFigures,
    DailyActivity,
    DashboardStats,
    EventRow,
    EventTypeFigures,
    FreeLessonRow,
    Funnel,
    FunnelStep,
    GrowthDay,
    LessonConversion,
    ReferralFigures,
    Retention,
    RetentionCohort,
    RetentionWeek,
    StreamFigures,
)
from coursedesk.analytics.sql_files import named_sql

# Funnel steps in order, each with the bit of user_cohorts.funnel_steps it needs.
FUNNEL_STEPS = (
    ("started_bot", 0),
    ("registered_free_lesson", 1),
    ("attended_free_lesson", 2),
    ("booked", 4),
    ("paid", 8),
)


def percent(part: int, whole: int) -> float | None:
    """round(100 × part / whole, 2), half away from zero as PostgreSQL rounds; None for 0."""
    if whole == 0:
        return None
    exact = Decimal(100 * part) / Decimal(whole)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


async def dashboard_stats(session: AsyncSession) -> DashboardStats:
    row = (await session.execute(named_sql("dashboard_stats"))).one()
    return DashboardStats.model_validate(row)


async def daily_activity(
    session: AsyncSession, window: DayWindow, timezone: str
) -> list[DailyActivity]:
    result = await session.execute(
        named_sql("daily_activity"), {**window.as_params(), "tz": timezone}
    )
    return [
        DailyActivity(
            date=row.day,
            new_users=row.new_users,
            bookings=row.bookings,
            events=row.events,
            free_lesson_registrations=row.free_lesson_registrations,
        )
        for row in result
    ]


async def user_growth(session: AsyncSession, window: DayWindow, timezone: str) -> list[GrowthDay]:
    result = await session.execute(named_sql("user_growth"), {**window.as_params(), "tz": timezone})
    return [
        GrowthDay(date=row.day, new_users=row.new_users, total_users=row.total_users)
        for row in result
    ]


async def course_figures(session: AsyncSession) -> list[CourseFigures]:
    result = await session.execute(named_sql("course_figures"))
    return [CourseFigures.model_validate(row) for row in result]


async def stream_figures(session: AsyncSession) -> list[StreamFigures]:
    result = await session.execute(named_sql("stream_figures"))
    return [StreamFigures.model_validate(row) for row in result]


async def top_events(session: AsyncSession, limit: int) -> list[EventTypeFigures]:
    result = await session.execute(named_sql("top_events"), {"limit": limit})
    return [EventTypeFigures.model_validate(row) for row in result]


async def referral_figures(session: AsyncSession) -> list[ReferralFigures]:
    result = await session.execute(named_sql("referral_figures"))
    return [ReferralFigures.model_validate(row) for row in result]


async def lesson_conversion(session: AsyncSession) -> list[LessonConversion]:
    result = await session.execute(named_sql("lesson_conversion"))
    return [LessonConversion.model_validate(row) for row in result]


async def recent_events(session: AsyncSession, limit: int) -> list[EventRow]:
    result = await session.execute(rows.event_rows(limit=limit))
    return [EventRow.model_validate(row) for row in result]


async def recent_bookings(session: AsyncSession, limit: int) -> list[BookingRow]:
    result = await session.execute(rows.booking_rows(limit=limit))
    return [BookingRow.model_validate(row) for row in result]


async def recent_free_lessons(session: AsyncSession, limit: int) -> list[FreeLessonRow]:
    result = await session.execute(rows.free_lesson_rows(limit=limit))
    return [FreeLessonRow.model_validate(row) for row in result]


async def funnel(session: AsyncSession, window: DayWindow, timezone: str) -> Funnel:
    """The users first seen in the window, step by step (see FUNNEL_STEPS)."""
    result = await session.execute(
        named_sql("funnel_steps"), {**window.as_params(), "tz": timezone}
    )
    users_by_steps = {row.funnel_steps: row.users for row in result}
    cohort = sum(users_by_steps.values())
    steps: list[FunnelStep] = []
    required = 0
    previous = cohort
    for name, bit in FUNNEL_STEPS:
        required |= bit
        through = sum(n for taken, n in users_by_steps.items() if taken & required == required)
        reached = sum(n for taken, n in users_by_steps.items() if taken & bit == bit)
        steps.append(
            FunnelStep(
                step=name,
                users=through,
                reached=reached,
                rate_from_previous=percent(through, previous),
                rate_from_start=percent(through, cohort),
            )
        )
        previous = through
    return Funnel(from_=window.first_day, to=window.last_day, items=steps)


async def retention(session: AsyncSession, today: date, weeks: int, timezone: str) -> Retention:
    """Weekly cohorts by first_seen; week k keeps the users last seen ≥ k weeks after it."""
    window = cohort_window(today=today, weeks=weeks)
    result = await session.execute(
        named_sql("retention_cohorts"),
        {"first_day": window.first_day, "weeks": weeks, "tz": timezone},
    )
    lifetimes: dict[date, dict[int, int]] = defaultdict(dict)
    for row in result:
        lifetimes[row.cohort_week][row.lifetime_weeks] = row.users
    cohorts = []
    for index in range(weeks):
        starts = window.first_day + timedelta(weeks=index)
        by_lifetime = lifetimes.get(starts, {})
        size = sum(by_lifetime.values())
        elapsed = (today - starts).days // 7
        retained = []
        for week in range(elapsed + 1):
            kept = sum(n for lifetime, n in by_lifetime.items() if lifetime >= week)
            retained.append(RetentionWeek(week=week, users=kept, rate=percent(kept, size)))
        cohorts.append(RetentionCohort(cohort_week=starts, users=size, retained=retained))
    return Retention(items=cohorts)
