"""Operators' edits on a student's page: their stream, and the fields of each booking.

A saved edit redirects back to the page; a refused one shows the page again at once, with
the form as it was sent and why it was refused, and changes nothing. A stream is picked
from the course's streams (pages/stream_picker.py); removing one asks first. Each form
carries the version of the booking it was opened on (users/versions.py): when someone
changed the booking since, nothing is saved and the page answers 409 with what is saved
now beside what was tried (pages/stale_edits.py), the form ready to save again over it.
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
from coursedesk.pages.stale_edits import stale_question
from coursedesk.pages.stream_picker import existing, picker, picker_as_sent, read_choice
from coursedesk.pages.students import (
    EditForm,
    Question,
    SentBack,
    UserId,
    booking_fields,
    latest_live,
    render_student_page,
)
from coursedesk.users import service as users
from coursedesk.users.router import BookingId
from coursedesk.users.schemas import BookingEdit, StreamMove
from coursedesk.users.streams import UnknownStream, course_label, streams_of_courses
from coursedesk.users.versions import StaleBooking
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
    version: FormText = "",
) -> Response:
    """Move the student's latest booking that is not cancelled to another stream, if it
    is still at the version the form was opened on."""
    back = f"/users/{user_id}"
    moved = latest_live(await users.user_bookings(session, user_id))
    current = moved.course_stream if moved is not None else None
    shown = picker_as_sent(await _course_streams(session, moved), stream_choice, new_stream)

    def sent_back(
        values: dict[str, str],
        version: str,
        *,
        error: str | None = None,
        message: str | None = None,
        question: Question | None = None,
        status_code: int = 400,
    ) -> SentBack:
        form = EditForm(values, {}, error, shown, version)
        return SentBack(form, None, message, question, status_code)

    try:
        choice = read_choice(stream_choice, new_stream)
        if moved is not None and current and choice.name is None and confirm_remove != "yes":
            question = _asking_to_remove(moved.id, current)
            asked = sent_back(
                {"course_stream": current}, version, question=question, status_code=200
            )
            return await render_student_page(request, principal, session, user_id, asked)
        move = parse_form(
            StreamMove, {"course_stream": choice.name, "create_stream": choice.create}
        )
        async with all_or_nothing(session):
            booking = await users.move_stream(
                session,
                user_id,
                move.course_stream,
                create_stream=move.create_stream,
                expected=[version],
            )
    except StaleBooking as exc:
        now = exc.current.booking
        question = stale_question(
            exc,
            "The stream was changed while you were choosing it",
            f"Booking #{now.id} is the one a stream change moves now. ",
        )
        stale = sent_back(
            {"course_stream": now.course_stream or ""},
            exc.current.version,
            message="The stream was not changed: someone changed it after you opened the page.",
            question=question,
            status_code=409,
        )
        return await render_student_page(request, principal, session, user_id, stale)
    except CoursedeskError as exc:
        why = _why(exc)
        refused = sent_back(
            {"course_stream": current or ""},
            version,
            error=why,
            message=f"The stream was not changed: {why}",
        )
        return await render_student_page(request, principal, session, user_id, refused)
    stream = booking.booking.course_stream
    where = f"stream {stream}" if stream else "no stream"
    return redirect_with_flash(request, back, f"Booking #{booking.booking.id} is now in {where}.")


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
    version: FormText = "",
) -> Response:
    """Save the fields the operator changed (the form also sends what they were), if the
    booking is still at the version the form was opened on. A form without the stream
    picker leaves the stream as it was."""
    back = f"/users/{user_id}"
    posted = {
        "confirmed": (confirmed, was_confirmed),
        "referral_code": (referral_code, was_referral_code),
        "discount_percent": (discount_percent, was_discount_percent),
    }
    booking = _booking(await users.user_bookings(session, user_id), booking_id)
    streams = await _course_streams(session, booking)
    shown = picker_as_sent(streams, stream_choice or existing(was_course_stream), new_stream)

    def as_sent(error: str | None = None) -> EditForm:
        typed = {field: now for field, (now, _) in posted.items()}
        was = {field: before for field, (_, before) in posted.items()}
        stream = {"course_stream": was_course_stream}
        return EditForm(typed | stream, was | stream, error, shown, version)

    def made_again(exc: StaleBooking) -> EditForm:
        """The form on the booking as it is now, with this edit's changes made to it."""
        now = booking_fields(exc.current.booking)
        typed = {field: posted[field][0] for field in exc.attempted if field in posted}
        chooser = shown
        if "course_stream" not in exc.attempted:
            chooser = picker(streams, exc.current.booking.course_stream)
        return EditForm(now | typed, now, None, chooser, exc.current.version)

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
                question = _asking_to_remove(booking_id, was_course_stream)
                asked = SentBack(as_sent(), booking_id, question=question, status_code=200)
                return await render_student_page(request, principal, session, user_id, asked)
        if not changes:
            return redirect_with_flash(
                request, back, f"Booking #{booking_id}: nothing changed.", "info"
            )
        edit = parse_form(BookingEdit, changes)
        async with all_or_nothing(session):
            await users.update_booking(session, booking_id, edit, expected=[version])
    except StaleBooking as exc:
        question = stale_question(
            exc,
            f"Booking #{booking_id} was changed while you were editing it",
        )
        stale = SentBack(
            made_again(exc),
            booking_id,
            f"Booking #{booking_id} was not saved: someone changed it after you opened it.",
            question,
            409,
        )
        return await render_student_page(request, principal, session, user_id, stale)
    except CoursedeskError as exc:
        why = _why(exc)
        message = f"Booking #{booking_id} was not saved: {why}"
        refused = SentBack(as_sent(why), booking_id, message)
        return await render_student_page(request, principal, session, user_id, refused)
    return redirect_with_flash(request, back, f"Booking #{booking_id} saved.")
