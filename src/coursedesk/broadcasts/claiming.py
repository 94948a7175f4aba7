"""Claiming one round of work: due recipients of sending broadcasts, then queued deletions."""

from __future__ import annotations

import logging
from collections.abc import Sequence, Set
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from coursedesk.broadcasts import contents, deletions, deliveries
from coursedesk.broadcasts.contents import BroadcastContent
from coursedesk.broadcasts.deliveries import ClaimedRecipient
from coursedesk.broadcasts.jobs import Job, JobKind
from coursedesk.broadcasts.personalisation import profiles

log = logging.getLogger(__name__)

DELETION_CHUNK = 500
"""Delivered recipients queued for deletion at a time."""
FIRST_SEND_TRIES = 20
"""Recipients tried, one at a time, for a broadcast's first send (the blocked are failed)."""


@dataclass(frozen=True)
class ClaimedWork:
    jobs: list[Job]
    broadcasts: list[BroadcastContent]
    """Every broadcast being sent now, with what it sends."""


async def claim_work(
    engine: AsyncEngine,
    *,
    owner: str,
    lease: float,
    wanted: int,
    holding: Set[int] = frozenset(),
) -> ClaimedWork:
    """Lease up to `wanted` jobs, each claim in a short transaction of its own.

    Sends come first, oldest broadcast first; deletions only fill what sends leave.
    A claimed recipient who has blocked the bot since the broadcast was created is
    recorded as failed at once, never sent to. Of a broadcast whose files have no
    file_id yet, one recipient is claimed, under its upload lease, by one worker at a
    time (broadcasts/contents.py); `holding` are the broadcasts this worker holds sends
    of, which for such a broadcast means its upload is under way here already.
    """
    async with engine.begin() as connection:
        sending = await contents.sending_broadcasts(connection)
    jobs: list[Job] = []
    for broadcast in sending:
        if len(jobs) >= wanted:
            break
        if broadcast.awaits_upload:
            if broadcast.message_id not in holding:
                jobs.extend(await _claim_first_send(engine, broadcast, owner=owner, lease=lease))
            continue
        async with engine.begin() as connection:
            claimed = await deliveries.claim_due_recipients(
                connection, broadcast.message_id, owner=owner, limit=wanted - len(jobs), lease=lease
            )
        await _fail_blocked(engine, claimed, owner=owner)
        jobs.extend(
            await _with_profiles(
                engine,
                broadcast,
                [
                    Job(JobKind.send, row.recipient_id, row.message_id, row.user_id, row.attempts)
                    for row in claimed
                    if not row.blocked
                ],
            )
        )
    if len(jobs) < wanted:
        left = wanted - len(jobs)
        jobs.extend(await _claim_deletions(engine, owner=owner, lease=lease, wanted=left))
    return ClaimedWork(jobs, sending)


async def _claim_first_send(
    engine: AsyncEngine, broadcast: BroadcastContent, *, owner: str, lease: float
) -> list[Job]:
    """The one recipient whose send uploads the broadcast's files, if this worker may
    upload them now; none, and the lease given back, when no recipient is due."""
    async with engine.begin() as connection:
        if not await contents.take_upload_lease(
            connection, broadcast.message_id, owner=owner, lease=lease
        ):
            return []
    for _ in range(FIRST_SEND_TRIES):
        async with engine.begin() as connection:
            claimed = await deliveries.claim_due_recipients(
                connection, broadcast.message_id, owner=owner, limit=1, lease=lease
            )
        if not claimed:
            break
        await _fail_blocked(engine, claimed, owner=owner)
        [row] = claimed
        if not row.blocked:
            first = Job(JobKind.send, row.recipient_id, row.message_id, row.user_id, row.attempts)
            return await _with_profiles(engine, broadcast, [first])
    async with engine.begin() as connection:
        await contents.release_upload_leases(connection, [broadcast.message_id], owner=owner)
    return []


async def _with_profiles(
    engine: AsyncEngine, broadcast: BroadcastContent, jobs: list[Job]
) -> list[Job]:
    """The jobs of a personal broadcast with each recipient's values, read now."""
    if not broadcast.is_personal or not jobs:
        return jobs
    async with engine.connect() as connection:
        found = await profiles(connection, [job.chat_id for job in jobs])
    for job in jobs:
        job.profile = found.get(job.chat_id, {})
    return jobs


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
