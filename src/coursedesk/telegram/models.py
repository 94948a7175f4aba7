"""What coursedesk learns about bot users from Telegram itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Text, false, func, text
from sqlalchemy.orm import Mapped, mapped_column

from coursedesk.db.base import Base


class BotUser(Base):
    """A Telegram user's current profile and whether they have blocked the bot."""

    __tablename__ = "bot_users"
    __table_args__ = (
        # Who blocked the bot when, for a broadcast's outcome (broadcasts/sql/earnings.sql).
        Index(
            "ix_bot_users_blocked_at",
            "blocked_at",
            postgresql_include=["user_id"],
            postgresql_where=text("is_blocked"),
        ),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    is_blocked: Mapped[bool] = mapped_column(Boolean, server_default=false())
    blocked_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TelegramUpdate(Base):
    """Each webhook update seen, so a redelivered update_id is recorded once."""

    __tablename__ = "telegram_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    update_type: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
