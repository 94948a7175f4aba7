"""Response bodies of the analytics routes (docs/reference.md §5); field names are the contract."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from coursedesk.web.schemas import Timestamp

ItemT = TypeVar("ItemT", bound=BaseModel)


class Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Items(BaseModel, Generic[ItemT]):
    items: list[ItemT]


class DashboardStats(Row):
    total_users: int
    active_bookings: int = Field(description="Bookings with confirmed in (1, 2).")
    confirmed_payments: int = Field(description="Bookings with confirmed = 2.")
    free_lesson_registrations: int = Field(description="Registration rows.")


class DailyActivity(Row):
    date: dt.date
    new_users: int = Field(description="Users whose first_seen falls on this day.")
    bookings: int
    events: int
    free_lesson_registrations: int


class GrowthDay(Row):
    date: dt.date
    new_users: int
    total_users: int = Field(description="Users with first_seen on or before this day.")


class CourseFigures(Row):
    course_id: int | None
    course_name: str | None = Field(description="From courses, else `Course <id>`.")
    total_bookings: int
    confirmed: int
    pending: int
    cancelled: int
    unique_users: int


class StreamFigures(CourseFigures):
    course_stream: str


class EventTypeFigures(Row):
    event_type: str
    count: int
    unique_users: int = Field(description="Distinct non-null user ids.")


class EventRow(Row):
    id: int
    user_id: int | None
    username: str | None = Field(description="The user's current username.")
    event_type: str
    created_at: Timestamp
    details: Any


class BookingRow(Row):
    id: int
    user_id: int
    username: str | None
    first_name: str | None
    course_id: int | None
    course_name: str | None
    course_stream: str | None
    confirmed: int = Field(description="-1 cancelled, 1 pending, 2 confirmed.")
    created_at: Timestamp
    referral_code: str | None
    discount_percent: float | None


class ReferralFigures(Row):
    referral_code: str
    bookings: int
    confirmed: int
    unique_users: int
    avg_discount_percent: float | None = Field(
        description="Mean of the non-null discounts, 2 decimals; null when there are none."
    )


class FreeLessonRow(Row):
    id: int
    user_id: int
    username: str | None
    first_name: str | None
    email: str | None
    registered_at: Timestamp
    notification_sent: bool
    lesson_type: str | None
    lesson_date: dt.date | None


class LessonConversion(Row):
    lesson_type: str | None
    lesson_date: dt.date | None
    registrations: int = Field(description="Distinct registered users.")
    attendances: int = Field(description="Distinct users with a lesson_attended event.")
    conversion_rate: float | None = Field(
        description="round(100 × attendances / registrations, 2); null without registrations."
    )


class FunnelStep(Row):
    step: str
    users: int = Field(description="Users of the cohort who took this step and every earlier one.")
    reached: int = Field(description="Users of the cohort who took this step, whatever else.")
    rate_from_previous: float | None = Field(
        description="round(100 × users / users of the previous step, 2)."
    )
    rate_from_start: float | None = Field(description="round(100 × users / cohort size, 2).")


class Funnel(BaseModel):
    from_: dt.date = Field(serialization_alias="from")
    to: dt.date
    items: list[FunnelStep]


class RetentionWeek(Row):
    week: int = Field(description="Weeks after first_seen.")
    users: int = Field(
        description="Users of the cohort last seen at least this many weeks "
        "after they were first seen."
    )
    rate: float | None


class RetentionCohort(Row):
    cohort_week: dt.date = Field(description="The Monday the cohort's week starts on.")
    users: int
    retained: list[RetentionWeek]


class Retention(BaseModel):
    items: list[RetentionCohort]
