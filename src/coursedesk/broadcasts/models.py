"""Broadcast messages, one row per recipient with its delivery state, and the sender's state.

The delivery figures on message_history are kept by a statement-level trigger on
message_recipients (migration 0001), so they always agree with the recipient rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coursedesk.db.base import Base

MessageStatus = Literal["scheduled", "sending", "sent", "cancelled"]
DeliveryStatus = Literal["pending", "sent", "failed", "cancelled", "deleted", "holdout"]
MediaKind = Literal["photo", "video", "animation", "document"]
MESSAGE_STATUSES: tuple[str, ...] = get_args(MessageStatus)
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
MEDIA_KINDS: tuple[str, ...] = get_args(MediaKind)
MAX_HOLDOUT_PERCENT = 50
"""The largest control group: half the audience."""
MAX_MEDIA_BYTES = 50 * 1024 * 1024
"""Telegram's limit on a file a bot uploads (a photo's is 10 MB, broadcasts/sniffing.py)."""


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
        CheckConstraint(
            f"holdout_percent BETWEEN 0 AND {MAX_HOLDOUT_PERCENT}", name="holdout_percent_range"
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
    delete_requested_at: Mapped[datetime | None]
    delete_cursor: Mapped[int | None] = mapped_column(BigInteger)
    """While deleting: the lowest user_id not yet queued for deletion; NULL once all are."""
    delete_refused: Mapped[int] = mapped_column(Integer, server_default="0")
    """Delivered messages Telegram would not delete (too old, chat gone)."""
    buttons: Mapped[list[list[dict[str, str]]] | None] = mapped_column(JSONB)
    """Rows of inline buttons under each message, as given (broadcasts/composition.py)."""
    disable_link_preview: Mapped[bool] = mapped_column(Boolean, server_default=false())
    protect_content: Mapped[bool] = mapped_column(Boolean, server_default=false())
    silent: Mapped[bool] = mapped_column(Boolean, server_default=false())
    pin: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """Pin each delivered message in its chat."""
    media_upload_owner: Mapped[str | None] = mapped_column(Text)
    """The worker uploading the broadcast's media to Telegram while no file_id is known
    (broadcasts/contents.py): the others send nothing of it meanwhile."""
    media_upload_expires_at: Mapped[datetime | None]
    track_links: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """Its links go out through /r/{token}, one token per recipient and link."""
    holdout_percent: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    """The share of the audience drawn at random and never sent: the control group."""
    holdout_count: Mapped[int] = mapped_column(Integer, server_default="0")
    """Recipients in the control group (delivery_status `holdout`)."""


class MessageRecipient(Base):
    __tablename__ = "message_recipients"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id", name="uq_message_recipients_message_id_user_id"),
        CheckConstraint(_in("delivery_status", DELIVERY_STATUSES), name="delivery_status_known"),
        Index("idx_message_recipients_user_id", "user_id"),
        # With sent_at and id, the outcome's groups are read from the index alone
        # (broadcasts/sql/earnings.sql).
        Index(
            "idx_message_recipients_status",
            "message_id",
            "delivery_status",
            "user_id",
            postgresql_include=["sent_at", "id"],
        ),
        Index(
            "ix_message_recipients_claimable",
            "message_id",
            "next_attempt_at",
            postgresql_where=text("delivery_status = 'pending'"),
        ),
        Index(
            "ix_message_recipients_cancelled_leased",
            "message_id",
            "lease_expires_at",
            postgresql_where=text("delivery_status = 'cancelled' AND lease_owner IS NOT NULL"),
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
    pinned_at: Mapped[datetime | None]
    pin_error: Mapped[str | None] = mapped_column(Text)
    """Why the delivered message of a broadcast with `pin` is not pinned."""


class MessageDeletion(Base):
    """A delivered message waiting to be deleted from its chat; claimed like a recipient."""

    __tablename__ = "message_deletions"
    __table_args__ = (
        Index("ix_message_deletions_message_id_next_attempt_at", "message_id", "next_attempt_at"),
    )

    recipient_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("message_recipients.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    message_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("message_history.id", ondelete="CASCADE")
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    lease_owner: Mapped[str | None] = mapped_column(Text)


class SenderState(Base):
    """The one row all workers share: the next free send slot and Telegram's pause."""

    __tablename__ = "broadcast_sender_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    next_slot_at: Mapped[datetime] = mapped_column(server_default=func.now())
    paused_until: Mapped[datetime] = mapped_column(server_default=func.now())


class SendRequestKey(Base):
    """An Idempotency-Key a staff account sent a broadcast with, and the answer it got.

    The (account, key) primary key is what makes two requests with one key create one
    broadcast (broadcasts/idempotency.py). message_id is null only inside the
    transaction that claimed the key and is creating the broadcast.
    """

    __tablename__ = "broadcast_request_keys"
    __table_args__ = (
        CheckConstraint("length(idempotency_key) BETWEEN 1 AND 255", name="key_length"),
    )

    account: Mapped[str] = mapped_column(Text, primary_key=True)
    """`user:ID` or `token:ID`: keys of one staff user or token never meet another's."""
    idempotency_key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(Text)
    """SHA-256 of the request in canonical JSON: the same key with another body is a 409."""
    message_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("message_history.id", ondelete="CASCADE")
    )
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MediaFile(Base):
    """A file staff uploaded to send with broadcasts; its bytes are in media_chunks."""

    __tablename__ = "media_files"
    __table_args__ = (
        CheckConstraint(_in("kind", MEDIA_KINDS), name="kind_known"),
        CheckConstraint(f"size BETWEEN 0 AND {MAX_MEDIA_BYTES}", name="size_in_range"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    """What its content is (photo, video, animation, document), from its first bytes."""
    filename: Mapped[str] = mapped_column(Text)
    mime_type: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MediaChunk(Base):
    """One slice of a media file's bytes, in order of `seq` (broadcasts/media.py).

    Slices, not one value: a file is written as it streams in and read back a slice at a
    time, so neither side holds more than a slice of it beyond the file itself. Stored
    uncompressed (migration 0011): photos and videos are compressed already.
    """

    __tablename__ = "media_chunks"

    media_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("media_files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(BYTEA)


class BroadcastMedia(Base):
    """A file a broadcast sends, in its place in the album, and the file_id that sends it.

    file_id is written in the transaction that records the first delivery that uploaded
    the file; every later send uses it (broadcasts/contents.py).
    """

    __tablename__ = "broadcast_media"
    __table_args__ = (
        CheckConstraint(_in("kind", MEDIA_KINDS), name="kind_known"),
        CheckConstraint("position BETWEEN 0 AND 9", name="position_in_album"),
        Index("ix_broadcast_media_media_id", "media_id"),
    )

    message_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("message_history.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    media_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("media_files.id"))
    kind: Mapped[str] = mapped_column(Text)
    """What it is sent as: the file's kind, or one it may also go as (a video as a document)."""
    file_id: Mapped[str | None] = mapped_column(Text)


class BroadcastLink(Base):
    """An http(s) link a tracked broadcast sends, in its text, caption or URL buttons.

    A click's redirect leads only to one of these (docs/reference.md §8).
    """

    __tablename__ = "broadcast_links"
    __table_args__ = (CheckConstraint("position >= 0", name="position_positive"),)

    message_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("message_history.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    url: Mapped[str] = mapped_column(Text)


class BroadcastClick(Base):
    """A recipient's clicks on one link of a broadcast: the key counts them once."""

    __tablename__ = "broadcast_clicks"
    __table_args__ = (
        CheckConstraint("clicks >= 1", name="clicks_positive"),
        ForeignKeyConstraint(
            ["message_id", "position"],
            ["broadcast_links.message_id", "broadcast_links.position"],
            ondelete="CASCADE",
        ),
        Index("ix_broadcast_clicks_message_id_recipient_id", "message_id", "recipient_id"),
    )

    recipient_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("message_recipients.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(Integer)
    first_clicked_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_clicked_at: Mapped[datetime] = mapped_column(server_default=func.now())
    clicks: Mapped[int] = mapped_column(Integer, server_default="1")


class LinkTokenKey(Base):
    """The secret /r/{token} tokens are signed with; one row, made by migration 0013."""

    __tablename__ = "link_token_keys"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    secret: Mapped[bytes] = mapped_column(BYTEA)


class BroadcastDraft(Base):
    """A composition a staff user kept to finish later (broadcasts/drafts.py).

    `fields` holds the composer's fields as they were saved; `version` moves on with every
    save, and a save must name the version it was made on.
    """

    __tablename__ = "broadcast_drafts"
    __table_args__ = (
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_broadcast_drafts_owner_id_updated_at", "owner_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, ForeignKey("staff_users.id", ondelete="CASCADE"))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
