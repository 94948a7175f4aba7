"""What to generate, and the raw rows a chunk of simulated users comes out as.

Rows are plain tuples and lists with times in epoch seconds (UTC), because the seeder
turns millions of them into COPY data and anything heavier costs seconds. Events, the
bulk of the rows, are kept as columns: the user, the time and a small number naming
(event_type, details) in the chunk's table of kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from coursedesk.errors import InvalidInput

DAY = 86_400
HISTORY_DAYS = 180
_UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

RawBooking = tuple[int, str | None, str | None, int, str | None, int, int, str | None, str | None]
"""user_id, username, first_name, course_id, course_stream, confirmed, created_at (epoch s),
referral_code, discount_percent (as text)."""
RawEvent = tuple[int | None, str, int, str | None]
"""user_id, event_type, created_at (epoch s), details (JSON text)."""
RawRegistration = tuple[int, str | None, str | None, str | None, int, bool, str, int]
"""user_id, username, first_name, email, registered_at (epoch s), notification_sent,
lesson_type, lesson_date (days since 1970-01-01)."""
EventKind = tuple[str, str | None]
"""event_type, details (JSON text)."""


def day_text(day: int) -> str:
    """A day number (days since 1970-01-01) as YYYY-MM-DD."""
    return date.fromordinal(day + _UNIX_EPOCH_ORDINAL).isoformat()


@dataclass(frozen=True)
class GenerationPlan:
    """What to generate: `users` users of seed `seed`, their history ending at `anchor`."""

    users: int
    seed: int
    anchor: datetime

    def __post_init__(self) -> None:
        if self.users < 0:
            raise InvalidInput("the number of users cannot be negative")
        if self.anchor.tzinfo is None:
            raise InvalidInput("the anchor time needs a time zone")

    @property
    def end_ts(self) -> int:
        return int(self.anchor.timestamp())

    @property
    def start_ts(self) -> int:
        return self.end_ts - HISTORY_DAYS * DAY


@dataclass
class EventColumns:
    """Events of known users, column by column; kinds index `kind_table`."""

    user_ids: list[int] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    kind_table: list[EventKind] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class RawChunk:
    """The rows of one chunk of users."""

    users: int = 0
    bookings: list[RawBooking] = field(default_factory=list)
    registrations: list[RawRegistration] = field(default_factory=list)
    events: EventColumns = field(default_factory=EventColumns)
    anonymous_events: list[RawEvent] = field(default_factory=list)
    """Events with no user (user_id NULL), loaded after the chunk's other events."""

    @property
    def event_count(self) -> int:
        return len(self.events) + len(self.anonymous_events)

    @property
    def rows(self) -> int:
        return len(self.bookings) + len(self.registrations) + self.event_count

    def event_rows(self) -> Iterator[RawEvent]:
        """Every event of the chunk as a tuple, in load order (for small data sets)."""
        table = self.events.kind_table
        for user_id, ts, kind in zip(
            self.events.user_ids, self.events.times, self.events.kinds, strict=True
        ):
            event_type, details = table[kind]
            yield user_id, event_type, ts, details
        yield from self.anonymous_events
