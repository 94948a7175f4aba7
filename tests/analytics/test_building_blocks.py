"""The small parts: named SQL files, day ranges, rounding and change announcements."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from coursedesk.analytics.changes import SourceChanges
from coursedesk.analytics.periods import cohort_window, resolve_window
from coursedesk.analytics.service import percent
from coursedesk.analytics.sql_files import _statements, parse_named_blocks
from coursedesk.db.engine import Database
from coursedesk.errors import InvalidInput

TODAY = date(2024, 3, 14)  # a Thursday


def test_named_blocks() -> None:
    source = "-- header\n-- name: first\nSELECT 1\n\n-- name: second\n-- why\nSELECT 2\n"
    assert parse_named_blocks(source) == {"first": "SELECT 1", "second": "-- why\nSELECT 2"}
    with pytest.raises(ValueError, match="twice"):
        parse_named_blocks("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")
    assert {"dashboard_stats", "daily_activity", "user_growth", "retention_cohorts"} <= set(
        _statements()
    )


@pytest.mark.parametrize(
    ("days", "first", "last", "expected"),
    [
        (None, None, None, (date(2024, 2, 14), TODAY)),
        (1, None, None, (TODAY, TODAY)),
        (366, None, None, (date(2023, 3, 15), TODAY)),
        (7, None, date(2024, 1, 3), (date(2023, 12, 28), date(2024, 1, 3))),
        (None, date(2024, 3, 1), None, (date(2024, 3, 1), TODAY)),
        (None, date(2024, 3, 1), date(2024, 3, 1), (date(2024, 3, 1), date(2024, 3, 1))),
        (None, date(2023, 3, 1), date(2024, 2, 29), (date(2023, 3, 1), date(2024, 2, 29))),
    ],
)
def test_day_ranges(
    days: int | None, first: date | None, last: date | None, expected: tuple[date, date]
) -> None:
    window = resolve_window(today=TODAY, days=days, first_day=first, last_day=last)
    assert (window.first_day, window.last_day) == expected


@pytest.mark.parametrize(
    ("days", "first", "last", "message"),
    [
        (3, date(2024, 3, 1), None, "either days or from"),
        (None, date(2024, 3, 20), None, "after"),
        (None, date(2023, 2, 28), date(2024, 2, 29), "at most 366"),
        (5, None, date(1, 1, 2), "year 1"),
    ],
)
def test_bad_day_ranges(
    days: int | None, first: date | None, last: date | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_window(today=TODAY, days=days, first_day=first, last_day=last)


def test_cohort_weeks_start_on_monday() -> None:
    window = cohort_window(today=TODAY, weeks=3)
    assert (window.first_day, window.last_day) == (date(2024, 2, 26), TODAY)


@pytest.mark.parametrize(
    ("part", "whole", "expected"),
    [(1, 3, 33.33), (2, 3, 66.67), (1, 800, 0.13), (5, 5, 100.0), (0, 7, 0.0), (1, 0, None)],
)
def test_percent_rounds_half_away_from_zero(part: int, whole: int, expected: float | None) -> None:
    assert percent(part, whole) == expected


async def test_changes_are_announced_after_commit_only(database: Database) -> None:
    changes = SourceChanges()
    heard: list[int] = []
    unsubscribe = changes.subscribe(lambda: heard.append(1))

    def failing() -> None:
        raise RuntimeError("a broken subscriber")

    changes.subscribe(failing)
    async with database.sessions() as session:
        await session.execute(text("SELECT 1"))
        changes.record(session)
        await session.rollback()
        assert heard == []
        await session.execute(text("SELECT 1"))
        changes.record(session)
        changes.record(session)
        await session.commit()
        assert heard == [1]
        await session.execute(text("SELECT 1"))
        await session.commit()
        assert heard == [1]
    unsubscribe()
    async with database.sessions() as session:
        await session.execute(text("SELECT 1"))
        changes.record(session)
        await session.commit()
    assert heard == [1]
