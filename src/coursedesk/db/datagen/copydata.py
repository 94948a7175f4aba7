"""Raw generated rows as PostgreSQL binary COPY data.

Binary COPY spares the server parsing text (timestamps above all), which is most of
its work in a load, and it is also the cheaper format to produce here: a row is one
struct.pack of its fixed-width fields plus field encodings looked up once per word.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import chain, repeat
from operator import add, mul, sub

from coursedesk.db.datagen.plan import (
    DAY,
    EventColumns,
    RawBooking,
    RawChunk,
    RawEvent,
    RawRegistration,
)

# Timestamps and dates count from 2000-01-01 in PostgreSQL's binary format.
_PG_EPOCH_SECONDS = 946_684_800
_PG_EPOCH_DAY = _PG_EPOCH_SECONDS // DAY
_MICROSECONDS = 1_000_000
# A COPY's data is the header, any number of row bodies, then the trailer.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
_NULL = struct.pack(">i", -1)
_LENGTH = struct.Struct(">i").pack

# A row is its field count, then each field as its byte length (-1: NULL) and bytes.
# The fixed-width fields lead (the COPY column lists below follow this order), so one
# pack writes them all.
_EVENT_OF_USER = struct.Struct(">hiqiqiq").pack
_ANONYMOUS_EVENT = struct.Struct(">hiqiiq").pack
_BOOKING = struct.Struct(">hiiiqiiihiq").pack
_REGISTRATION = struct.Struct(">hiiiqiqibii").pack

EVENT_COLUMNS = "id, user_id, created_at, event_type, details"
BOOKING_COLUMNS = (
    "id, user_id, course_id, confirmed, created_at, "
    "username, first_name, course_stream, referral_code, discount_percent"
)
REGISTRATION_COLUMNS = (
    "id, user_id, registered_at, notification_sent, lesson_date, "
    "username, first_name, email, lesson_type"
)


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _LENGTH(len(data)) + data


class _TextFields(dict[str | None, bytes]):
    """Encoded text fields of the vocabulary, each encoded the first time it is met."""

    def __missing__(self, value: str | None) -> bytes:
        field = self[value] = _text(value)
        return field


class _JsonbFields(dict[str | None, bytes]):
    """Encoded jsonb fields: format version 1, then the JSON text."""

    def __missing__(self, value: str | None) -> bytes:
        field = _NULL
        if value is not None:
            data = b"\x01" + value.encode()
            field = _LENGTH(len(data)) + data
        self[value] = field
        return field


def numeric_binary(value: str) -> bytes:
    """A non-negative decimal like "12.50" in PostgreSQL's binary numeric format.

    The format is base-10000 digits around the decimal point: (digit count, weight of
    the first digit, sign, display scale) then the digits, zero groups at either end
    left out. Written here rather than borrowed from psycopg, whose import would be
    most of the generator process's start-up time.
    """
    whole, _, fraction = value.partition(".")
    whole = whole.lstrip("0")
    whole = "0" * (-len(whole) % 4) + whole
    padded_fraction = fraction + "0" * (-len(fraction) % 4)
    groups = [int(whole[i : i + 4]) for i in range(0, len(whole), 4)]
    weight = len(groups) - 1
    groups += [int(padded_fraction[i : i + 4]) for i in range(0, len(padded_fraction), 4)]
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(f">hhhh{len(groups)}h", len(groups), weight, 0, len(fraction), *groups)


class _NumericFields(dict[str | None, bytes]):
    """Encoded numeric fields."""

    def __missing__(self, value: str | None) -> bytes:
        field = _NULL
        if value is not None:
            data = numeric_binary(value)
            field = _LENGTH(len(data)) + data
        self[value] = field
        return field


@dataclass(frozen=True)
class TableData:
    """Rows of one table as binary COPY rows (no header or trailer: COPY_HEADER and
    COPY_TRAILER go around the rows of any number of batches)."""

    table: str
    columns: str
    rows: int
    body: bytes


@dataclass(frozen=True)
class CopyBatch:
    """One chunk of users as COPY data for each source table it has rows for."""

    users: int
    tables: tuple[TableData, ...]

    @property
    def rows(self) -> int:
        return sum(part.rows for part in self.tables)


class CopyFormatter:
    """Turns chunks into COPY data, numbering rows on from the given first ids."""

    def __init__(self, first_ids: dict[str, int]) -> None:
        self.next_ids = dict(first_ids)
        self._words = _TextFields()
        self._details = _JsonbFields()
        self._discounts = _NumericFields()

    def batch(self, chunk: RawChunk) -> CopyBatch:
        tables = (
            TableData(
                "bookings", BOOKING_COLUMNS, len(chunk.bookings), self._bookings(chunk.bookings)
            ),
            TableData(
                "events",
                EVENT_COLUMNS,
                chunk.event_count,
                self._events(chunk.events, chunk.anonymous_events),
            ),
            TableData(
                "free_lesson_registrations",
                REGISTRATION_COLUMNS,
                len(chunk.registrations),
                self._registrations(chunk.registrations),
            ),
        )
        return CopyBatch(users=chunk.users, tables=tuple(part for part in tables if part.rows))

    def _take_ids(self, table: str, count: int) -> int:
        first = self.next_ids[table]
        self.next_ids[table] = first + count
        return first

    def _events(self, events: EventColumns, anonymous: list[RawEvent]) -> bytes:
        """Events of users through map() pipelines, which run in C; the few without a
        user row by row."""
        count = len(events)
        first_id = self._take_ids("events", count + len(anonymous))
        tails = [
            self._words[event_type] + self._details[details]
            for event_type, details in events.kind_table
        ]
        created = map(mul, map(sub, events.times, repeat(_PG_EPOCH_SECONDS)), repeat(_MICROSECONDS))
        heads = map(
            _EVENT_OF_USER,
            repeat(5, count),
            repeat(8),
            range(first_id, first_id + count),
            repeat(8),
            events.user_ids,
            repeat(8),
            created,
        )
        rows = map(add, heads, map(tails.__getitem__, events.kinds))
        anonymous_rows = (
            _ANONYMOUS_EVENT(5, 8, row_id, -1, 8, (ts - _PG_EPOCH_SECONDS) * _MICROSECONDS)
            + self._words[event_type]
            + self._details[details]
            for row_id, (_, event_type, ts, details) in enumerate(anonymous, first_id + count)
        )
        return b"".join(chain(rows, anonymous_rows))

    def _bookings(self, rows: list[RawBooking]) -> bytes:
        words, discounts = self._words, self._discounts
        out: list[bytes] = []
        append = out.append
        for row_id, (
            user_id,
            username,
            first_name,
            course_id,
            stream,
            confirmed,
            ts,
            code,
            discount,
        ) in enumerate(rows, self._take_ids("bookings", len(rows))):
            created = (ts - _PG_EPOCH_SECONDS) * _MICROSECONDS
            append(
                _BOOKING(10, 4, row_id, 8, user_id, 4, course_id, 2, confirmed, 8, created)
                + _text(username)
                + words[first_name]
                + words[stream]
                + words[code]
                + discounts[discount]
            )
        return b"".join(out)

    def _registrations(self, rows: list[RawRegistration]) -> bytes:
        words = self._words
        out: list[bytes] = []
        append = out.append
        for row_id, (
            user_id,
            username,
            first_name,
            email,
            ts,
            notified,
            lesson_type,
            lesson_day,
        ) in enumerate(rows, self._take_ids("free_lesson_registrations", len(rows))):
            registered = (ts - _PG_EPOCH_SECONDS) * _MICROSECONDS
            append(
                _REGISTRATION(
                    9,
                    4,
                    row_id,
                    8,
                    user_id,
                    8,
                    registered,
                    1,
                    notified,
                    4,
                    lesson_day - _PG_EPOCH_DAY,
                )
                + _text(username)
                + words[first_name]
                + _text(email)
                + words[lesson_type]
            )
        return b"".join(out)
