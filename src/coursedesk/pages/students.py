"""The student list and one student's page: profile, bookings, lessons, events, messages."""

from __future__ import annotations

from collections.abc import Mapping
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
from coursedesk.users import service as users
from coursedesk.users.models import USER_STATUSES
from coursedesk.users.router import SEARCH_MAX
from coursedesk.users.schemas import STREAM_MAX, UserStatus
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
    """Every stream a booking names, for the filters and the stream pickers."""
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
    """An edit form on a student's page: what it shows, what it was opened with, and why
    the server refused it, when it did."""

    values: Mapping[str, str]
    was: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A refused edit: the message for the top of the page, and the form as it was sent
    (the stream form, or the form of booking `booking_id`)."""

    message: str
    form: EditForm
    booking_id: int | None = None


def booking_fields(booking: BookingRow) -> dict[str, str]:
    """A booking's editable fields as its form holds them."""
    discount = booking.discount_percent
    return {
        "confirmed": str(booking.confirmed),
        "course_stream": booking.course_stream or "",
        "referral_code": booking.referral_code or "",
        "discount_percent": "" if discount is None else str(discount),
    }


async def render_student_page(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    user_id: int,
    refusal: Refusal | None = None,
) -> HTMLResponse:
    """One student's page; after a refused edit, with that form as it was sent (400)."""
    student = await users.get_user(session, user_id)
    bookings = await users.user_bookings(session, user_id)
    booking_forms = {}
    for booking in bookings:
        fields = booking_fields(booking)
        booking_forms[booking.id] = EditForm(fields, was=fields)
    stream_form = EditForm({"course_stream": student.course_stream or ""})
    context: dict[str, Any] = {
        "student": student,
        "bookings": bookings,
        "free_lessons": await users.user_free_lessons(session, user_id),
        "events": await users.user_events(session, user_id, TIMELINE_EVENTS),
        "messages": await received_messages(session, user_id, MESSAGES_SHOWN),
        "streams": await stream_names(session),
        "booking_states": BOOKING_STATES,
        "timeline_limit": TIMELINE_EVENTS,
    }
    if refusal is not None:
        context["flash"] = Flash("error", refusal.message)
        if refusal.booking_id is None:
            stream_form = refusal.form
        else:
            booking_forms[refusal.booking_id] = refusal.form
    context |= {"booking_forms": booking_forms, "stream_form": stream_form}
    return render_page(
        request,
        principal,
        "users/detail.html",
        context,
        section="users",
        status_code=200 if refusal is None else 400,
    )


# The primary, not the replica: after an edit this page must show it at once.
@router.get("/users/{user_id}")
async def student_page(
    request: Request, principal: PageViewer, session: Session, user_id: UserId
) -> HTMLResponse:
    return await render_student_page(request, principal, session, user_id)
