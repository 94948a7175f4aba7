"""Broadcast figures for /metrics: broadcasts by status, recipients by delivery status.

Each broadcast's per-status counts are kept on its row by a trigger, so the sums read
one row per broadcast rather than every recipient.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.models import MESSAGE_STATUSES, MessageHistory

DELIVERY_COUNTS = {
    "pending": MessageHistory.pending_deliveries,
    "sent": MessageHistory.successful_deliveries,
    "failed": MessageHistory.failed_deliveries,
    "cancelled": MessageHistory.cancelled_deliveries,
    "deleted": MessageHistory.deleted_deliveries,
}


@dataclass(frozen=True)
class BroadcastTotals:
    broadcasts: dict[str, int]
    """Broadcasts by status, every status present."""
    recipients: dict[str, int]
    """Recipients of all broadcasts by delivery status, every status present."""


async def broadcast_totals(session: AsyncSession) -> BroadcastTotals:
    sums = [func.coalesce(func.sum(column), 0) for column in DELIVERY_COUNTS.values()]
    result = await session.execute(
        select(MessageHistory.status, func.count(), *sums).group_by(MessageHistory.status)
    )
    broadcasts = dict.fromkeys(MESSAGE_STATUSES, 0)
    recipients = dict.fromkeys(DELIVERY_COUNTS, 0)
    for status, count, *by_delivery in result:
        broadcasts[status] = count
        for delivery_status, value in zip(DELIVERY_COUNTS, by_delivery, strict=True):
            recipients[delivery_status] += value
    return BroadcastTotals(broadcasts, recipients)
