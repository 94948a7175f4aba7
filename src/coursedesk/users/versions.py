"""A booking's version, so that an edit made on what someone read cannot silently undo a
change made since.

The version is `<id>.<xmin>`: PostgreSQL's xmin system column of the booking's row, the
transaction that wrote the row as it is now. Every update, the bot's or staff's, writes a
new row version with a new xmin, so nothing is added to the bot's table and nothing it
does has to keep a version up to date. Taking the id in makes a version of one booking
never pass for another's. The API gives it as the ETag of a booking's answers and takes
it back in If-Match; the student's page keeps it in a hidden field of each form.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, cast, literal_column, select

from coursedesk.analytics import rows
from coursedesk.analytics.schemas import BookingRow
from coursedesk.errors import Conflict
from coursedesk.sources.models import Booking

Versions = Collection[str]


def row_version() -> ColumnElement[str]:
    """The xmin of the `bookings` row in the statement, as text."""
    return cast(literal_column("bookings.xmin"), Text)


@dataclass(frozen=True)
class VersionedBooking:
    booking: BookingRow
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def versioned_rows(*conditions: ColumnElement[bool]) -> Select[Any]:
    """analytics.rows.booking_rows with each row's version, read in the same statement, so
    the version is the one of the values shown."""
    listed = rows.booking_rows(*conditions).subquery()
    return (
        select(listed, row_version().label("xmin"))
        .join(Booking, Booking.id == listed.c.id)
        .order_by(listed.c.created_at.desc(), listed.c.id.desc())
    )


def versioned(row: Any) -> VersionedBooking:
    booking = BookingRow.model_validate(row)
    return VersionedBooking(booking, f"{booking.id}.{row.xmin}")


def xmins_for(booking_id: int, expected: Versions) -> list[str]:
    """The xmins among `expected` versions that name booking `booking_id`."""
    prefix = f"{booking_id}."
    return [version.removeprefix(prefix) for version in expected if version.startswith(prefix)]


def accepted_versions(if_match: str | None) -> Versions | None:
    """The versions an If-Match header accepts; None when any is (no header, or `*`).
    A weak tag (W/"…") matches nothing: If-Match compares strongly (RFC 9110 13.1.1)."""
    if if_match is None or if_match.strip() == "*":
        return None
    tags = (tag.strip() for tag in if_match.split(","))
    return [tag.strip('"') for tag in tags if tag and not tag.startswith("W/")]


def _json(value: object) -> object:
    return float(value) if isinstance(value, Decimal) else value


class StaleBooking(Conflict):
    """The edit was made on a version of the booking that is no longer the current one:
    nothing was saved. Carries the booking as it is now and the values tried."""

    def __init__(self, current: VersionedBooking, attempted: Mapping[str, object]) -> None:
        super().__init__(
            f"booking {current.booking.id} was changed after the version this edit was made "
            "on; nothing was saved. `current` is the booking now (its version is the ETag), "
            "`attempted` what this edit tried"
        )
        self.current = current
        self.attempted = dict(attempted)
        self.details = {
            "current": current.booking.model_dump(mode="json"),
            "attempted": {name: _json(value) for name, value in attempted.items()},
        }
