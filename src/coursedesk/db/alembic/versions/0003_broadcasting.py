"""Broadcasting: the shared send pacer, the deletion queue, and leaner recipient indexes.

Revision ID: 0003_broadcasting
Revises: 0002_analytics
Create Date: 2026-11-25 10:00:00.000000

- broadcast_sender_state is one row that every worker on every host updates to take
  send slots: the next free slot and the pause Telegram asked for with a 429, so that
  all workers together keep BROADCAST_RATE and all of them pause.
- message_deletions holds the recipients whose message is being removed from the
  chats; workers claim its rows as they claim pending recipients.
- idx_message_recipients_message_id repeats the leading column of the unique
  (message_id, user_id) index, and idx_message_recipients_status is replaced by the
  exact counters on message_history and a scan of that unique index: dropping both
  makes creating a large audience and every delivery update cheaper.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_broadcasting"
down_revision: str | None = "0002_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcast_sender_state",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "next_slot_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "paused_until",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_broadcast_sender_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_sender_state")),
    )
    op.execute("INSERT INTO broadcast_sender_state (id) VALUES (1)")
    op.create_table(
        "message_deletions",
        sa.Column("recipient_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message_history.id"],
            name=op.f("fk_message_deletions_message_id_message_history"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["message_recipients.id"],
            name=op.f("fk_message_deletions_recipient_id_message_recipients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recipient_id", name=op.f("pk_message_deletions")),
    )
    op.create_index(
        "ix_message_deletions_message_id_next_attempt_at",
        "message_deletions",
        ["message_id", "next_attempt_at"],
        unique=False,
    )
    op.add_column(
        "message_history",
        sa.Column("delete_requested_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
    )
    op.add_column("message_history", sa.Column("delete_cursor", sa.BigInteger(), nullable=True))
    op.add_column(
        "message_history",
        sa.Column("delete_refused", sa.Integer(), server_default="0", nullable=False),
    )
    op.drop_index("idx_message_recipients_message_id", table_name="message_recipients")
    op.drop_index("idx_message_recipients_status", table_name="message_recipients")


def downgrade() -> None:
    op.create_index(
        "idx_message_recipients_status",
        "message_recipients",
        ["message_id", "delivery_status"],
        unique=False,
    )
    op.create_index(
        "idx_message_recipients_message_id", "message_recipients", ["message_id"], unique=False
    )
    op.drop_column("message_history", "delete_refused")
    op.drop_column("message_history", "delete_cursor")
    op.drop_column("message_history", "delete_requested_at")
    op.drop_index("ix_message_deletions_message_id_next_attempt_at", table_name="message_deletions")
    op.drop_table("message_deletions")
    op.drop_table("broadcast_sender_state")
