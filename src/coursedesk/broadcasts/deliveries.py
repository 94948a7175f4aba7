"""The recipient rows as a work queue: claim with a lease, renew, release, record outcomes.

A lease is written into next_attempt_at as well as lease_expires_at: a pending row is
claimable exactly when next_attempt_at has passed, whether it was never tried, is
waiting out a backoff, or was held by a worker that died. One range of the partial
index (message_id, next_attempt_at) WHERE pending therefore finds all of them, and a
claimed row moves out of the way of the next claim.

Lock order, everywhere: message_history rows first (sorted), then recipient rows.
The tally trigger locks the message row when a delivery_status changes, and a cancel
locks it before touching the recipients, so taking it first here rules out deadlocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SENDING_BROADCASTS = text(
    """
-- sending_broadcasts: what workers send, oldest schedule first.
SELECT id, message_text, parse_mode FROM message_history
WHERE status = 'sending'
ORDER BY scheduled_at, id
"""
)

CLAIM_DUE_RECIPIENTS = text(
    """
-- claim_due_recipients: lease up to :limit due recipients of one sending broadcast.
-- SKIP LOCKED lets any number of workers claim at once without waiting on each other.
WITH due AS (
    SELECT id FROM message_recipients
    WHERE message_id = :message_id
      AND delivery_status = 'pending'
      AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE message_recipients AS r
SET lease_owner = :owner,
    lease_expires_at = now() + make_interval(secs => :lease),
    next_attempt_at = now() + make_interval(secs => :lease)
FROM due
WHERE r.id = due.id
RETURNING r.id, r.user_id, r.attempts
"""
)

RENEW_LEASES = text(
    """
-- renew_recipient_leases: keep the rows this worker still holds; answers those it does
-- (a cancelled broadcast's rows, or rows taken over after a stall, are not among them).
UPDATE message_recipients
SET lease_expires_at = now() + make_interval(secs => :lease),
    next_attempt_at = now() + make_interval(secs => :lease)
WHERE id = ANY(CAST(:ids AS bigint[]))
  AND lease_owner = :owner
  AND delivery_status = 'pending'
RETURNING id
"""
)

RELEASE_LEASES = text(
    """
-- release_recipient_leases: hand back claimed rows that were never sent (shutdown).
UPDATE message_recipients
SET lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = now()
WHERE id = ANY(CAST(:ids AS bigint[]))
  AND lease_owner = :owner
  AND delivery_status = 'pending'
"""
)

LOCK_BROADCASTS = text(
    """
-- lock_broadcasts: the message rows first, in id order (see the module docstring).
SELECT id FROM message_history WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id FOR UPDATE
"""
)

RECORD_OUTCOMES = text(
    """
-- record_delivery_outcomes: one batch of send outcomes in one statement, so the tally
-- trigger updates each message's figures once. Only rows this worker still holds are
-- written: pending under its lease, or cancelled under its lease when the message was
-- delivered all the same (the chat has it, and a delete must be able to find it).
UPDATE message_recipients AS r
SET delivery_status = o.status,
    telegram_message_id = o.telegram_message_id,
    error = o.error,
    attempts = o.attempts,
    next_attempt_at = now() + make_interval(secs => o.retry_in),
    lease_owner = NULL,
    lease_expires_at = NULL,
    sent_at = CASE WHEN o.status = 'sent' THEN now() END,
    updated_at = now()
FROM unnest(
    CAST(:ids AS bigint[]),
    CAST(:statuses AS text[]),
    CAST(:telegram_message_ids AS bigint[]),
    CAST(:errors AS text[]),
    CAST(:attempts AS integer[]),
    CAST(:retry_in AS double precision[])
) AS o(id, status, telegram_message_id, error, attempts, retry_in)
WHERE r.id = o.id
  AND r.lease_owner = :owner
  AND (r.delivery_status = 'pending' OR (r.delivery_status = 'cancelled' AND o.status = 'sent'))
"""
)

FINISH_SENT_BROADCASTS = text(
    """
-- finish_sent_broadcasts: a sending broadcast with no pending recipient left is sent.
-- The message rows are locked by this transaction, so exactly one writer sees zero.
UPDATE message_history
SET status = 'sent', sent_at = now()
WHERE id = ANY(CAST(:ids AS integer[])) AND status = 'sending' AND pending_deliveries = 0
RETURNING id
"""
)

MARK_BLOCKED = text(
    """
-- mark_users_blocked: Telegram said 403, so these users blocked the bot.
INSERT INTO bot_users (user_id, is_blocked, blocked_at, updated_at)
SELECT user_id, true, now(), now()
FROM unnest(CAST(:user_ids AS bigint[])) AS u(user_id)
ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE
SET is_blocked = true,
    blocked_at = CASE WHEN bot_users.is_blocked THEN bot_users.blocked_at ELSE now() END,
    updated_at = now()
"""
)


@dataclass(frozen=True, slots=True)
class BroadcastText:
    message_id: int
    text: str
    parse_mode: str | None


@dataclass(frozen=True, slots=True)
class ClaimedRecipient:
    recipient_id: int
    message_id: int
    user_id: int
    attempts: int


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What to write for one recipient: a final status, or pending with a retry delay."""

    recipient_id: int
    message_id: int
    status: str
    attempts: int
    telegram_message_id: int | None = None
    error: str | None = None
    retry_in: float = 0.0


async def sending_broadcasts(connection: AsyncConnection) -> list[BroadcastText]:
    rows = await connection.execute(SENDING_BROADCASTS)
    return [BroadcastText(row.id, row.message_text, row.parse_mode) for row in rows]


async def claim_due_recipients(
    connection: AsyncConnection, message_id: int, *, owner: str, limit: int, lease: float
) -> list[ClaimedRecipient]:
    rows = await connection.execute(
        CLAIM_DUE_RECIPIENTS,
        {"message_id": message_id, "owner": owner, "limit": limit, "lease": lease},
    )
    return [ClaimedRecipient(row.id, message_id, row.user_id, row.attempts) for row in rows]


async def renew_leases(
    connection: AsyncConnection, ids: Sequence[int], *, owner: str, lease: float
) -> set[int]:
    rows = await connection.execute(
        RENEW_LEASES, {"ids": list(ids), "owner": owner, "lease": lease}
    )
    return {row.id for row in rows}


async def release_leases(connection: AsyncConnection, ids: Sequence[int], *, owner: str) -> None:
    await connection.execute(RELEASE_LEASES, {"ids": list(ids), "owner": owner})


async def lock_broadcasts(connection: AsyncConnection, message_ids: Sequence[int]) -> None:
    await connection.execute(LOCK_BROADCASTS, {"ids": sorted(set(message_ids))})


async def record_outcomes(
    connection: AsyncConnection,
    outcomes: Sequence[DeliveryOutcome],
    blocked_user_ids: Sequence[int],
    *,
    owner: str,
) -> list[int]:
    """Write a batch in the caller's transaction; answers the broadcasts that finished."""
    message_ids = [outcome.message_id for outcome in outcomes]
    await lock_broadcasts(connection, message_ids)
    await connection.execute(
        RECORD_OUTCOMES,
        {
            "owner": owner,
            "ids": [o.recipient_id for o in outcomes],
            "statuses": [o.status for o in outcomes],
            "telegram_message_ids": [o.telegram_message_id for o in outcomes],
            "errors": [o.error for o in outcomes],
            "attempts": [o.attempts for o in outcomes],
            "retry_in": [o.retry_in for o in outcomes],
        },
    )
    if blocked_user_ids:
        await connection.execute(MARK_BLOCKED, {"user_ids": sorted(set(blocked_user_ids))})
    finished = await connection.execute(FINISH_SENT_BROADCASTS, {"ids": sorted(set(message_ids))})
    return [row.id for row in finished]
