"""Inline buttons, message options and pins of broadcasts.

Revision ID: 0012_broadcast_buttons_and_pins
Revises: 0011_broadcast_media
Create Date: 2026-12-08 12:00:00.000000

- message_history.buttons: the rows of inline buttons under each message (jsonb, as the
  request gave them; a callback button's data goes out prefixed with the broadcast's id).
- message_history.disable_link_preview, protect_content, silent, pin: the message's
  options, false unless asked for.
- message_recipients.pinned_at / pin_error: when a delivered message was pinned in its
  chat, or why it could not be.
All are added without a rewrite: nullable, or with a constant default.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_broadcast_buttons_and_pins"
down_revision: str | None = "0011_broadcast_media"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPTIONS = ("disable_link_preview", "protect_content", "silent", "pin")


def upgrade() -> None:
    op.add_column(
        "message_history",
        sa.Column("buttons", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    for option in OPTIONS:
        op.add_column(
            "message_history",
            sa.Column(option, sa.Boolean(), server_default=sa.false(), nullable=False),
        )
    op.add_column(
        "message_recipients",
        sa.Column("pinned_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
    )
    op.add_column("message_recipients", sa.Column("pin_error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("message_recipients", "pin_error")
    op.drop_column("message_recipients", "pinned_at")
    for option in reversed(OPTIONS):
        op.drop_column("message_history", option)
    op.drop_column("message_history", "buttons")
