"""Broadcasts a new one would repeat: the same text to some of the same students, lately.

The composer's confirm page warns with these before a send. A broadcast counts when it
has exactly the same text and at least one recipient in common with the new audience
who has it in their chat or will (delivered, or still pending), and it was created or
started within REPEAT_WINDOW or is still to send. Recipients it failed, never sent
(cancelled) or deleted from the chats since do not count: they do not have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.audiences import Audience, recipients_select
from coursedesk.broadcasts.models import MessageHistory, MessageRecipient

REPEAT_WINDOW = timedelta(hours=24)
MAX_SHOWN = 5
_IN_THEIR_CHATS = ("pending", "sent")


@dataclass(frozen=True)
class Repeated:
    """An earlier broadcast of the same text, and how many of the new audience it reached."""

    message: MessageHistory
    shared: int


async def repeated_broadcasts(
    session: AsyncSession, text: str, audience: Audience, *, leave_out: int | None = None
) -> Sequence[Repeated]:
    """Newest first, at most MAX_SHOWN; `leave_out` is a broadcast not to count (the one
    this very form made)."""
    since = func.now() - REPEAT_WINDOW
    members = recipients_select(audience).order_by(None).subquery()
    shared = (
        select(func.count())
        .select_from(MessageRecipient)
        .join(members, members.c.user_id == MessageRecipient.user_id)
        .where(
            MessageRecipient.message_id == MessageHistory.id,
            MessageRecipient.delivery_status.in_(_IN_THEIR_CHATS),
        )
        .scalar_subquery()
    )
    candidates = (
        select(MessageHistory, shared.label("shared"))
        .where(
            MessageHistory.message_text == text,
            or_(
                MessageHistory.created_at > since,
                MessageHistory.started_at > since,
                MessageHistory.status.in_(("scheduled", "sending")),
            ),
        )
        .order_by(MessageHistory.created_at.desc(), MessageHistory.id.desc())
    )
    if leave_out is not None:
        candidates = candidates.where(MessageHistory.id != leave_out)
    found = (await session.execute(candidates)).all()
    return [Repeated(message, count) for message, count in found if count > 0][:MAX_SHOWN]
