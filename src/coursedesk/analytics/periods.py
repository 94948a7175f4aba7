"""The calendar days a figure covers: `days=N` ending today, or a `from`/`to` range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from coursedesk.errors import InvalidInput

MAX_DAYS = 366
DEFAULT_DAYS = 30
MAX_WEEKS = 26
DEFAULT_WEEKS = 8


@dataclass(frozen=True)
class DayWindow:
    """Calendar days in APP_TIMEZONE, both ends included."""

    first_day: date
    last_day: date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def as_params(self) -> dict[str, date]:
        return {"first_day": self.first_day, "last_day": self.last_day}


def resolve_window(
    *, today: date, days: int | None, first_day: date | None, last_day: date | None
) -> DayWindow:
    """`from`/`to` when given (`to` defaults to today), else the last `days` days to `to`."""
    if days is not None and first_day is not None:
        raise InvalidInput("give either days or from, not both")
    end = last_day or today
    try:
        start = first_day or end - timedelta(days=(days or DEFAULT_DAYS) - 1)
    except OverflowError:
        raise InvalidInput("the range starts before the year 1") from None
    if start > end:
        raise InvalidInput("from must not be after to")
    window = DayWindow(start, end)
    if window.days > MAX_DAYS:
        raise InvalidInput(f"a range covers at most {MAX_DAYS} days")
    return window


def week_start(day: date) -> date:
    """The Monday of the week of `day`."""
    return day - timedelta(days=day.weekday())


def cohort_window(*, today: date, weeks: int) -> DayWindow:
    """The last `weeks` calendar weeks (Monday to Sunday), the current one included."""
    return DayWindow(week_start(today) - timedelta(weeks=weeks - 1), today)
