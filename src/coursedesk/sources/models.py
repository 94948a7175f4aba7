"""The source tables of docs/reference.md §3; their columns are a contract with the bot."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Text,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coursedesk.db.base import Base

BOOKING_CANCELLED = -1
BOOKING_PENDING = 1
BOOKING_CONFIRMED = 2


class Course(Base):
    """Optional course names; a course_id without a row is shown as `Course <id>`."""

    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(Text)


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("confirmed IN (-1, 1, 2)", name="confirmed_known"),
        CheckConstraint(
            "discount_percent IS NULL OR discount_percent BETWEEN 0 AND 100",
            name="discount_percent_range",
        ),
        Index("ix_bookings_user_id_created_at", "user_id", "created_at"),
        Index("ix_bookings_created_at", "created_at"),
        Index("ix_bookings_course_id_course_stream", "course_id", "course_stream"),
        Index(
            "ix_bookings_referral_code",
            "referral_code",
            postgresql_where="referral_code IS NOT NULL",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    course_id: Mapped[int | None] = mapped_column(Integer)
    course_stream: Mapped[str | None] = mapped_column(Text)
    confirmed: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    referral_code: Mapped[str | None] = mapped_column(Text)
    discount_percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_id_created_at", "user_id", "created_at"),
        Index("ix_events_created_at", "created_at"),
        Index("ix_events_event_type", "event_type"),
        # What a broadcast's outcome counts, by time (broadcasts/sql/earnings.sql); partial,
        # so that the bot's other events never enter it.
        Index(
            "ix_events_outcome",
            "created_at",
            postgresql_include=["user_id", "event_type"],
            postgresql_where="event_type IN ('lesson_attended', 'bot_blocked')",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class FreeLessonRegistration(Base):
    __tablename__ = "free_lesson_registrations"
    __table_args__ = (
        Index("ix_free_lesson_registrations_user_id", "user_id"),
        Index("ix_free_lesson_registrations_registered_at", "registered_at"),
        Index("ix_free_lesson_registrations_lesson_type_lesson_date", "lesson_type", "lesson_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(server_default=func.now())
    notification_sent: Mapped[bool] = mapped_column(Boolean, server_default=false())
    lesson_type: Mapped[str | None] = mapped_column(Text)
    lesson_date: Mapped[date | None] = mapped_column(Date)
