"""The analytics routes of docs/reference.md §5, funnel and retention included; `?format=csv`
on each list.

Every figure is read through the answer cache, on the replica when there is one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from coursedesk.analytics import service
from coursedesk.analytics.export import ExportFormat, csv_response, listed, models_csv
from coursedesk.analytics.periods import (
    DEFAULT_WEEKS,
    MAX_DAYS,
    MAX_WEEKS,
    DayWindow,
    resolve_window,
)
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
    Items,
    LessonConversion,
    ReferralFigures,
    Retention,
    StreamFigures,
)
from coursedesk.config import Settings
from coursedesk.web.deps import CachedRead, Viewer, get_settings

router = APIRouter(prefix="/api", tags=["analytics"])

SettingsDep = Annotated[Settings, Depends(get_settings)]
Format = Annotated[
    ExportFormat, Query(alias="format", description="`csv` downloads the list as CSV.")
]
MAX_LIST = 500


async def day_window(
    settings: SettingsDep,
    days: Annotated[
        int | None,
        Query(ge=1, le=MAX_DAYS, description="The last N days, today included (default 30)."),
    ] = None,
    first_day: Annotated[
        date | None, Query(alias="from", description="First day (YYYY-MM-DD), instead of days.")
    ] = None,
    last_day: Annotated[
        date | None, Query(alias="to", description="Last day (YYYY-MM-DD); default today.")
    ] = None,
) -> DayWindow:
    """Days in APP_TIMEZONE; a range covers 1 to 366 days."""
    return resolve_window(today=settings.today(), days=days, first_day=first_day, last_day=last_day)


Window = Annotated[DayWindow, Depends(day_window)]


@router.get("/stats", summary="The four headline figures")
async def stats(_: Viewer, reads: CachedRead) -> DashboardStats:
    return await reads(service.dashboard_stats)


@router.get(
    "/stats/daily",
    summary="Activity per day",
    description="One row per calendar day in APP_TIMEZONE, oldest first, zeros included.",
    response_model=Items[DailyActivity],
)
async def daily(
    _: Viewer, reads: CachedRead, settings: SettingsDep, window: Window, output: Format = "json"
) -> Items[DailyActivity] | StreamingResponse:
    items = await reads(service.daily_activity, window, settings.app_timezone)
    return listed(items, output, f"daily-{window.first_day}-{window.last_day}.csv", DailyActivity)


@router.get(
    "/user-growth",
    summary="New and total users per day",
    description="One row per calendar day in APP_TIMEZONE, oldest first.",
    response_model=Items[GrowthDay],
)
async def user_growth(
    _: Viewer, reads: CachedRead, settings: SettingsDep, window: Window, output: Format = "json"
) -> Items[GrowthDay] | StreamingResponse:
    items = await reads(service.user_growth, window, settings.app_timezone)
    return listed(items, output, f"growth-{window.first_day}-{window.last_day}.csv", GrowthDay)


@router.get(
    "/courses",
    summary="Bookings per course",
    description="Per course_id (bookings without one form a group of their own), by course_id.",
    response_model=Items[CourseFigures],
)
async def courses(
    _: Viewer, reads: CachedRead, output: Format = "json"
) -> Items[CourseFigures] | StreamingResponse:
    items = await reads(service.course_figures)
    return listed(items, output, "courses.csv", CourseFigures)


@router.get(
    "/courses/streams",
    summary="Bookings per course stream",
    description="Per course_id and non-null course_stream, by course_id then stream.",
    response_model=Items[StreamFigures],
)
async def streams(
    _: Viewer, reads: CachedRead, output: Format = "json"
) -> Items[StreamFigures] | StreamingResponse:
    items = await reads(service.stream_figures)
    return listed(items, output, "streams.csv", StreamFigures)


@router.get(
    "/events/top",
    summary="Most frequent event types",
    description="By count, then event_type.",
    response_model=Items[EventTypeFigures],
)
async def top_events(
    _: Viewer,
    reads: CachedRead,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 10,
    output: Format = "json",
) -> Items[EventTypeFigures] | StreamingResponse:
    items = await reads(service.top_events, limit)
    return listed(items, output, "top-events.csv", EventTypeFigures)


@router.get(
    "/events/recent",
    summary="Latest events",
    description="Newest first (created_at, then id).",
    response_model=Items[EventRow],
)
async def recent_events(
    _: Viewer,
    reads: CachedRead,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
    output: Format = "json",
) -> Items[EventRow] | StreamingResponse:
    items = await reads(service.recent_events, limit)
    return listed(items, output, "recent-events.csv", EventRow)


@router.get(
    "/bookings/recent",
    summary="Latest bookings",
    description="Newest first (created_at, then id).",
    response_model=Items[BookingRow],
)
async def recent_bookings(
    _: Viewer,
    reads: CachedRead,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
    output: Format = "json",
) -> Items[BookingRow] | StreamingResponse:
    items = await reads(service.recent_bookings, limit)
    return listed(items, output, "recent-bookings.csv", BookingRow)


@router.get(
    "/referrals",
    summary="Bookings per referral code",
    description="Per non-null referral_code, by bookings then code.",
    response_model=Items[ReferralFigures],
)
async def referrals(
    _: Viewer, reads: CachedRead, output: Format = "json"
) -> Items[ReferralFigures] | StreamingResponse:
    items = await reads(service.referral_figures)
    return listed(items, output, "referrals.csv", ReferralFigures)


@router.get(
    "/free-lessons",
    summary="Latest free lesson registrations",
    description="Newest first (registered_at, then id).",
    response_model=Items[FreeLessonRow],
)
async def free_lessons(
    _: Viewer,
    reads: CachedRead,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50,
    output: Format = "json",
) -> Items[FreeLessonRow] | StreamingResponse:
    items = await reads(service.recent_free_lessons, limit)
    return listed(items, output, "free-lessons.csv", FreeLessonRow)


@router.get(
    "/free-lessons/conversion",
    summary="Free lesson attendance per lesson",
    description=(
        "Per (lesson_type, lesson_date) found in registrations or in `lesson_attended` "
        "events (details.lesson_type, details.lesson_date; a date that is not a valid "
        "YYYY-MM-DD counts as none). By lesson_date descending (no date last), then type."
    ),
    response_model=Items[LessonConversion],
)
async def lesson_conversion(
    _: Viewer, reads: CachedRead, output: Format = "json"
) -> Items[LessonConversion] | StreamingResponse:
    items = await reads(service.lesson_conversion)
    return listed(items, output, "lesson-conversion.csv", LessonConversion)


@router.get(
    "/funnel",
    summary="From the first contact to payment",
    description=(
        "The cohort is every user whose first_seen falls in the range (days in "
        "APP_TIMEZONE). Steps, in order: `started_bot` (the cohort itself), "
        "`registered_free_lesson` (has a free_lesson_registrations row), "
        "`attended_free_lesson` (has a `lesson_attended` event), `booked` (has a booking "
        "of any status), `paid` (has a booking with confirmed = 2). `users` counts those "
        "who took the step and every earlier one; `reached` those who took the step "
        "whatever else they did. Rates are percentages with 2 decimals, null over zero."
    ),
    response_model=Funnel,
)
async def funnel(
    _: Viewer, reads: CachedRead, settings: SettingsDep, window: Window, output: Format = "json"
) -> Funnel | StreamingResponse:
    answer = await reads(service.funnel, window, settings.app_timezone)
    if output == "csv":
        return models_csv(
            f"funnel-{window.first_day}-{window.last_day}.csv", FunnelStep, answer.items
        )
    return answer


@router.get(
    "/retention",
    summary="Weekly retention cohorts",
    description=(
        "Cohorts are the calendar weeks (Monday to Sunday, APP_TIMEZONE) of the users' "
        "first_seen, the current week last. Week k of a cohort counts its users whose "
        "last_seen is at least 7·k days after their first_seen (rolling retention); "
        "weeks are listed up to the number of whole weeks since the cohort's Monday. "
        "Rates are percentages of the cohort with 2 decimals."
    ),
    response_model=Retention,
)
async def retention(
    _: Viewer,
    reads: CachedRead,
    settings: SettingsDep,
    weeks: Annotated[int, Query(ge=1, le=MAX_WEEKS)] = DEFAULT_WEEKS,
    output: Format = "json",
) -> Retention | StreamingResponse:
    answer = await reads(service.retention, settings.today(), weeks, settings.app_timezone)
    if output == "csv":
        return csv_response(
            "retention.csv",
            ["cohort_week", "cohort_users", "week", "users", "rate"],
            _retention_rows(answer),
        )
    return answer


async def _retention_rows(answer: Retention) -> AsyncIterator[list[object]]:
    for cohort in answer.items:
        for week in cohort.retained:
            yield [cohort.cohort_week, cohort.users, week.week, week.users, week.rate]
