"""The streams of a course, and which name a booking of that course may be moved to.

A stream belongs to a course and exists while a booking of the course names it. Staff
choose among those; a name no booking of the course has is a new stream, made only when
asked for (`create`). Names are trimmed, and compared with the existing ones trimmed: one
that differs from an existing stream only in case ("py-22" beside "PY-22") is refused,
naming the existing one, even when a new stream was asked for, since it would split one
stream in two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from coursedesk.analytics.models import StreamFigures
from coursedesk.errors import InvalidInput
from coursedesk.sources.models import Booking

# How many of a course's streams an error message names (its answer lists them all).
_NAMED_IN_MESSAGE = 12


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts PY-9 before PY-10, whatever the case."""
    parts = re.split(r"(\d+)", name.strip().casefold())
    return tuple((1, int(part)) if part.isdigit() else (0, part) for part in parts)


def course_label(course_id: int | None) -> str:
    return "bookings without a course" if course_id is None else f"course {course_id}"


def _of_course(
    column: InstrumentedAttribute[int | None], course_id: int | None
) -> ColumnElement[bool]:
    return column.is_(None) if course_id is None else column == course_id


class UnknownStream(InvalidInput):
    """The course has no stream of that name, and no new one was asked for."""

    def __init__(self, course_id: int | None, name: str, streams: Sequence[str]) -> None:
        named = ", ".join(streams[:_NAMED_IN_MESSAGE]) or "none"
        if len(streams) > _NAMED_IN_MESSAGE:
            named += ", …"
        super().__init__(
            f"{course_label(course_id)} {'have' if course_id is None else 'has'} no stream "
            f'"{name}" (streams: {named}); send create_stream: true to create it'
        )
        self.course_id = course_id
        self.name = name
        self.details = {"streams": list(streams)}


class StreamSpelledOtherwise(InvalidInput):
    """The course has the stream, written in another case."""

    def __init__(self, course_id: int | None, name: str, existing: str) -> None:
        super().__init__(
            f"{course_label(course_id)} already {'have' if course_id is None else 'has'} "
            f'stream "{existing}", which "{name}" differs from only in case or spacing: '
            f'choose "{existing}"'
        )
        self.existing = existing
        self.details = {"existing_stream": existing}


async def streams_of_courses(
    session: AsyncSession, course_ids: Iterable[int | None]
) -> dict[int | None, list[str]]:
    """Each course's streams, in natural order, from the stream figures (a row per course
    and stream, kept by the folder, so a stream the bot names shows within a second)."""
    wanted = set(course_ids)
    found: dict[int | None, list[str]] = {course_id: [] for course_id in wanted}
    if not wanted:
        return found
    numbered = [course_id for course_id in wanted if course_id is not None]
    courses = [StreamFigures.course_id.in_(numbered)] if numbered else []
    if None in wanted:
        courses.append(StreamFigures.course_id.is_(None))
    rows = await session.execute(
        select(StreamFigures.course_id, StreamFigures.course_stream).where(
            or_(*courses), StreamFigures.total_bookings > 0
        )
    )
    for course_id, stream in rows:
        found[course_id].append(stream)
    return {course_id: sorted(names, key=_natural) for course_id, names in found.items()}


async def stream_to_store(
    session: AsyncSession, course_id: int | None, name: str, *, create: bool
) -> str:
    """`name` (trimmed already) if a booking of the course may go to it; otherwise an
    UnknownStream or StreamSpelledOtherwise that says why not."""
    named = await session.scalar(
        select(
            exists().where(_of_course(Booking.course_id, course_id), Booking.course_stream == name)
        )
    )
    if named:
        return name
    streams = (await streams_of_courses(session, [course_id]))[course_id]
    if any(stream.strip() == name for stream in streams):
        return name
    for stream in streams:
        if stream.strip().casefold() == name.casefold():
            raise StreamSpelledOtherwise(course_id, name, stream)
    if not create:
        raise UnknownStream(course_id, name, streams)
    return name
