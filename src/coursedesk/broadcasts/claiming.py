"""Claiming one round of work: due recipients of sending broadcasts, then queued deletions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from coursedesk.broadcasts import deletions, deliveries
from coursedesk.broadcasts.deliveries import BroadcastText
from coursedesk.broadcasts.jobs import Job, JobKind

DELETION_CHUNK = 500
"""Delivered recipients queued for deletion at a time."""


@dataclass(frozen=True)
class ClaimedWork:
    jobs: list[Job]
    broadcasts: list[BroadcastText]
    """Every broadcast being sent now, with its text."""


async def claim_work(engine: AsyncEngine, *, owner: str, lease: float, wanted: int) -> ClaimedWork:
    """Lease up to `wanted` jobs, each claim in a short transaction of its own.

    Sends come first, oldest broadcast first; deletions only fill what sends leave.
    """
    async with engine.begin() as connection:
        sending = await deliveries.sending_broadcasts(connection)
    jobs: list[Job] = []
    for broadcast in sending:
        if len(jobs) >= wanted:
            break
        async with engine.begin() as connection:
            claimed = await deliveries.claim_due_recipients(
                connection, broadcast.message_id, owner=owner, limit=wanted - len(jobs), lease=lease
            )
        jobs.extend(
            Job(JobKind.send, row.recipient_id, row.message_id, row.user_id, row.attempts)
            for row in claimed
        )
    if len(jobs) < wanted:
        left = wanted - len(jobs)
        jobs.extend(await _claim_deletions(engine, owner=owner, lease=lease, wanted=left))
    return ClaimedWork(jobs, sending)


async def _claim_deletions(
    engine: AsyncEngine, *, owner: str, lease: float, wanted: int
) -> list[Job]:
    async with engine.begin() as connection:
        deleting = await deletions.deleting_broadcasts(connection)
    jobs: list[Job] = []
    for broadcast in deleting:
        more_to_queue = not broadcast.fully_queued
        while len(jobs) < wanted:
            async with engine.begin() as connection:
                claimed = await deletions.claim_due_deletions(
                    connection,
                    broadcast.message_id,
                    owner=owner,
                    limit=wanted - len(jobs),
                    lease=lease,
                )
            jobs.extend(
                Job(
                    JobKind.delete,
                    row.recipient_id,
                    row.message_id,
                    row.user_id,
                    row.attempts,
                    row.telegram_message_id,
                )
                for row in claimed
            )
            if len(jobs) >= wanted or not more_to_queue:
                break
            async with engine.begin() as connection:
                more_to_queue = await deletions.queue_next_chunk(
                    connection, broadcast.message_id, size=max(wanted, DELETION_CHUNK)
                )
    return jobs
