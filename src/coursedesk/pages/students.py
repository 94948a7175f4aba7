"""The student list and one student's page: profile, bookings, lessons, events, messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.service import Principal
from coursedesk.analytics import service as analytics
from coursedesk.analytics.schemas import BookingRow
from coursedesk.broadcasts.models import MessageHistory, MessageRecipient
from coursedesk.db.base import BIGINT_MAX, BIGINT_MIN
from coursedesk.pages.flash import Flash
from coursedesk.pages.paging import PageNumber, pages_of
from coursedesk.pages.rendering import render_page
from coursedesk.pages.routes import page_router
from coursedesk.pages.stream_picker import StreamPicker, picker
from coursedesk.sources.models import BOOKING_CANCELLED
from coursedesk.users import service as users
from coursedesk.users.models import USER_STATUSES
from coursedesk.users.router import SEARCH_MAX
from coursedesk.users.schemas import STREAM_MAX, UserStatus
from coursedesk.users.streams import streams_of_courses
from coursedesk.web.deps import PageViewer, ReadSession, Session

router = page_router()

STUDENTS_PER_PAGE = 50
TIMELINE_EVENTS = 100
MESSAGES_SHOWN = 50
UserId = Annotated[int, Path(ge=BIGINT_MIN, le=BIGINT_MAX)]
BOOKING_STATES = ((2, "Confirmed"), (1, "Pending"), (-1, "Cancelled"))


@dataclass(frozen=True)
class ReceivedMessage:
    """A broadcast as one student got it."""

    message_id: int
    message_text: str
    status: str
    delivery_status: str
    error: str | None
    sent_at: datetime | None
    created_at: datetime


async def received_messages(
    session: AsyncSession, user_id: int, limit: int
) -> list[ReceivedMessage]:
    """The broadcasts addressed to a student, newest first, with how each one went."""
    result = await session.execute(
        select(
            MessageHistory.id,
            MessageHistory.message_text,
            MessageHistory.status,
            MessageRecipient.delivery_status,
            MessageRecipient.error,
            MessageRecipient.sent_at,
            MessageHistory.created_at,
        )
        .join(MessageHistory, MessageHistory.id == MessageRecipient.message_id)
        .where(MessageRecipient.user_id == user_id)
        .order_by(MessageHistory.created_at.desc(), MessageHistory.id.desc())
        .limit(limit)
    )
    return [ReceivedMessage(*row) for row in result]


async def stream_names(session: AsyncSession) -> list[str]:
    """Every stream a booking names, for the list's filter."""
    return sorted({row.course_stream for row in await analytics.stream_figures(session)})


@router.get("/users")
async def student_list(
    request: Request,
    principal: PageViewer,
    session: ReadSession,
    search: Annotated[str, Query(max_length=SEARCH_MAX)] = "",
    stream: Annotated[str, Query(max_length=STREAM_MAX)] = "",
    status: Annotated[UserStatus | Literal[""], Query()] = "",
    page: PageNumber = 1,
) -> HTMLResponse:
    listed = await users.list_users(
        session,
        search=search or None,
        stream=stream or None,
        status=status or None,
        limit=STUDENTS_PER_PAGE,
        offset=(page - 1) * STUDENTS_PER_PAGE,
    )
    filters = {"search": search, "stream": stream, "status": status}
    csv_query = urlencode({"format": "csv"} | {k: v for k, v in filters.items() if v})
    return render_page(
        request,
        principal,
        "users/list.html",
        {
            "students": listed.items,
            "pages": pages_of(request, total=listed.total, limit=STUDENTS_PER_PAGE, page=page),
            "filters": filters,
            "filtered": any(filters.values()),
            "streams": await stream_names(session),
            "statuses": USER_STATUSES,
            "csv_url": f"/api/users?{csv_query}",
        },
        section="users",
    )


@dataclass(frozen=True)
class EditForm:
    """An edit form on a student's page: what it shows, what it was opened with, its
    stream picker, and why the server refused it, when it did."""

    values: Mapping[str, str]
    was: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    picker: StreamPicker | None = None
    version: str = ""


@dataclass(frozen=True)
class Question:
    """What the page asks before it saves: shown above everything, with a button that
    sends the form again, answered (`confirm_removal`: the removal of a stream). After
    a stale edit, `compared` holds each field tried: its name, its value saved now, and
    the value tried."""

    title: str
    text: str
    send: str
    keep: str
    confirm_removal: bool = False
    compared: Sequence[tuple[str, str, str]] = ()


@dataclass(frozen=True)
class SentBack:
    """An edit form shown again instead of saved: the stream form, or the form of booking
    `booking_id`, as it was sent; refused (`message` says why at the top of the page), or
    with a `question` to answer first."""

    form: EditForm
    booking_id: int | None = None
    message: str | None = None
    question: Question | None = None
    status_code: int = 400


def booking_fields(booking: BookingRow) -> dict[str, str]:
    """A booking's editable fields as its form holds them."""
    discount = booking.discount_percent
    return {
        "confirmed": str(booking.confirmed),
        "course_stream": booking.course_stream or "",
        "referral_code": booking.referral_code or "",
        "discount_percent": "" if discount is None else str(discount),
    }


def latest_live(bookings: Sequence[BookingRow]) -> BookingRow | None:
    """The booking a stream change moves: the latest that is not cancelled (the list is
    newest first, as users.move_stream orders them)."""
    return next((b for b in bookings if b.confirmed != BOOKING_CANCELLED), None)


async def render_student_page(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    user_id: int,
    sent_back: SentBack | None = None,
) -> HTMLResponse:
    """One student's page; after a form was sent back, with that form as it was sent."""
    student = await users.get_user(session, user_id)
    versioned = await users.user_bookings_versioned(session, user_id)
    bookings = [found.booking for found in versioned]
    versions = {found.booking.id: found.version for found in versioned}
    moved = latest_live(bookings)
    course_streams = await streams_of_courses(session, {booking.course_id for booking in bookings})
    booking_forms = {}
    for booking in bookings:
        fields = booking_fields(booking)
        chooser = picker(course_streams[booking.course_id], booking.course_stream)
        booking_forms[booking.id] = EditForm(fields, fields, None, chooser, versions[booking.id])
    stream_form = None
    if moved is not None:
        chooser = picker(course_streams[moved.course_id], moved.course_stream)
        current = {"course_stream": moved.course_stream or ""}
        stream_form = EditForm(current, picker=chooser, version=versions[moved.id])
    context: dict[str, Any] = {
        "student": student,
        "bookings": bookings,
        "moved_booking": moved,
        "free_lessons": await users.user_free_lessons(session, user_id),
        "events": await users.user_events(session, user_id, TIMELINE_EVENTS),
        "messages": await received_messages(session, user_id, MESSAGES_SHOWN),
        "booking_states": BOOKING_STATES,
        "timeline_limit": TIMELINE_EVENTS,
        "sent_back": sent_back,
    }
    if sent_back is not None:
        if sent_back.message is not None:
            context["flash"] = Flash("error", sent_back.message)
        if sent_back.booking_id is None:
            stream_form = sent_back.form
        else:
            booking_forms[sent_back.booking_id] = sent_back.form
    context |= {"booking_forms": booking_forms, "stream_form": stream_form}
    return render_page(
        request,
        principal,
        "users/detail.html",
        context,
        section="users",
        status_code=200 if sent_back is None else sent_back.status_code,
    )


# The primary, not the replica: after an edit this page must show it at once.
@router.get("/users/{user_id}")
async def student_page(
    request: Request, principal: PageViewer, session: Session, user_id: UserId
) -> HTMLResponse:
    return await render_student_page(request, principal, session, user_id)
