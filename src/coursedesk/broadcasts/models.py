"""Broadcast messages and one row per recipient with its delivery state.

The delivery figures on message_history are kept by a statement-level trigger on
message_recipients (migration 0001), so they always agree with the recipient rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coursedesk.db.base import Base

MESSAGE_STATUSES = ("scheduled", "sending", "sent", "cancelled")
DELIVERY_STATUSES = ("pending", "sent", "failed", "cancelled", "deleted")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class MessageHistory(Base):
    __tablename__ = "message_history"
    __table_args__ = (
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status_known"),
        CheckConstraint(
            _in("recipient_type", ("individual", "group")), name="recipient_type_known"
        ),
        CheckConstraint(
            "parse_mode IS NULL OR parse_mode IN ('HTML', 'MarkdownV2')", name="parse_mode_known"
        ),
        Index("ix_message_history_created_at", "created_at"),
        Index(
            "ix_message_history_due",
            "scheduled_at",
            postgresql_where=text("status IN ('scheduled', 'sending')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_text: Mapped[str] = mapped_column(Text)
    parse_mode: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="scheduled")
    recipient_type: Mapped[str] = mapped_column(Text)
    recipient_group: Mapped[str | None] = mapped_column(Text)
    audience: Mapped[dict[str, Any]] = mapped_column(JSONB)
    total_recipients: Mapped[int] = mapped_column(Integer, server_default="0")
    successful_deliveries: Mapped[int] = mapped_column(Integer, server_default="0")
    failed_deliveries: Mapped[int] = mapped_column(Integer, server_default="0")
    pending_deliveries: Mapped[int] = mapped_column(Integer, server_default="0")
    cancelled_deliveries: Mapped[int] = mapped_column(Integer, server_default="0")
    deleted_deliveries: Mapped[int] = mapped_column(Integer, server_default="0")
    created_by: Mapped[str | None] = mapped_column(Text)
    scheduled_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MessageRecipient(Base):
    __tablename__ = "message_recipients"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id", name="uq_message_recipients_message_id_user_id"),
        CheckConstraint(_in("delivery_status", DELIVERY_STATUSES), name="delivery_status_known"),
        Index("idx_message_recipients_message_id", "message_id"),
        Index("idx_message_recipients_status", "message_id", "delivery_status"),
        Index("idx_message_recipients_user_id", "user_id"),
        Index(
            "ix_message_recipients_claimable",
            "message_id",
            "next_attempt_at",
            postgresql_where=text("delivery_status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("message_history.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(Text)
    delivery_status: Mapped[str] = mapped_column(Text, server_default="pending")
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
