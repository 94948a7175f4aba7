"""Source rows as the API shows them, newest first: the latest `limit` rows matching
`conditions`, picked before anything is joined to them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, Text, cast, func, literal, select

from coursedesk.sources.models import Booking, Course, Event, FreeLessonRegistration
from coursedesk.users.models import UserSummary


def _latest(
    model: type[Booking] | type[Event],
    conditions: tuple[ColumnElement[bool], ...],
    limit: int | None,
) -> Subquery:
    """The newest `limit` rows of `model` matching `conditions`, as a set to join to."""
    return (
        select(model)
        .where(*conditions)
        .order_by(model.created_at.desc(), model.id.desc())
        .limit(limit)
        .subquery()
    )


def booking_rows(
    *conditions: ColumnElement[bool], limit: int | None = None
) -> Select[*tuple[Any, ...]]:
    """Bookings with their course's name, `Course <id>` when courses has no row for it."""
    latest = _latest(Booking, conditions, limit)
    return (
        select(
            latest.c.id,
            latest.c.user_id,
            latest.c.username,
            latest.c.first_name,
            latest.c.course_id,
            func.coalesce(
                Course.name, literal("Course ", Text) + cast(latest.c.course_id, Text)
            ).label("course_name"),
            latest.c.course_stream,
            latest.c.confirmed,
            latest.c.created_at,
            latest.c.referral_code,
            latest.c.discount_percent,
        )
        .outerjoin(Course, Course.id == latest.c.course_id)
        .order_by(latest.c.created_at.desc(), latest.c.id.desc())
    )


def event_rows(
    *conditions: ColumnElement[bool], limit: int | None = None
) -> Select[*tuple[Any, ...]]:
    """Events with the current username of their user."""
    latest = _latest(Event, conditions, limit)
    return (
        select(
            latest.c.id,
            latest.c.user_id,
            UserSummary.username,
            latest.c.event_type,
            latest.c.created_at,
            latest.c.details,
        )
        .outerjoin(UserSummary, UserSummary.user_id == latest.c.user_id)
        .order_by(latest.c.created_at.desc(), latest.c.id.desc())
    )


def free_lesson_rows(
    *conditions: ColumnElement[bool], limit: int | None = None
) -> Select[*tuple[Any, ...]]:
    return (
        select(
            FreeLessonRegistration.id,
            FreeLessonRegistration.user_id,
            FreeLessonRegistration.username,
            FreeLessonRegistration.first_name,
            FreeLessonRegistration.email,
            FreeLessonRegistration.registered_at,
            FreeLessonRegistration.notification_sent,
            FreeLessonRegistration.lesson_type,
            FreeLessonRegistration.lesson_date,
        )
        .where(*conditions)
        .order_by(FreeLessonRegistration.registered_at.desc(), FreeLessonRegistration.id.desc())
        .limit(limit)
    )
