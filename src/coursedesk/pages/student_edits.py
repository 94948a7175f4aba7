"""Operators' edits on a student's page: their stream, and the fields of each booking.

A saved edit redirects back to the page; a refused one shows the page again at once, with
the form as it was sent and why it was refused, and changes nothing. A stream is picked
from the course's streams (pages/stream_picker.py); removing one asks first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.analytics.schemas import BookingRow
from coursedesk.db.base import BIGINT_MAX, BIGINT_MIN
from coursedesk.errors import CoursedeskError
from coursedesk.pages.flash import redirect_with_flash
from coursedesk.pages.forms import all_or_nothing, parse_form
from coursedesk.pages.routes import PageOperator, page_router
from coursedesk.pages.stream_picker import existing, picker_as_sent, read_choice
from coursedesk.pages.students import (
    EditForm,
    Question,
    SentBack,
    UserId,
    latest_live,
    render_student_page,
)
from coursedesk.users import service as users
from coursedesk.users.router import BookingId
from coursedesk.users.schemas import BookingEdit, StreamMove
from coursedesk.users.streams import UnknownStream, course_label, streams_of_courses
from coursedesk.web.deps import Session

router = page_router()

FormText = Annotated[str, Form(max_length=200)]


def _asking_to_remove(booking_id: int, stream: str) -> Question:
    return Question(
        "Remove the stream?",
        f"Booking #{booking_id} leaves stream {stream} and is in no stream.",
        send="Remove the stream",
        keep="Keep the stream",
        confirm_removal=True,
    )


def _why(exc: CoursedeskError) -> str:
    """A refusal as the page says it: where the API hints at create_stream, the page has
    its "New stream…" choice."""
    if isinstance(exc, UnknownStream):
        return (
            f'stream "{exc.name}" is gone from {course_label(exc.course_id)}: choose another, '
            'or "New stream…" to create it'
        )
    return str(exc)


async def _course_streams(session: AsyncSession, booking: BookingRow | None) -> list[str]:
    if booking is None:
        return []
    return (await streams_of_courses(session, [booking.course_id]))[booking.course_id]


def _booking(bookings: Sequence[BookingRow], booking_id: int) -> BookingRow | None:
    return next((booking for booking in bookings if booking.id == booking_id), None)


@router.post("/users/{user_id}/stream")
async def change_stream(
    request: Request,
    principal: PageOperator,
    session: Session,
    user_id: UserId,
    stream_choice: FormText = "",
    new_stream: FormText = "",
    confirm_remove: FormText = "",
) -> Response:
    """Move the student's latest booking that is not cancelled to another stream."""
    back = f"/users/{user_id}"
    moved = latest_live(await users.user_bookings(session, user_id))
    current = moved.course_stream if moved is not None else None
    shown = picker_as_sent(await _course_streams(session, moved), stream_choice, new_stream)
    try:
        choice = read_choice(stream_choice, new_stream)
        if moved is not None and current and choice.name is None and confirm_remove != "yes":
            asked = SentBack(
                EditForm({"course_stream": current}, picker=shown),
                question=_asking_to_remove(moved.id, current),
            )
            return await render_student_page(request, principal, session, user_id, asked)
        move = parse_form(
            StreamMove, {"course_stream": choice.name, "create_stream": choice.create}
        )
        async with all_or_nothing(session):
            booking = await users.move_stream(
                session, user_id, move.course_stream, create_stream=move.create_stream
            )
    except CoursedeskError as exc:
        why = _why(exc)
        form = EditForm({"course_stream": current or ""}, picker=shown, error=why)
        refused = SentBack(form, message=f"The stream was not changed: {why}")
        return await render_student_page(request, principal, session, user_id, refused)
    stream = f"stream {booking.course_stream}" if booking.course_stream else "no stream"
    return redirect_with_flash(request, back, f"Booking #{booking.id} is now in {stream}.")


def _posted_value(field: str, value: str) -> object:
    """A form's text as BookingEdit takes it: a number for `confirmed`, None for a blank."""
    if field == "confirmed":
        return int(value) if value.strip() in ("-1", "1", "2") else value
    if field == "discount_percent" and not value.strip():
        return None
    return value


@router.post("/bookings/{booking_id}/edit")
async def edit_booking(
    request: Request,
    principal: PageOperator,
    session: Session,
    booking_id: BookingId,
    user_id: Annotated[int, Form(ge=BIGINT_MIN, le=BIGINT_MAX)],
    confirmed: FormText = "",
    stream_choice: FormText = "",
    new_stream: FormText = "",
    confirm_remove: FormText = "",
    referral_code: FormText = "",
    discount_percent: FormText = "",
    was_confirmed: FormText = "",
    was_course_stream: FormText = "",
    was_referral_code: FormText = "",
    was_discount_percent: FormText = "",
) -> Response:
    """Save the fields the operator changed (the form also sends what they were). A form
    without the stream picker leaves the stream as it was."""
    back = f"/users/{user_id}"
    posted = {
        "confirmed": (confirmed, was_confirmed),
        "referral_code": (referral_code, was_referral_code),
        "discount_percent": (discount_percent, was_discount_percent),
    }
    booking = _booking(await users.user_bookings(session, user_id), booking_id)
    shown = picker_as_sent(
        await _course_streams(session, booking),
        stream_choice or existing(was_course_stream),
        new_stream,
    )

    def sent_back(
        error: str | None = None, message: str | None = None, question: Question | None = None
    ) -> SentBack:
        typed = {field: now for field, (now, _) in posted.items()}
        was = {field: before for field, (_, before) in posted.items()}
        stream = {"course_stream": was_course_stream}
        form = EditForm(typed | stream, was | stream, error, shown)
        return SentBack(form, booking_id, message, question)

    changes: dict[str, object] = {
        field: _posted_value(field, now)
        for field, (now, before) in posted.items()
        if now.strip() != before.strip()
    }
    try:
        choice = read_choice(stream_choice, new_stream) if stream_choice else None
        if choice is not None and (choice.name or "").strip() != was_course_stream.strip():
            changes |= {"course_stream": choice.name, "create_stream": choice.create}
            if choice.name is None and confirm_remove != "yes":
                asked = sent_back(question=_asking_to_remove(booking_id, was_course_stream))
                return await render_student_page(request, principal, session, user_id, asked)
        if not changes:
            return redirect_with_flash(
                request, back, f"Booking #{booking_id}: nothing changed.", "info"
            )
        edit = parse_form(BookingEdit, changes)
        async with all_or_nothing(session):
            await users.update_booking(session, booking_id, edit)
    except CoursedeskError as exc:
        why = _why(exc)
        refused = sent_back(why, message=f"Booking #{booking_id} was not saved: {why}")
        return await render_student_page(request, principal, session, user_id, refused)
    return redirect_with_flash(request, back, f"Booking #{booking_id} saved.")
