"""A worker's unit of work (one message to send or delete) and what its answer means."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from coursedesk.broadcasts.deletions import DeletionOutcome
from coursedesk.broadcasts.deliveries import DeliveryOutcome
from coursedesk.broadcasts.personalisation import Profile
from coursedesk.telegram.client import (
    MAX_SEND_ATTEMPTS,
    AlbumDelivered,
    AlbumResult,
    Blocked,
    Deleted,
    DeleteResult,
    Delivered,
    PermanentFailure,
    RetryAfter,
    SendResult,
    TransientFailure,
    backoff_delay,
)

Backoff = Callable[[int], float]
"""Seconds to wait after failed try number n (1, 2, …) before the next."""

# Telegram's answer when the message is no longer in the chat: after a crash between
# deleting and recording, or when the user cleared the chat. Either way it is gone.
_ALREADY_GONE = "message to delete not found"


class JobKind(StrEnum):
    send = "send"
    delete = "delete"


@dataclass(slots=True)
class Job:
    kind: JobKind
    recipient_id: int
    message_id: int
    chat_id: int
    attempts: int
    telegram_message_id: int | None = None
    profile: Profile | None = None
    """The recipient's values for the variables of a personal broadcast."""

    @property
    def key(self) -> tuple[JobKind, int]:
        return (self.kind, self.recipient_id)


def default_backoff(attempt: int) -> float:
    return backoff_delay(attempt, random.Random())


def delivery_outcome(
    job: Job,
    result: SendResult | AlbumResult,
    backoff: Backoff = default_backoff,
    *,
    uploaded: bool = False,
) -> DeliveryOutcome:
    """What to record for a send that Telegram answered (RetryAfter is never recorded).

    `uploaded`: the send carried the broadcast's files, whose file_ids a delivery answers.
    """
    if isinstance(result, RetryAfter):
        raise ValueError("a 429 is waited out, not recorded")
    attempts = job.attempts + 1
    if isinstance(result, Delivered | AlbumDelivered):
        file_ids = result.file_ids if isinstance(result, AlbumDelivered) else (result.file_id,)
        return DeliveryOutcome(
            job.recipient_id,
            job.message_id,
            "sent",
            attempts,
            result.message_id,
            uploaded=uploaded,
            file_ids=file_ids if uploaded else (),
        )
    if isinstance(result, Blocked | PermanentFailure):
        return DeliveryOutcome(
            job.recipient_id,
            job.message_id,
            "failed",
            attempts,
            error=result.description,
            uploaded=uploaded,
        )
    if attempts >= MAX_SEND_ATTEMPTS:
        error = f"{result.description} (after {attempts} tries)"
        return DeliveryOutcome(
            job.recipient_id, job.message_id, "failed", attempts, error=error, uploaded=uploaded
        )
    return DeliveryOutcome(
        job.recipient_id,
        job.message_id,
        "pending",
        attempts,
        error=result.description,
        retry_in=backoff(attempts),
        uploaded=uploaded,
    )


def deletion_outcome(
    job: Job, result: DeleteResult, backoff: Backoff = default_backoff
) -> DeletionOutcome:
    """What to record for a deleteMessage that Telegram answered."""
    if isinstance(result, RetryAfter):
        raise ValueError("a 429 is waited out, not recorded")
    attempts = job.attempts + 1
    if isinstance(result, Deleted) or (
        isinstance(result, PermanentFailure) and _ALREADY_GONE in result.description.lower()
    ):
        return DeletionOutcome(job.recipient_id, job.message_id, True, True, attempts)
    if isinstance(result, TransientFailure) and attempts < MAX_SEND_ATTEMPTS:
        return DeletionOutcome(
            job.recipient_id,
            job.message_id,
            False,
            False,
            attempts,
            error=result.description,
            retry_in=backoff(attempts),
        )
    return DeletionOutcome(
        job.recipient_id,
        job.message_id,
        True,
        False,
        attempts,
        error=f"not deleted: {result.description}",
    )
