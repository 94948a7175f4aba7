"""Summary tables derived from the source tables, and the change log they are folded from.

The per-user summary and the users per status and stream, which serve the student
list, belong to the users domain (users/models.py); the fold keeps them all.

Nothing here is written by a request: the capture triggers append every change of
bookings, events and free_lesson_registrations to analytics_changes, whoever makes it,
and the fold (analytics/sql/install/3_fold.sql) turns those rows into the summaries.
Time counters are kept per UTC quarter-hour, hour and day, so a day in any time zone
(all are whole quarter-hours from UTC) is a sum of a few whole buckets.
Rows whose counters fall back to zero are left in place and skipped by the readers.

Figures grouped by a key that may be null (course_id, course_stream, lesson_type,
lesson_date) use unique indexes with NULLS NOT DISTINCT, so those tables have no
primary key in the database; the mapper is told which columns identify a row.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coursedesk.db.base import Base, TimestampTZ, identified_by


def _counter() -> Mapped[int]:
    return mapped_column(Integer, server_default="0")


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
    __mapper_args__ = identified_by("course_id")

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
    __mapper_args__ = identified_by("user_id", "course_id")

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
    __mapper_args__ = identified_by("course_id", "course_stream")

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
    __mapper_args__ = identified_by("user_id", "course_id", "course_stream")

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
    __mapper_args__ = identified_by("lesson_type", "lesson_date")

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
    __mapper_args__ = identified_by("user_id", "lesson_type", "lesson_date")

    lesson_type: Mapped[str | None] = mapped_column(Text)
    lesson_date: Mapped[date | None]
    user_id: Mapped[int] = mapped_column(BigInteger)
    registrations: Mapped[int] = _counter()
    attendances: Mapped[int] = _counter()


# The change log: what the capture triggers append (1_capture.sql) and the fold consumes.
# No key and no index, so appending costs the bot's statement one heap insert a row;
# `data` is the source row as jsonb, `sign` +1 for a row as it is now, -1 for a row as it
# was, 0 for a TRUNCATE marker.
analytics_changes = Table(
    "analytics_changes",
    Base.metadata,
    Column("captured_at", TimestampTZ, nullable=False, server_default=func.statement_timestamp()),
    Column("source", Text, nullable=False),
    Column("sign", SmallInteger, nullable=False),
    Column("data", JSONB),
)


class AnalyticsFoldState(Base):
    """One row: which process folds, and how the folding goes.

    Its table lock (EXCLUSIVE) is the fold lock: each batch and each rebuild takes it
    before its first query, so they run one at a time and each sees the last one's result.
    """

    __tablename__ = "analytics_fold_state"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("capture IN ('triggers', 'wal')", name="capture_mode"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    folder: Mapped[str | None] = mapped_column(Text)
    folder_since: Mapped[datetime | None]
    folded_at: Mapped[datetime | None]
    folded_rows: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # How changes reach the fold: the capture triggers, or the WAL (wal_capture.py),
    # with the snapshot whose transactions are counted, the moment the figures hold,
    # and whether the slot exists as a rebuild's snapshot would need it.
    capture: Mapped[str] = mapped_column(Text, server_default="triggers")
    wal_snapshot: Mapped[str | None] = mapped_column(Text)
    wal_read_at: Mapped[datetime | None]
    wal_slot_ready: Mapped[bool] = mapped_column(server_default="false")
