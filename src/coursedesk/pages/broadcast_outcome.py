"""What became of a broadcast, in figures and words, for its page and the history.

Its status alone misleads once it was cancelled or deleted: a cancelled broadcast may
have reached part of its audience, and a deleted one has nothing left in the chats
though it was delivered. So the pages count what was delivered (deleted since or not),
what failed, what is still to go or never went, and what was taken back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from coursedesk.broadcasts.models import MessageHistory

LIVE_STATUSES = ("scheduled", "sending")


@dataclass(frozen=True)
class Figure:
    """One figure of the broadcast page; `name` is the one its script keeps up to date."""

    name: str
    label: str
    value: int
    tone: str = ""
    hint: str = ""


def _students(count: int) -> str:
    return f"{count:,} student{'' if count == 1 else 's'}"


def _messages(count: int) -> str:
    return f"{count:,} message{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Outcome:
    status: str
    total: int
    delivered: int
    """Delivered at some time, those deleted from the chats since included."""
    failed: int
    pending: int
    never_sent: int
    """Cancelled before they were sent."""
    deleted: int
    refused: int
    """Delivered messages Telegram would not delete."""
    deletion: Literal["deleting", "deleted"] | None
    held_out: int = 0
    """The control group: never sent, by design (broadcasts/holdout.py)."""

    @classmethod
    def of(cls, message: MessageHistory) -> Outcome:
        deletion: Literal["deleting", "deleted"] | None = None
        if message.delete_requested_at is not None:
            deletion = "deleting" if message.deleted_at is None else "deleted"
        return cls(
            status=message.status,
            total=message.total_recipients,
            delivered=message.successful_deliveries,
            failed=message.failed_deliveries,
            pending=message.pending_deliveries,
            never_sent=message.cancelled_deliveries,
            deleted=message.deleted_deliveries,
            refused=message.delete_refused,
            deletion=deletion,
            held_out=message.holdout_count,
        )

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def in_chats(self) -> int:
        return self.delivered - self.deleted

    @property
    def unsent(self) -> int:
        """Recipients no message reached yet or ever will: pending or cancelled."""
        return self.pending + self.never_sent

    @property
    def unsent_note(self) -> str:
        if self.never_sent and self.pending:
            return f"{self.never_sent:,} cancelled"
        if self.never_sent:
            return "cancelled"
        return "pending" if self.pending else ""

    @property
    def deletion_note(self) -> str:
        """How much of what was delivered has been taken back out of the chats, briefly."""
        if self.deletion is None and not self.deleted:
            return ""
        if self.deletion == "deleting":
            return f"deleting, {self.deleted:,} done"
        return "all deleted" if self.deleted == self.delivered else f"{self.deleted:,} deleted"

    def figures(self) -> list[Figure]:
        """The broadcast page's figures: a card for what never went, and one for what was
        deleted, only once there is such a thing."""
        delivered_hint = f"{self.in_chats:,} still in the chats" if self.deletion else ""
        shown = [
            Figure("delivered", "Delivered", self.delivered, "success", delivered_hint),
            Figure("failed", "Failed", self.failed, "danger"),
        ]
        if self.never_sent or self.status == "cancelled":
            shown.append(
                Figure("cancelled", "Never sent", self.never_sent, "cancelled", "cancelled")
            )
        if self.pending or self.status != "cancelled":
            shown.append(Figure("pending", "Pending", self.pending, "warning"))
        if self.deletion is not None:
            hint = "in progress" if self.deletion == "deleting" else "done"
            if self.refused:
                hint = f"{self.refused:,} refused by Telegram"
            shown.append(Figure("deleted", "Deleted from chats", self.deleted, "deleted", hint))
        if self.held_out:
            shown.append(Figure("holdout", "Control group", self.held_out, "", "not sent"))
        shown.append(Figure("total", "Recipients", self.total))
        return shown

    def summary(self) -> str:
        """What happened, in a sentence or two; empty while it is still to send or sending."""
        if self.live:
            return ""
        if self.status == "cancelled" and self.delivered == 0:
            told = ["Cancelled before anyone received it"]
        else:
            told = [f"Delivered to {self.delivered:,} of {_students(self.total)}"]
        if self.failed:
            told.append(f"{self.failed:,} failed")
        if self.never_sent:
            told.append(f"{self.never_sent:,} never sent (cancelled)")
        if self.held_out:
            told.append(f"{self.held_out:,} held back as the control group")
        sentences = ["; ".join(told) + "."]
        if self.deletion == "deleting":
            sentences.append(
                f"Deleting from the chats: {self.deleted:,} of {self.delivered:,} done."
            )
        elif self.deletion == "deleted" and self.refused:
            sentences.append(
                f"{_messages(self.deleted)} deleted from the chats since; Telegram would not "
                f"delete {self.refused:,} (older than 48 hours)."
            )
        elif self.deletion == "deleted" and self.deleted == self.delivered:
            sentences.append("Since deleted from every chat it reached.")
        elif self.deletion == "deleted":
            sentences.append(f"{_messages(self.deleted)} deleted from the chats since.")
        return " ".join(sentences)
