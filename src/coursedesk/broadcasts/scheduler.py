"""Starting broadcasts when they fall due; any worker may do it, the first one wins."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

START_DUE_BROADCASTS = text(
    """
-- start_due_broadcasts: scheduled broadcasts whose time has come start sending; one with
-- no pending recipient (or a sending one left with none) is sent at once. Row locks make
-- concurrent workers agree: each row changes once.
UPDATE message_history
SET status = CASE WHEN pending_deliveries = 0 THEN 'sent' ELSE 'sending' END,
    started_at = coalesce(started_at, now()),
    sent_at = CASE WHEN pending_deliveries = 0 THEN now() END
WHERE status IN ('scheduled', 'sending')
  AND scheduled_at <= now()
  AND (status = 'scheduled' OR pending_deliveries = 0)
RETURNING id, status
"""
)

SECONDS_TO_NEXT_DUE = text(
    """
-- seconds_to_next_due: how long until the earliest scheduled broadcast falls due.
SELECT extract(epoch FROM min(scheduled_at) - now()) FROM message_history
WHERE status = 'scheduled'
"""
)


@dataclass(frozen=True, slots=True)
class StartedBroadcast:
    message_id: int
    status: str


async def start_due_broadcasts(connection: AsyncConnection) -> list[StartedBroadcast]:
    rows = await connection.execute(START_DUE_BROADCASTS)
    return [StartedBroadcast(row.id, row.status) for row in rows]


async def seconds_to_next_due(connection: AsyncConnection) -> float | None:
    """None when nothing is scheduled; 0 or less when something is due now."""
    seconds = await connection.scalar(SECONDS_TO_NEXT_DUE)
    return None if seconds is None else float(seconds)
