"""Summary tables derived from the source tables, kept exact by database triggers.

Nothing here is written by the app: the triggers of migration 0002 keep every row
current on each INSERT, UPDATE, DELETE or TRUNCATE of bookings, events and
free_lesson_registrations, whoever runs it. Time counters are kept per UTC quarter-hour,
hour and day, so a day in any time zone (all are whole quarter-hours from UTC) is a sum
of a few whole buckets.
Rows whose counters fall back to zero are left in place and skipped by the readers.

Figures grouped by a key that may be null (course_id, course_stream, lesson_type,
lesson_date) use unique indexes with NULLS NOT DISTINCT, so those tables have no
primary key in the database; the mapper is told which columns identify a row.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Computed, Index, Integer, Numeric, SmallInteger, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from coursedesk.db.base import Base

USER_STATUSES = ("confirmed", "pending", "cancelled", "no_booking")

# Written the way PostgreSQL prints it back, so that the schema comparison sees no change.
USER_STATUS_EXPRESSION = (
    "CASE WHEN (confirmed_bookings > 0) THEN 'confirmed'::text "
    "WHEN (pending_bookings > 0) THEN 'pending'::text "
    "WHEN (bookings_count > 0) THEN 'cancelled'::text "
    "ELSE 'no_booking'::text END"
)
NAME_GRAMS_EXPRESSION = "analytics_name_grams(username, first_name)"
SHORT_TERM = 2  # the longest search term the trigram indexes cannot serve


def _identified_by(*columns: str) -> dict[str, Any]:
    """Mapper arguments naming the columns that identify a row of a table without a key."""
    return {"primary_key": list(columns)}


def _counter() -> Mapped[int]:
    return mapped_column(Integer, server_default="0")


class UserSummary(Base):
    """One row per user (SPEC §4): names, first and last seen, status, stream and counts.

    Each `*_at`/`*_row` pair records which source row the value beside it came from
    (time, then row id), so a later row replaces it only when it is more recent.
    """

    __tablename__ = "user_summaries"
    __table_args__ = (
        # Carries the names, so that the most recent users are searched in the index alone.
        Index(
            "ix_user_summaries_first_seen_user_id",
            "first_seen",
            "user_id",
            postgresql_include=["username", "first_name"],
        ),
        Index("ix_user_summaries_status_first_seen_user_id", "status", "first_seen", "user_id"),
        Index(
            "ix_user_summaries_course_stream_first_seen_user_id",
            "course_stream",
            "first_seen",
            "user_id",
        ),
        Index(
            "ix_user_summaries_username_trgm",
            "username",
            postgresql_using="gin",
            postgresql_ops={"username": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        ),
        Index(
            "ix_user_summaries_first_name_trgm",
            "first_name",
            postgresql_using="gin",
            postgresql_ops={"first_name": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        ),
        Index(
            "ix_user_summaries_name_grams",
            "name_grams",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(Text)
    username_at: Mapped[datetime | None]
    username_row: Mapped[int | None] = mapped_column(Integer)
    first_name: Mapped[str | None] = mapped_column(Text)
    first_name_at: Mapped[datetime | None]
    first_name_row: Mapped[int | None] = mapped_column(Integer)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    bookings_count: Mapped[int] = _counter()
    confirmed_bookings: Mapped[int] = _counter()
    pending_bookings: Mapped[int] = _counter()
    events_count: Mapped[int] = _counter()
    lessons_attended: Mapped[int] = _counter()
    free_lessons_count: Mapped[int] = _counter()
    course_stream: Mapped[str | None] = mapped_column(Text)
    stream_booking_at: Mapped[datetime | None]
    stream_booking_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, Computed(USER_STATUS_EXPRESSION, persisted=True))
    # Every substring of one or two characters of the lower-cased names, for searches
    # too short for the trigram indexes.
    name_grams: Mapped[list[str]] = mapped_column(
        ARRAY(Text), Computed(NAME_GRAMS_EXPRESSION, persisted=True)
    )


class ActivityBucket(Base):
    """Rows created per UTC quarter-hour, hour and day (`span` in minutes), and users
    whose first_seen falls in it."""

    __tablename__ = "activity_buckets"

    span: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    new_users: Mapped[int] = _counter()
    bookings: Mapped[int] = _counter()
    events: Mapped[int] = _counter()
    free_lesson_registrations: Mapped[int] = _counter()


class UserSegment(Base):
    """How many users have each (status, course_stream): the totals of the users list."""

    __tablename__ = "user_segments"
    __table_args__ = (
        Index(
            "uq_user_segments_status_course_stream",
            "status",
            "course_stream",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = _identified_by("status", "course_stream")

    status: Mapped[str] = mapped_column(Text)
    course_stream: Mapped[str | None] = mapped_column(Text)
    users: Mapped[int] = _counter()


class UserFunnel(Base):
    """Users by span and bucket of their first_seen, and the funnel steps they took
    (bits: 1 free lesson, 2 attended, 4 booked, 8 paid)."""

    __tablename__ = "user_funnel"

    span: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    funnel_steps: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    users: Mapped[int] = _counter()


class UserRetention(Base):
    """Users by span and bucket of their first_seen, and the whole weeks from their
    first_seen to their last_seen (52 standing for 52 or more)."""

    __tablename__ = "user_retention"

    span: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    lifetime_weeks: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    users: Mapped[int] = _counter()


class CourseFigures(Base):
    __tablename__ = "course_figures"
    __table_args__ = (
        Index(
            "uq_course_figures_course_id",
            "course_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = _identified_by("course_id")

    course_id: Mapped[int | None] = mapped_column(Integer)
    total_bookings: Mapped[int] = _counter()
    confirmed: Mapped[int] = _counter()
    pending: Mapped[int] = _counter()
    cancelled: Mapped[int] = _counter()
    unique_users: Mapped[int] = _counter()


class CourseMember(Base):
    """Bookings per (course, user): a user counts towards unique_users while above zero."""

    __tablename__ = "course_members"
    __table_args__ = (
        Index(
            "uq_course_members_user_id_course_id",
            "user_id",
            "course_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = _identified_by("user_id", "course_id")

    course_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(BigInteger)
    bookings: Mapped[int] = _counter()


class StreamFigures(Base):
    __tablename__ = "stream_figures"
    __table_args__ = (
        Index(
            "uq_stream_figures_course_id_course_stream",
            "course_id",
            "course_stream",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = _identified_by("course_id", "course_stream")

    course_id: Mapped[int | None] = mapped_column(Integer)
    course_stream: Mapped[str] = mapped_column(Text)
    total_bookings: Mapped[int] = _counter()
    confirmed: Mapped[int] = _counter()
    pending: Mapped[int] = _counter()
    cancelled: Mapped[int] = _counter()
    unique_users: Mapped[int] = _counter()


class StreamMember(Base):
    __tablename__ = "stream_members"
    __table_args__ = (
        Index(
            "uq_stream_members_user_id_course_id_course_stream",
            "user_id",
            "course_id",
            "course_stream",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = _identified_by("user_id", "course_id", "course_stream")

    course_id: Mapped[int | None] = mapped_column(Integer)
    course_stream: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(BigInteger)
    bookings: Mapped[int] = _counter()


class EventTypeFigures(Base):
    __tablename__ = "event_type_figures"

    event_type: Mapped[str] = mapped_column(Text, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, server_default="0")
    unique_users: Mapped[int] = _counter()


class EventTypeMember(Base):
    __tablename__ = "event_type_members"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_type: Mapped[str] = mapped_column(Text, primary_key=True)
    events: Mapped[int] = _counter()


class ReferralFigures(Base):
    """Per referral code; the average discount is discount_total / discounted."""

    __tablename__ = "referral_figures"

    referral_code: Mapped[str] = mapped_column(Text, primary_key=True)
    bookings: Mapped[int] = _counter()
    confirmed: Mapped[int] = _counter()
    unique_users: Mapped[int] = _counter()
    discount_total: Mapped[Decimal] = mapped_column(Numeric, server_default="0")
    discounted: Mapped[int] = _counter()


class ReferralMember(Base):
    __tablename__ = "referral_members"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    referral_code: Mapped[str] = mapped_column(Text, primary_key=True)
    bookings: Mapped[int] = _counter()


class LessonFigures(Base):
    """Per (lesson_type, lesson_date): registration and attendance rows and users."""

    __tablename__ = "lesson_figures"
    __table_args__ = (
        Index(
            "uq_lesson_figures_lesson_type_lesson_date",
            "lesson_type",
            "lesson_date",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = _identified_by("lesson_type", "lesson_date")

    lesson_type: Mapped[str | None] = mapped_column(Text)
    lesson_date: Mapped[date | None]
    registrations: Mapped[int] = _counter()
    attendances: Mapped[int] = _counter()
    registered_users: Mapped[int] = _counter()
    attending_users: Mapped[int] = _counter()


class LessonMember(Base):
    __tablename__ = "lesson_members"
    __table_args__ = (
        Index(
            "uq_lesson_members_user_id_lesson_type_lesson_date",
            "user_id",
            "lesson_type",
            "lesson_date",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = _identified_by("user_id", "lesson_type", "lesson_date")

    lesson_type: Mapped[str | None] = mapped_column(Text)
    lesson_date: Mapped[date | None]
    user_id: Mapped[int] = mapped_column(BigInteger)
    registrations: Mapped[int] = _counter()
    attendances: Mapped[int] = _counter()
