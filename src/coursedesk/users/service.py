"""The student list and 360° view, and the edits operators make to bookings.

Edits go through the source tables: the change capture puts them in the change log,
which is folded right after the request commits (so the user's status and stream show
the edit at once), and the audit trigger records the actor of the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.analytics import rows
from coursedesk.analytics.folding import fold_after_commit
from coursedesk.analytics.schemas import BookingRow, EventRow, FreeLessonRow
from coursedesk.db.engine import Database
from coursedesk.errors import Conflict, CoursedeskError, NotFound
from coursedesk.sources.models import BOOKING_CANCELLED, Booking, Event, FreeLessonRegistration
from coursedesk.users import queries, streams, versions
from coursedesk.users.models import UserSummary
from coursedesk.users.schemas import BookingEdit, UserBrief, UserOut, UserPage


def changed(session: AsyncSession) -> None:
    """Every write of this module ends here: once the transaction commits, the change is
    folded into the summaries and figures kept outside the database (a cache) learn of it."""
    fold_after_commit(session)


async def _plan_for_the_search_text(session: AsyncSession) -> None:
    """A search is as selective as its text (a rare pair of letters or half the users),
    so each query of this transaction is planned for its own values: a plan cached for
    any text would walk the whole first_seen index for a rare one."""
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def _first_page(session: AsyncSession, page: queries.PageQuery) -> list[Any]:
    recent = page.recent()
    if recent is not None:
        rows = list(await session.execute(recent))
        if len(rows) == page.limit:
            return rows
    return list(await session.execute(page.everywhere()))


async def list_users(
    session: AsyncSession,
    *,
    search: str | None,
    stream: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> UserPage:
    matching = queries.UserFilter(search=search, stream=stream, status=status)
    if matching.searching:
        await _plan_for_the_search_text(session)
    rows = await _first_page(session, queries.user_page(matching, limit, offset))
    total = await session.scalar(queries.user_total(matching))
    return UserPage(items=[UserOut.model_validate(row) for row in rows], total=total or 0)


async def export_users(
    database: Database, *, search: str | None, stream: str | None, status: str | None
) -> AsyncIterator[list[object]]:
    """Every matching user as the values of a CSV row, streamed from a server-side cursor
    on a read session of its own, which lasts as long as the download does."""
    matching = queries.UserFilter(search=search, stream=stream, status=status)
    async with database.read_sessions() as session:
        if matching.searching:
            await _plan_for_the_search_text(session)
        result = await session.stream(queries.user_rows(matching))
        async for row in result:
            yield list(UserOut.model_validate(row).model_dump(mode="json").values())


async def search_users(session: AsyncSession, query: str, limit: int) -> list[UserBrief]:
    await _plan_for_the_search_text(session)
    rows = await _first_page(session, queries.brief_page(query, limit))
    return [UserBrief.model_validate(row) for row in rows]


async def get_user(session: AsyncSession, user_id: int) -> UserOut:
    row = (await session.execute(queries.user_by_id(user_id))).one_or_none()
    if row is None:
        raise NotFound(f"no user {user_id}")
    return UserOut.model_validate(row)


async def _require_user(session: AsyncSession, user_id: int) -> None:
    known = await session.scalar(select(UserSummary.user_id).where(UserSummary.user_id == user_id))
    if known is None:
        raise NotFound(f"no user {user_id}")


async def user_bookings(session: AsyncSession, user_id: int) -> list[BookingRow]:
    await _require_user(session, user_id)
    result = await session.execute(rows.booking_rows(Booking.user_id == user_id))
    return [BookingRow.model_validate(row) for row in result]


async def user_events(session: AsyncSession, user_id: int, limit: int) -> list[EventRow]:
    await _require_user(session, user_id)
    result = await session.execute(rows.event_rows(Event.user_id == user_id, limit=limit))
    return [EventRow.model_validate(row) for row in result]


async def user_free_lessons(session: AsyncSession, user_id: int) -> list[FreeLessonRow]:
    await _require_user(session, user_id)
    result = await session.execute(rows.free_lesson_rows(FreeLessonRegistration.user_id == user_id))
    return [FreeLessonRow.model_validate(row) for row in result]


async def user_bookings_versioned(
    session: AsyncSession, user_id: int
) -> list[versions.VersionedBooking]:
    """A student's bookings, newest first, each with its version (users/versions.py)."""
    await _require_user(session, user_id)
    result = await session.execute(versions.versioned_rows(Booking.user_id == user_id))
    return [versions.versioned(row) for row in result]


async def _current(session: AsyncSession, booking_id: int) -> versions.VersionedBooking | None:
    row = (await session.execute(versions.versioned_rows(Booking.id == booking_id))).one_or_none()
    return None if row is None else versions.versioned(row)


async def get_booking(session: AsyncSession, booking_id: int) -> versions.VersionedBooking:
    found = await _current(session, booking_id)
    if found is None:
        raise NotFound(f"no booking {booking_id}")
    return found


async def _stale(
    session: AsyncSession, booking_id: int, attempted: dict[str, object]
) -> CoursedeskError:
    """Why an edit conditional on a version wrote nothing: the booking is gone, or it has
    another version now."""
    current = await _current(session, booking_id)
    if current is None:
        return NotFound(f"no booking {booking_id}")
    return versions.StaleBooking(current, attempted)


async def move_stream(
    session: AsyncSession,
    user_id: int,
    stream: str | None,
    *,
    create_stream: bool = False,
    expected: versions.Versions | None = None,
) -> versions.VersionedBooking:
    """Puts the user's latest non-cancelled booking (created_at, then id) in `stream`, one
    of its course's streams unless `create_stream` (see users/streams.py). With
    `expected`, only if that booking is at one of those versions (users/versions.py)."""
    await _require_user(session, user_id)
    latest = (
        await session.execute(
            select(Booking.id, Booking.course_id, versions.row_version().label("xmin"))
            .where(Booking.user_id == user_id, Booking.confirmed != BOOKING_CANCELLED)
            .order_by(Booking.created_at.desc(), Booking.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).one_or_none()
    if latest is None:
        raise Conflict(f"user {user_id} has no booking that is not cancelled")
    # The row is locked: the version read is the one the update replaces.
    if expected is not None and latest.xmin not in versions.xmins_for(latest.id, expected):
        raise await _stale(session, latest.id, {"course_stream": stream})
    if stream is not None:
        stream = await streams.stream_to_store(
            session, latest.course_id, stream, create=create_stream
        )
    await session.execute(
        update(Booking).where(Booking.id == latest.id).values(course_stream=stream)
    )
    changed(session)
    return await get_booking(session, latest.id)


async def update_booking(
    session: AsyncSession,
    booking_id: int,
    edit: BookingEdit,
    *,
    expected: versions.Versions | None = None,
) -> versions.VersionedBooking:
    """Sets the fields `edit` gives; a stream must be one of the booking's course's, unless
    the edit asks for a new one (see users/streams.py). With `expected`, only if the
    booking is at one of those versions (users/versions.py)."""
    values = edit.changes()
    known = (
        await session.execute(
            select(Booking.course_id, versions.row_version().label("xmin")).where(
                Booking.id == booking_id
            )
        )
    ).one_or_none()
    if known is None:
        raise NotFound(f"no booking {booking_id}")
    xmins = None if expected is None else versions.xmins_for(booking_id, expected)
    if xmins is not None and known.xmin not in xmins:
        raise await _stale(session, booking_id, values)
    if edit.course_stream is not None:
        values["course_stream"] = await streams.stream_to_store(
            session, known.course_id, edit.course_stream, create=edit.create_stream
        )
    writing = update(Booking).where(Booking.id == booking_id)
    if xmins is not None:
        # Checked again as the row is written: an update committed since the read above
        # (by the bot or by staff) leaves this one nothing to write.
        writing = writing.where(versions.row_version().in_(xmins))
    updated = await session.scalar(writing.values(values).returning(Booking.id))
    if updated is None:
        raise await _stale(session, booking_id, values)
    changed(session)
    return await get_booking(session, booking_id)
