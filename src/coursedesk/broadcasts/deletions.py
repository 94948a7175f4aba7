"""Deleting a broadcast from the chats as a job: queue delivered recipients, claim, record.

A delete request only marks the message (delete_requested_at, delete_cursor =
CURSOR_START). Workers then queue its delivered recipients into message_deletions a
chunk at a time, in user_id order from delete_cursor, and claim queue rows with a lease
exactly as they claim pending recipients, so a million deletions survive crashes and
keep the rate. The cursor is the lowest user_id not yet looked at: it starts at the
lowest bigint, so no recipient is below it, and becomes NULL once all were looked at.

A cancelled broadcast can be deleted while some of its sends are still on their way:
their rows are cancelled but keep their lease (deliveries.py). When one lands, the
writer records it as sent and, in the same statement, queues it for deletion if the
cursor has passed it (if not, the cursor will find it). The deletion is therefore
finished (deleted_at set) only once the cursor is done, the queue is empty and no
cancelled recipient of the broadcast is under a live lease. A killed worker's leases
run out within the lease time, so nothing waits on it for longer; should a worker
stalled past its lease record a delivery after all, the deletion is reopened for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from coursedesk.broadcasts.audiences import USER_ID_MAX
from coursedesk.broadcasts.deliveries import MAY_STILL_LAND, lock_broadcasts
from coursedesk.db.base import BIGINT_MIN

CURSOR_START = BIGINT_MIN
"""delete_cursor when a deletion is asked for: the lowest bigint, no user_id is below it."""

DELETING_BROADCASTS = text(
    """
-- deleting_broadcasts: broadcasts whose deletion was asked for and is not finished.
SELECT id, delete_cursor FROM message_history
WHERE delete_requested_at IS NOT NULL AND deleted_at IS NULL
ORDER BY delete_requested_at, id
"""
)

LOCK_DELETION = text(
    """
-- lock_deletion: the message row, so that one worker at a time moves its cursor.
SELECT delete_cursor FROM message_history
WHERE id = :message_id AND delete_requested_at IS NOT NULL AND deleted_at IS NULL
FOR UPDATE
"""
)

QUEUE_NEXT_CHUNK = text(
    """
-- queue_deletion_chunk: the next :size delivered recipients from the cursor on join the
-- queue, and the cursor moves past them (to NULL when no recipient is left after them).
WITH chunk AS (
    SELECT id, user_id FROM message_recipients
    WHERE message_id = :message_id AND delivery_status = 'sent' AND user_id >= :cursor
    ORDER BY user_id
    LIMIT :size
),
queued AS (
    INSERT INTO message_deletions (recipient_id, message_id)
    SELECT id, :message_id FROM chunk
    ON CONFLICT (recipient_id) DO NOTHING
)
UPDATE message_history
SET delete_cursor = (
    SELECT CASE WHEN count(*) = :size AND max(user_id) < :top THEN max(user_id) + 1 END
    FROM chunk
)
WHERE id = :message_id
RETURNING delete_cursor
"""
)

CLAIM_DUE_DELETIONS = text(
    """
-- claim_due_deletions: lease up to :limit queued deletions of one broadcast.
WITH due AS (
    SELECT recipient_id FROM message_deletions
    WHERE message_id = :message_id AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE message_deletions AS d
SET lease_owner = :owner, next_attempt_at = now() + make_interval(secs => :lease)
FROM due, message_recipients AS r
WHERE d.recipient_id = due.recipient_id AND r.id = d.recipient_id
RETURNING d.recipient_id, r.user_id, r.telegram_message_id, d.attempts
"""
)

RENEW_LEASES = text(
    """
-- renew_deletion_leases: keep the queued deletions this worker still holds.
UPDATE message_deletions
SET next_attempt_at = now() + make_interval(secs => :lease)
WHERE recipient_id = ANY(CAST(:ids AS bigint[])) AND lease_owner = :owner
RETURNING recipient_id
"""
)

RELEASE_LEASES = text(
    """
-- release_deletion_leases: hand back claimed deletions that were never tried.
UPDATE message_deletions
SET lease_owner = NULL, next_attempt_at = now()
WHERE recipient_id = ANY(CAST(:ids AS bigint[])) AND lease_owner = :owner
"""
)

TAKE_FINISHED = text(
    """
-- take_finished_deletions: remove from the queue the rows this worker still holds whose
-- outcome is final; answers them with whether the message left the chat.
DELETE FROM message_deletions AS d
USING unnest(CAST(:ids AS bigint[]), CAST(:deleted AS boolean[]), CAST(:errors AS text[]))
      AS o(id, deleted, error)
WHERE d.recipient_id = o.id AND d.lease_owner = :owner
RETURNING d.recipient_id, d.message_id, o.deleted, o.error
"""
)

RECORD_FINISHED = text(
    """
-- record_deletions: deleted recipients become `deleted`; refused ones stay `sent` with
-- Telegram's reason as their error.
UPDATE message_recipients AS r
SET delivery_status = CASE WHEN o.deleted THEN 'deleted' ELSE r.delivery_status END,
    error = o.error,
    updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:deleted AS boolean[]), CAST(:errors AS text[]))
     AS o(id, deleted, error)
WHERE r.id = o.id AND r.delivery_status = 'sent'
"""
)

COUNT_REFUSED = text(
    """
-- count_refused_deletions: add this batch's refusals to each broadcast's figure.
UPDATE message_history AS m
SET delete_refused = m.delete_refused + c.refused
FROM (
    SELECT message_id, count(*) AS refused
    FROM unnest(CAST(:message_ids AS integer[])) AS t(message_id)
    GROUP BY message_id
) AS c
WHERE m.id = c.message_id
"""
)

RETRY_LATER = text(
    """
-- retry_deletions_later: back into the queue after a backoff, lease dropped.
UPDATE message_deletions AS d
SET attempts = o.attempts,
    next_attempt_at = now() + make_interval(secs => o.retry_in),
    lease_owner = NULL
FROM unnest(
    CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:retry_in AS double precision[])
) AS o(id, attempts, retry_in)
WHERE d.recipient_id = o.id AND d.lease_owner = :owner
"""
)

FINISH_DELETIONS = text(
    f"""
-- finish_deletions: a deletion is finished once its cursor is done, its queue empty and
-- none of its cancelled sends can still land.
UPDATE message_history AS m
SET deleted_at = now()
WHERE m.id = ANY(CAST(:ids AS integer[]))
  AND m.delete_requested_at IS NOT NULL
  AND m.deleted_at IS NULL
  AND m.delete_cursor IS NULL
  AND NOT EXISTS (SELECT 1 FROM message_deletions AS d WHERE d.message_id = m.id)
  AND NOT EXISTS (
      SELECT 1 FROM message_recipients AS r WHERE r.message_id = m.id AND {MAY_STILL_LAND}
  )
RETURNING m.id
"""
)


@dataclass(frozen=True, slots=True)
class DeletingBroadcast:
    message_id: int
    cursor: int | None

    @property
    def fully_queued(self) -> bool:
        return self.cursor is None


@dataclass(frozen=True, slots=True)
class ClaimedDeletion:
    recipient_id: int
    message_id: int
    user_id: int
    telegram_message_id: int
    attempts: int


@dataclass(frozen=True, slots=True)
class DeletionOutcome:
    """Final (deleted, or refused with an error), or to retry after `retry_in` seconds."""

    recipient_id: int
    message_id: int
    final: bool
    deleted: bool
    attempts: int
    error: str | None = None
    retry_in: float = 0.0


async def deleting_broadcasts(connection: AsyncConnection) -> list[DeletingBroadcast]:
    rows = await connection.execute(DELETING_BROADCASTS)
    return [DeletingBroadcast(row.id, row.delete_cursor) for row in rows]


async def queue_next_chunk(connection: AsyncConnection, message_id: int, *, size: int) -> bool:
    """Queue the next chunk of a broadcast's deliveries; False once all are queued.

    Also finishes the deletion when nothing is left to queue or to do.
    """
    cursor = await connection.scalar(LOCK_DELETION, {"message_id": message_id})
    if cursor is not None:
        cursor = await connection.scalar(
            QUEUE_NEXT_CHUNK,
            {"message_id": message_id, "cursor": cursor, "size": size, "top": USER_ID_MAX},
        )
    if cursor is None:
        await finish_deletions(connection, [message_id])
    return cursor is not None


async def finish_deletions(connection: AsyncConnection, message_ids: Sequence[int]) -> list[int]:
    """Mark finished the deletions among these that are; answers those."""
    finished = await connection.execute(FINISH_DELETIONS, {"ids": sorted(set(message_ids))})
    return [row.id for row in finished]


async def claim_due_deletions(
    connection: AsyncConnection, message_id: int, *, owner: str, limit: int, lease: float
) -> list[ClaimedDeletion]:
    rows = await connection.execute(
        CLAIM_DUE_DELETIONS,
        {"message_id": message_id, "owner": owner, "limit": limit, "lease": lease},
    )
    return [
        ClaimedDeletion(
            row.recipient_id, message_id, row.user_id, row.telegram_message_id, row.attempts
        )
        for row in rows
    ]


async def renew_leases(
    connection: AsyncConnection, ids: Sequence[int], *, owner: str, lease: float
) -> set[int]:
    rows = await connection.execute(
        RENEW_LEASES, {"ids": list(ids), "owner": owner, "lease": lease}
    )
    return {row.recipient_id for row in rows}


async def release_leases(connection: AsyncConnection, ids: Sequence[int], *, owner: str) -> None:
    await connection.execute(RELEASE_LEASES, {"ids": list(ids), "owner": owner})


async def record_outcomes(
    connection: AsyncConnection, outcomes: Sequence[DeletionOutcome], *, owner: str
) -> list[int]:
    """Write a batch in the caller's transaction; answers the deletions that finished."""
    message_ids = sorted({outcome.message_id for outcome in outcomes})
    await lock_broadcasts(connection, message_ids)
    final = [outcome for outcome in outcomes if outcome.final]
    retried = [outcome for outcome in outcomes if not outcome.final]
    if final:
        taken = list(
            await connection.execute(
                TAKE_FINISHED,
                {
                    "owner": owner,
                    "ids": [o.recipient_id for o in final],
                    "deleted": [o.deleted for o in final],
                    "errors": [o.error for o in final],
                },
            )
        )
        await connection.execute(
            RECORD_FINISHED,
            {
                "ids": [row.recipient_id for row in taken],
                "deleted": [row.deleted for row in taken],
                "errors": [row.error for row in taken],
            },
        )
        refused = [row.message_id for row in taken if not row.deleted]
        if refused:
            await connection.execute(COUNT_REFUSED, {"message_ids": refused})
    if retried:
        await connection.execute(
            RETRY_LATER,
            {
                "owner": owner,
                "ids": [o.recipient_id for o in retried],
                "attempts": [o.attempts for o in retried],
                "retry_in": [o.retry_in for o in retried],
            },
        )
    return await finish_deletions(connection, message_ids)
