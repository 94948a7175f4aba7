"""Claiming one round of work: due recipients of sending broadcasts, then queued deletions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from coursedesk.broadcasts import deletions, deliveries
from coursedesk.broadcasts.deliveries import BroadcastText, ClaimedRecipient
from coursedesk.broadcasts.jobs import Job, JobKind

log = logging.getLogger(__name__)

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
    A claimed recipient who has blocked the bot since the broadcast was created is
    recorded as failed at once, never sent to.
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
        await _fail_blocked(engine, claimed, owner=owner)
        jobs.extend(
            Job(JobKind.send, row.recipient_id, row.message_id, row.user_id, row.attempts)
            for row in claimed
            if not row.blocked
        )
    if len(jobs) < wanted:
        left = wanted - len(jobs)
        jobs.extend(await _claim_deletions(engine, owner=owner, lease=lease, wanted=left))
    return ClaimedWork(jobs, sending)


async def _fail_blocked(
    engine: AsyncEngine, claimed: Sequence[ClaimedRecipient], *, owner: str
) -> None:
    """Record the blocked among claimed recipients, in a transaction of its own.

    Not in the claim's: recording locks the message row, which must come before its
    recipient rows (deliveries.py). A crash in between leaves the rows leased, and the
    next claim after the lease checks them again.
    """
    outcomes = [deliveries.blocked_outcome(row) for row in claimed if row.blocked]
    if not outcomes:
        return
    async with engine.begin() as connection:
        finished = await deliveries.record_outcomes(connection, outcomes, [], owner=owner)
    for message_id in finished:
        log.info("broadcast %s is sent: no recipient is pending", message_id)


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
            if len(jobs) >= wanted:
                break
            if not more_to_queue:
                if not claimed:
                    # Nothing left to take: the deletion may be over, or have been
                    # waiting for sends that were on their way when it was cancelled.
                    async with engine.begin() as connection:
                        await deletions.finish_deletions(connection, [broadcast.message_id])
                break
            async with engine.begin() as connection:
                more_to_queue = await deletions.queue_next_chunk(
                    connection, broadcast.message_id, size=max(wanted, DELETION_CHUNK)
                )
    return jobs
