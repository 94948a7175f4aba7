"""The recipient rows as a work queue: claim with a lease, renew, release, record outcomes.

A lease is written into next_attempt_at as well as lease_expires_at: a pending row is
claimable exactly when next_attempt_at has passed, whether it was never tried, is
waiting out a backoff, or was held by a worker that died. One range of the partial
index (message_id, next_attempt_at) WHERE pending therefore finds all of them, and a
claimed row moves out of the way of the next claim.

A cancel turns claimed rows cancelled too, but their lease stays: a send already on its
way may still land, and its worker records it as sent under that lease. The heartbeat
keeps renewing it while the call lasts, so a deletion of the broadcast knows to wait
for it (deletions.py).

Lock order, everywhere: message_history rows first (sorted), then recipient rows.
The tally trigger locks the message row when a delivery_status changes, and a cancel
locks it before touching the recipients, so taking it first here rules out deadlocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from coursedesk.broadcasts import contents
from coursedesk.broadcasts.signals import SignalKind, send_signal

MAY_STILL_LAND = (
    "delivery_status = 'cancelled' AND lease_owner IS NOT NULL AND lease_expires_at > now()"
)
"""A recipient row cancelled while its send was on its way, which may land yet.

Served by the partial index ix_message_recipients_cancelled_leased (migration 0006).
"""

CLAIM_DUE_RECIPIENTS = text(
    """
-- claim_due_recipients: lease up to :limit due recipients of one sending broadcast,
-- saying of each whether the user has blocked the bot since the broadcast was created.
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
RETURNING r.id, r.user_id, r.attempts,
    -- A scalar subquery, so one primary-key lookup per row (EXISTS was planned as a
    -- hash of every blocked user, built by reading all of bot_users at each claim).
    coalesce((SELECT b.is_blocked FROM bot_users AS b WHERE b.user_id = r.user_id), false)
        AS blocked
"""
)

RENEW_LEASES = text(
    """
-- renew_recipient_leases: keep the rows this worker still holds, cancelled ones too (a
-- send on its way may still land); answers the rows still to send (a cancelled
-- broadcast's rows, or rows taken over after a stall, are not among them).
UPDATE message_recipients
SET lease_expires_at = now() + make_interval(secs => :lease),
    next_attempt_at = now() + make_interval(secs => :lease)
WHERE id = ANY(CAST(:ids AS bigint[]))
  AND lease_owner = :owner
  AND delivery_status IN ('pending', 'cancelled')
RETURNING id, delivery_status
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
-- Such a late delivery of a broadcast being deleted joins the deletion queue unless
-- the cursor has yet to reach it, and reopens a deletion that finished without it.
WITH recorded AS (
    UPDATE message_recipients AS r
    SET delivery_status = o.status,
        telegram_message_id = o.telegram_message_id,
        error = o.error,
        attempts = o.attempts,
        next_attempt_at = now() + make_interval(secs => o.retry_in),
        lease_owner = NULL,
        lease_expires_at = NULL,
        sent_at = CASE WHEN o.status = 'sent' THEN now() END,
        updated_at = now(),
        pinned_at = CASE WHEN o.pinned THEN now() END,
        pin_error = o.pin_error
    FROM unnest(
        CAST(:ids AS bigint[]),
        CAST(:statuses AS text[]),
        CAST(:telegram_message_ids AS bigint[]),
        CAST(:errors AS text[]),
        CAST(:attempts AS integer[]),
        CAST(:retry_in AS double precision[]),
        CAST(:pinned AS boolean[]),
        CAST(:pin_errors AS text[])
    ) AS o(id, status, telegram_message_id, error, attempts, retry_in, pinned, pin_error)
    WHERE r.id = o.id
      AND r.lease_owner = :owner
      AND (r.delivery_status = 'pending'
           OR (r.delivery_status = 'cancelled' AND o.status = 'sent'))
    RETURNING r.id, r.message_id, r.user_id, r.delivery_status
),
late AS (
    SELECT recorded.id, recorded.message_id
    FROM recorded JOIN message_history AS m ON m.id = recorded.message_id
    WHERE recorded.delivery_status = 'sent'
      AND m.delete_requested_at IS NOT NULL
      AND (m.delete_cursor IS NULL OR recorded.user_id < m.delete_cursor)
),
queued AS (
    INSERT INTO message_deletions (recipient_id, message_id)
    SELECT id, message_id FROM late
    ON CONFLICT (recipient_id) DO NOTHING
)
UPDATE message_history
SET deleted_at = NULL
WHERE id IN (SELECT message_id FROM late) AND deleted_at IS NOT NULL
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


COUNT_MAY_STILL_LAND = text(
    f"""
-- count_sends_under_way: a cancelled broadcast's sends that were on their way.
SELECT count(*) FROM message_recipients WHERE message_id = :message_id AND {MAY_STILL_LAND}
"""
)


@dataclass(frozen=True, slots=True)
class ClaimedRecipient:
    recipient_id: int
    message_id: int
    user_id: int
    attempts: int
    blocked: bool
    """The user has blocked the bot since the broadcast was created: not to be sent to."""


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
    uploaded: bool = False
    """The send carried the broadcast's files (its upload lease ends with this outcome)."""
    file_ids: tuple[str | None, ...] = ()
    """The file_ids Telegram answered for those files, in album order, when delivered."""
    pinned: bool = False
    pin_error: str | None = None
    """Why a delivered message that was to be pinned is not."""


NOT_SENT_BLOCKED = "not sent: the user has blocked the bot"


def blocked_outcome(recipient: ClaimedRecipient) -> DeliveryOutcome:
    """Failed without a try, as a 403 would have answered: the user blocked the bot."""
    return DeliveryOutcome(
        recipient.recipient_id,
        recipient.message_id,
        "failed",
        recipient.attempts,
        error=NOT_SENT_BLOCKED,
    )


async def claim_due_recipients(
    connection: AsyncConnection, message_id: int, *, owner: str, limit: int, lease: float
) -> list[ClaimedRecipient]:
    rows = await connection.execute(
        CLAIM_DUE_RECIPIENTS,
        {"message_id": message_id, "owner": owner, "limit": limit, "lease": lease},
    )
    return [
        ClaimedRecipient(row.id, message_id, row.user_id, row.attempts, row.blocked) for row in rows
    ]


async def renew_leases(
    connection: AsyncConnection, ids: Sequence[int], *, owner: str, lease: float
) -> set[int]:
    """Renew the leases of these rows; answers those still to send (pending)."""
    rows = await connection.execute(
        RENEW_LEASES, {"ids": list(ids), "owner": owner, "lease": lease}
    )
    return {row.id for row in rows if row.delivery_status == "pending"}


async def release_leases(connection: AsyncConnection, ids: Sequence[int], *, owner: str) -> None:
    await connection.execute(RELEASE_LEASES, {"ids": list(ids), "owner": owner})


async def sends_under_way(connection: AsyncConnection, message_id: int) -> int:
    """How many of a cancelled broadcast's sends were on their way and may land yet."""
    count = await connection.scalar(COUNT_MAY_STILL_LAND, {"message_id": message_id})
    return int(count or 0)


async def lock_broadcasts(connection: AsyncConnection, message_ids: Sequence[int]) -> None:
    await connection.execute(LOCK_BROADCASTS, {"ids": sorted(set(message_ids))})


async def record_outcomes(
    connection: AsyncConnection,
    outcomes: Sequence[DeliveryOutcome],
    blocked_user_ids: Sequence[int],
    *,
    owner: str,
) -> list[int]:
    """Write a batch in the caller's transaction; answers the broadcasts that finished.

    The file_ids of a delivery that uploaded its broadcast's files are kept in the same
    transaction, and its upload lease ends (broadcasts/contents.py).
    """
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
            "pinned": [o.pinned for o in outcomes],
            "pin_errors": [o.pin_error for o in outcomes],
        },
    )
    if blocked_user_ids:
        await connection.execute(MARK_BLOCKED, {"user_ids": sorted(set(blocked_user_ids))})
    await _record_uploads(connection, outcomes, owner=owner)
    finished = await connection.execute(FINISH_SENT_BROADCASTS, {"ids": sorted(set(message_ids))})
    return [row.id for row in finished]


async def _record_uploads(
    connection: AsyncConnection, outcomes: Sequence[DeliveryOutcome], *, owner: str
) -> None:
    uploads = [o for o in outcomes if o.uploaded]
    if not uploads:
        return
    known = await contents.remember_file_ids(
        connection,
        [contents.UploadedFiles(o.message_id, o.file_ids) for o in uploads if o.file_ids],
    )
    await contents.release_upload_leases(connection, [o.message_id for o in uploads], owner=owner)
    for message_id in known:
        # Workers waiting for the file_ids may now send to everyone else.
        await send_signal(connection, SignalKind.work, message_id)
