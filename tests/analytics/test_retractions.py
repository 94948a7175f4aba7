"""A row the bot updates or deletes after it was folded: the fold subtracts its old
version, and recomputes the user from the source tables where that version may have
decided a value that does not add up (first or last seen, name, stream). Each case says
which of the two the fold did, and ends with the user's summary as the source rows say
it and every summary as a rebuild would make it, with each capture."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from analytics_data import BotWriter, assert_summaries_match_a_rebuild, at
from sqlalchemy import Engine, text

from coursedesk.db.datagen.rows import booking_row, event_row, free_lesson_row

USER = 7
OTHER = 8

# (what the bot does, whether USER is recomputed from the source tables, the statement,
# what changes in USER's summary, in OTHER's); OTHER only ever gains a row.
CASES: list[tuple[str, bool, str, dict[str, Any], dict[str, Any]]] = [
    (
        "confirm the latest booking",
        False,
        "UPDATE bookings SET confirmed = 2 WHERE course_stream = 'B'",
        {"confirmed_bookings": 1, "pending_bookings": 1},
        {},
    ),
    (
        "cancel the latest booking: the stream is the earlier one's",
        True,
        "UPDATE bookings SET confirmed = -1 WHERE course_stream = 'B'",
        {"pending_bookings": 1, "course_stream": "A"},
        {},
    ),
    (
        "rename in the booking the name came from",
        True,
        "UPDATE bookings SET username = 'newer' WHERE course_stream = 'B'",
        {"username": "newer"},
        {},
    ),
    (
        "rename in an older booking: the newer name stays",
        False,
        "UPDATE bookings SET username = 'older' WHERE course_stream = 'A'",
        {},
        {},
    ),
    (
        "delete the registration the first name came from",
        True,
        "DELETE FROM free_lesson_registrations",
        {"first_name": "Anna", "free_lessons_count": 0},
        {},
    ),
    (
        "delete the first event: first seen moves on",
        True,
        "DELETE FROM events WHERE created_at = '2024-03-10 09:00+00'",
        {"first_seen": at("2024-03-10 10:00"), "events_count": 1},
        {},
    ),
    (
        "move the last event earlier: last seen moves back",
        True,
        "UPDATE events SET created_at = '2024-03-10 11:30+00'"
        " WHERE created_at > '2024-03-10 12:00+00'",
        {"last_seen": at("2024-03-10 12:00")},
        {},
    ),
    (
        "move the latest booking to another user",
        True,
        f"UPDATE bookings SET user_id = {OTHER} WHERE course_stream = 'B'",
        {"username": "reg", "course_stream": "A", "bookings_count": 1, "pending_bookings": 1},
        {
            "username": "new",
            "first_name": "Anna",
            "course_stream": "B",
            "last_seen": at("2024-03-10 12:00"),
            "bookings_count": 2,
            "pending_bookings": 2,
        },
    ),
    (
        "delete an older booking",
        False,
        "DELETE FROM bookings WHERE course_stream = 'A'",
        {"bookings_count": 1, "pending_bookings": 1},
        {},
    ),
]

BEFORE = {
    USER: {
        "username": "new",
        "first_name": "Rita",
        "first_seen": at("2024-03-10 09:00"),
        "last_seen": at("2024-03-10 13:00"),
        "course_stream": "B",
        "bookings_count": 2,
        "confirmed_bookings": 0,
        "pending_bookings": 2,
        "events_count": 2,
        "free_lessons_count": 1,
    },
    OTHER: {
        "username": None,
        "first_name": "Anna",
        "first_seen": at("2024-03-10 10:30"),
        "last_seen": at("2024-03-10 10:30"),
        "course_stream": "C",
        "bookings_count": 1,
        "confirmed_bookings": 0,
        "pending_bookings": 1,
        "events_count": 0,
        "free_lessons_count": 0,
    },
}


def _summaries(engine: Engine) -> dict[int, dict[str, Any]]:
    columns = ", ".join(BEFORE[USER])
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT user_id, {columns} FROM user_summaries ORDER BY user_id")
        )
        return {row.user_id: {name: getattr(row, name) for name in BEFORE[USER]} for row in rows}


def _stamp(text_value: str) -> datetime:
    return at(f"2024-03-10 {text_value}")


# Added to events_count, which no other figure reads, before the bot's statement: a user
# recomputed from the source tables loses it, one the fold only subtracted from keeps it.
MARK = 1_000


@pytest.mark.parametrize(
    ("recomputed", "statement", "user_after", "other_after"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_row_changed_after_it_was_folded(
    sync_engine: Engine,
    capture: str,
    recomputed: bool,
    statement: str,
    user_after: dict[str, Any],
    other_after: dict[str, Any],
) -> None:
    bot = BotWriter(sync_engine)
    bot.events(
        event_row(USER, "start", created_at=_stamp("09:00")),
        event_row(USER, "button_click", created_at=_stamp("13:00")),
    )
    bot.bookings(
        booking_row(USER, course_stream="A", username="old", created_at=_stamp("10:00")),
        booking_row(OTHER, course_stream="C", created_at=_stamp("10:30")),
        booking_row(
            USER, course_stream="B", username="new", first_name=None, created_at=_stamp("12:00")
        ),
    )
    bot.registrations(
        free_lesson_row(USER, username="reg", first_name="Rita", registered_at=_stamp("11:00"))
    )
    assert _summaries(sync_engine) == BEFORE
    with sync_engine.begin() as connection:
        connection.execute(text(f"UPDATE user_summaries SET events_count = events_count + {MARK}"))

    bot.execute(statement)

    after = _summaries(sync_engine)
    marked = {user: row["events_count"] >= MARK for user, row in after.items()}
    assert marked == {USER: not recomputed, OTHER: True}
    for user in after:
        after[user]["events_count"] -= MARK if marked[user] else 0
    assert after == {USER: BEFORE[USER] | user_after, OTHER: BEFORE[OTHER] | other_after}
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                f"UPDATE user_summaries SET events_count = events_count - {MARK}"
                f" WHERE events_count >= {MARK}"
            )
        )
    assert_summaries_match_a_rebuild(sync_engine)
