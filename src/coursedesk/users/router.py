"""The users routes (the 360° student view) and the booking edits of docs/reference.md §5.6."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse

from coursedesk.analytics.export import ExportFormat, csv_response, listed
from coursedesk.analytics.schemas import BookingRow, EventRow, FreeLessonRow, Items
from coursedesk.db.base import BIGINT_MAX, BIGINT_MIN
from coursedesk.db.engine import Database
from coursedesk.users import service
from coursedesk.users.schemas import (
    BookingEdit,
    StreamMove,
    UserBrief,
    UserOut,
    UserPage,
    UserStatus,
)
from coursedesk.users.versions import StaleBooking, VersionedBooking, accepted_versions
from coursedesk.web.deps import Operator, ReadSession, Session, Viewer, get_database
from coursedesk.web.errors import error_response

router = APIRouter(prefix="/api", tags=["users"])

SEARCH_MAX = 128
OFFSET_MAX = 1_000_000
UserId = Annotated[int, Path(ge=BIGINT_MIN, le=BIGINT_MAX, description="Telegram user id")]
BookingId = Annotated[int, Path(ge=-(2**31), le=2**31 - 1)]
Format = Annotated[
    ExportFormat, Query(alias="format", description="`csv` downloads the list as CSV.")
]
Search = Annotated[
    str | None,
    Query(
        max_length=SEARCH_MAX,
        description=(
            "Case-insensitive substring of the username (a leading @ ignored) or of "
            "first_name; digits also match user_id exactly. Every character is literal."
        ),
    ),
]


@router.get(
    "/users",
    summary="Students, newest first",
    description=(
        "Ordered by first_seen descending, then user_id descending; `total` counts every "
        "match. With `format=csv` every match is exported (limit and offset do not apply)."
    ),
    response_model=UserPage,
)
async def list_users(
    _: Viewer,
    session: ReadSession,
    database: Annotated[Database, Depends(get_database)],
    search: Search = None,
    stream: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[UserStatus | Literal[""] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
    output: Format = "json",
) -> UserPage | StreamingResponse:
    if output == "csv":
        return csv_response(
            "users.csv",
            list(UserOut.model_fields),
            service.export_users(database, search=search, stream=stream, status=status or None),
        )
    return await service.list_users(
        session, search=search, stream=stream, status=status or None, limit=limit, offset=offset
    )


@router.get(
    "/users/search",
    summary="Find students by name, @username or id",
    description="Newest first_seen first. A blank q lists the newest users.",
    response_model=Items[UserBrief],
)
async def search_users(
    _: Viewer,
    session: ReadSession,
    q: Search = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Items[UserBrief]:
    return Items(items=await service.search_users(session, q or "", limit))


@router.get("/users/{user_id}", summary="One student", response_model=UserOut)
async def get_user(_: Viewer, session: ReadSession, user_id: UserId) -> UserOut:
    return await service.get_user(session, user_id)


@router.get(
    "/users/{user_id}/bookings",
    summary="A student's bookings, newest first",
    response_model=Items[BookingRow],
)
async def user_bookings(
    _: Viewer, session: ReadSession, user_id: UserId, output: Format = "json"
) -> Items[BookingRow] | StreamingResponse:
    items = await service.user_bookings(session, user_id)
    return listed(items, output, f"user-{user_id}-bookings.csv", BookingRow)


@router.get(
    "/users/{user_id}/events",
    summary="A student's events, newest first",
    response_model=Items[EventRow],
)
async def user_events(
    _: Viewer,
    session: ReadSession,
    user_id: UserId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    output: Format = "json",
) -> Items[EventRow] | StreamingResponse:
    items = await service.user_events(session, user_id, limit)
    return listed(items, output, f"user-{user_id}-events.csv", EventRow)


@router.get(
    "/users/{user_id}/free-lessons",
    summary="A student's free lesson registrations, newest first",
    response_model=Items[FreeLessonRow],
)
async def user_free_lessons(
    _: Viewer, session: ReadSession, user_id: UserId, output: Format = "json"
) -> Items[FreeLessonRow] | StreamingResponse:
    items = await service.user_free_lessons(session, user_id)
    return listed(items, output, f"user-{user_id}-free-lessons.csv", FreeLessonRow)


IfMatch = Annotated[
    str | None,
    Header(
        description=(
            "The ETag of the booking as it was read. The edit is made only if the booking "
            "is still at that version; otherwise 409. Without it, the edit is made "
            "whatever was changed since."
        ),
    ),
]
STALE: dict[int | str, dict[str, Any]] = {
    409: {
        "description": (
            "The booking changed after the version in If-Match; nothing was saved. The "
            "answer adds `current` (the booking now; its version is the ETag) and "
            "`attempted` (the values this edit tried)"
        )
    }
}


def _versioned(response: Response, found: VersionedBooking) -> BookingRow:
    response.headers["ETag"] = found.etag
    return found.booking


def _stale(exc: StaleBooking) -> JSONResponse:
    answer = error_response(409, str(exc), **exc.details)
    answer.headers["ETag"] = exc.current.etag
    return answer


# From the primary, as the edits are: a replica behind it would give a version older than
# the booking's, and every edit made on it would be refused.
@router.get(
    "/bookings/{booking_id}",
    summary="One booking",
    description="Its ETag is the version an edit sends back in If-Match.",
    response_model=BookingRow,
)
async def get_booking(
    _: Viewer, session: Session, booking_id: BookingId, response: Response
) -> BookingRow:
    return _versioned(response, await service.get_booking(session, booking_id))


@router.put(
    "/users/{user_id}/stream",
    summary="Move a student to another stream",
    description=(
        "Moves the latest non-cancelled booking (created_at, then id) to a stream of its "
        "course, or a new one with `create_stream: true`; null removes the stream. Answers "
        "the booking, with its new ETag. 409 when the student has none, or when If-Match "
        "is not that booking's current version. Audited."
    ),
    response_model=BookingRow,
    responses=STALE,
)
async def move_stream(
    _: Operator,
    session: Session,
    user_id: UserId,
    body: StreamMove,
    response: Response,
    if_match: IfMatch = None,
) -> BookingRow | JSONResponse:
    try:
        moved = await service.move_stream(
            session,
            user_id,
            body.course_stream,
            create_stream=body.create_stream,
            expected=accepted_versions(if_match),
        )
    except StaleBooking as exc:
        return _stale(exc)
    return _versioned(response, moved)


@router.patch(
    "/bookings/{booking_id}",
    summary="Edit a booking",
    description=(
        "A new stream must be one of the booking's course's, or asked for with "
        "`create_stream: true`. Answers the booking, with its new ETag. Audited."
    ),
    response_model=BookingRow,
    responses=STALE,
)
async def update_booking(
    _: Operator,
    session: Session,
    booking_id: BookingId,
    body: BookingEdit,
    response: Response,
    if_match: IfMatch = None,
) -> BookingRow | JSONResponse:
    try:
        edited = await service.update_booking(
            session, booking_id, body, expected=accepted_versions(if_match)
        )
    except StaleBooking as exc:
        return _stale(exc)
    return _versioned(response, edited)
