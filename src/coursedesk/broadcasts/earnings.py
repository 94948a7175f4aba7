"""What a broadcast earned: its delivered recipients beside its control group, in a window.

Not to be confused with pages/broadcast_outcome.py, which tells what became of the
sending itself (delivered, failed, never sent). This is the campaign outcome of
docs/reference.md §8: of each group's recipients, how many clicked, booked, had the
booking confirmed, registered for a free lesson, attended one or blocked the bot in the
`window_days` after the broadcast reached them. The SQL is in sql/earnings.sql.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Literal

from sqlalchemy import TextClause, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.analytics.sql_files import parse_named_blocks
from coursedesk.broadcasts.models import MessageHistory
from coursedesk.broadcasts.service import database_now, get_message
from coursedesk.errors import InvalidInput

DEFAULT_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 90
OutcomeGroup = Literal["sent", "holdout"]
GROUP_STATUSES: dict[OutcomeGroup, tuple[str, ...]] = {
    "sent": ("sent", "deleted"),
    "holdout": ("holdout",),
}
"""Delivered means sent, deleted from the chat since or not."""
FIGURES = ("clicked", "booked", "confirmed", "free_lesson_registered", "attended", "blocked")
GROUP_FIGURES = ("recipients", *FIGURES)
CSV_COLUMNS = ("user_id", "group", "sent_at", *FIGURES)
SQL_FILE = Path(__file__).parent / "sql" / "earnings.sql"


@cache
def _statement(name: str) -> TextClause:
    """The shared CTEs of sql/earnings.sql, then its final SELECT called `name`."""
    blocks = parse_named_blocks(SQL_FILE.read_text(encoding="utf-8"))
    return text(f"-- {name}\n{blocks['recipient_activity']}\n{blocks[name]}")


@dataclass(frozen=True)
class GroupOutcome:
    recipients: int
    clicked: int
    booked: int
    confirmed: int
    free_lesson_registered: int
    attended: int
    blocked: int


@dataclass(frozen=True)
class BroadcastOutcome:
    window_days: int
    sent: GroupOutcome
    holdout: GroupOutcome | None
    """None when the broadcast has no control group."""


def checked_window_days(window_days: int) -> int:
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidInput(
            f"window_days: give a whole number of days from 1 to {MAX_WINDOW_DAYS}, "
            f"not {window_days}"
        )
    return window_days


def holdout_window_start(message: MessageHistory) -> datetime | None:
    """When the control group's window opens: the broadcast's sent_at, when its last
    recipient was done with. Without one: the moment a cancel ended the sending, or,
    while it is still sending, the moment it started; a broadcast never started has no
    window yet (docs/reference.md §8)."""
    if message.sent_at is not None:
        return message.sent_at
    if message.started_at is None:
        return None
    return message.cancelled_at or message.started_at


@dataclass(frozen=True)
class _Span:
    """[first_start, last_end): where every window of the broadcast's groups lies.

    Deliveries happen after the broadcast started, and no later than its sent_at (the
    transaction that records the last delivery sets it) or, for one cancelled or still
    sending, than now.
    """

    first_start: datetime | None
    last_end: datetime | None


def _span(
    message: MessageHistory, holdout_from: datetime | None, now: datetime, days: int
) -> _Span:
    starts = [moment for moment in (message.started_at, holdout_from) if moment is not None]
    if not starts:
        return _Span(None, None)
    last_send = message.sent_at or now
    return _Span(min(starts), max(last_send, *starts) + timedelta(days=days))


def _parameters(
    message: MessageHistory, groups: Sequence[OutcomeGroup], window_days: int, now: datetime
) -> dict[str, object]:
    holdout_from = holdout_window_start(message)
    span = _span(message, holdout_from, now, window_days)
    return {
        "message_id": message.id,
        "groups": list(groups),
        "statuses": [status for group in groups for status in GROUP_STATUSES[group]],
        "holdout_from": holdout_from,
        "window_days": window_days,
        "first_start": span.first_start,
        "last_end": span.last_end,
    }


async def _serial_plan(session: AsyncSession) -> None:
    """No parallel workers and no JIT for the rest of this transaction.

    Run alone, the outcome of a 100,000-recipient broadcast takes about 110 ms on two
    busy cores; with two parallel workers, 190 ms, as they wait for cores the bot's own
    writes need too (docs/benchmarks.md). JIT compiling, where a long window's estimate
    passes jit_above_cost, takes longer than the whole query.
    """
    for name, value in (("max_parallel_workers_per_gather", "0"), ("jit", "off")):
        await session.execute(select(func.set_config(name, value, True)))


def _groups(message: MessageHistory) -> tuple[OutcomeGroup, ...]:
    return ("sent", "holdout") if message.holdout_count else ("sent",)


async def outcome_of(
    session: AsyncSession, message_id: int, window_days: int = DEFAULT_WINDOW_DAYS
) -> BroadcastOutcome:
    """Both groups' figures, in one query; NotFound for an unknown broadcast.

    The recipients of each group are the broadcast's counters (successful_deliveries,
    holdout_count), read in the query's snapshot, so they agree with the rows counted.
    """
    checked_window_days(window_days)
    return await outcome_for(session, await get_message(session, message_id), window_days)


async def outcome_for(
    session: AsyncSession, message: MessageHistory, window_days: int
) -> BroadcastOutcome:
    """outcome_of() for a broadcast already read; `window_days` must have been checked.

    It turns parallel plans and JIT off for the rest of the caller's transaction, so a
    caller with more to read reads it first.
    """
    now = await database_now(session)
    await _serial_plan(session)
    rows = await session.execute(
        _statement("group_totals"), _parameters(message, _groups(message), window_days, now)
    )
    found = {
        row.group: GroupOutcome(**{name: row._mapping[name] for name in GROUP_FIGURES})
        for row in rows
    }
    return BroadcastOutcome(window_days, found["sent"], found.get("holdout"))


async def recipient_rows(
    session: AsyncSession, message: MessageHistory, window_days: int
) -> AsyncIterator[list[object]]:
    """Every recipient of both groups with their outcome (CSV_COLUMNS), the delivered
    ones first, each group in user_id order."""
    now = await database_now(session)
    await _serial_plan(session)
    rows = await session.stream(
        _statement("recipient_rows").execution_options(yield_per=2000),
        _parameters(message, _groups(message), window_days, now),
    )
    async for row in rows:
        yield [row._mapping[column] for column in CSV_COLUMNS]
