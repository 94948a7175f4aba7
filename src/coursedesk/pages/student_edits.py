"""Operators' edits on a student's page: their stream, and the fields of each booking.

A saved edit redirects back to the page; a refused one shows the page again at once, with
the form as it was sent and why it was refused, and changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from coursedesk.db.base import BIGINT_MAX, BIGINT_MIN
from coursedesk.errors import CoursedeskError
from coursedesk.pages.flash import redirect_with_flash
from coursedesk.pages.forms import all_or_nothing, parse_form
from coursedesk.pages.routes import PageOperator, page_router
from coursedesk.pages.students import EditForm, Refusal, UserId, render_student_page
from coursedesk.users import service as users
from coursedesk.users.router import BookingId
from coursedesk.users.schemas import BookingEdit, StreamMove
from coursedesk.web.deps import Session

router = page_router()

FormText = Annotated[str, Form(max_length=200)]


@router.post("/users/{user_id}/stream")
async def change_stream(
    request: Request,
    principal: PageOperator,
    session: Session,
    user_id: UserId,
    course_stream: FormText = "",
) -> Response:
    """Move the student's latest booking that is not cancelled to another stream."""
    back = f"/users/{user_id}"
    try:
        move = parse_form(StreamMove, {"course_stream": course_stream})
        async with all_or_nothing(session):
            booking = await users.move_stream(session, user_id, move.course_stream)
    except CoursedeskError as exc:
        form = EditForm({"course_stream": course_stream}, error=str(exc))
        refusal = Refusal(f"The stream was not changed: {exc}", form)
        return await render_student_page(request, principal, session, user_id, refusal)
    shown = f"stream {booking.course_stream}" if booking.course_stream else "no stream"
    return redirect_with_flash(request, back, f"Booking #{booking.id} is now in {shown}.")


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
    course_stream: FormText = "",
    referral_code: FormText = "",
    discount_percent: FormText = "",
    was_confirmed: FormText = "",
    was_course_stream: FormText = "",
    was_referral_code: FormText = "",
    was_discount_percent: FormText = "",
) -> Response:
    """Save the fields the operator changed (the form also sends what they were)."""
    back = f"/users/{user_id}"
    posted = {
        "confirmed": (confirmed, was_confirmed),
        "course_stream": (course_stream, was_course_stream),
        "referral_code": (referral_code, was_referral_code),
        "discount_percent": (discount_percent, was_discount_percent),
    }
    changes = {
        field: _posted_value(field, now)
        for field, (now, before) in posted.items()
        if now.strip() != before.strip()
    }
    if not changes:
        return redirect_with_flash(
            request, back, f"Booking #{booking_id}: nothing changed.", "info"
        )
    try:
        edit = parse_form(BookingEdit, changes)
        async with all_or_nothing(session):
            await users.update_booking(session, booking_id, edit)
    except CoursedeskError as exc:
        form = EditForm(
            {field: now for field, (now, _) in posted.items()},
            {field: before for field, (_, before) in posted.items()},
            str(exc),
        )
        refusal = Refusal(f"Booking #{booking_id} was not saved: {exc}", form, booking_id)
        return await render_student_page(request, principal, session, user_id, refusal)
    return redirect_with_flash(request, back, f"Booking #{booking_id} saved.")
