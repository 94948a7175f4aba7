"""Idempotency keys of broadcast requests: one broadcast per key, however often it is sent.

Revision ID: 0010_broadcast_request_keys
Revises: 0009_script_role
Create Date: 2026-12-06 09:30:00.000000

- broadcast_request_keys holds each Idempotency-Key a staff account sent
  POST /api/messages/send with (the composer's confirm form sends one too), the hash of
  the request and the answer it got, for 24 hours (docs/reference.md §9). Its primary
  key (account, key) is what makes two requests with one key, arriving together, create
  one broadcast.
- It is bookkeeping, like broadcast_sender_state: the role db-migrate's scripts run as
  (0009) is given no right on it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_broadcast_request_keys"
down_revision: str | None = "0009_script_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcast_request_keys",
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "length(idempotency_key) BETWEEN 1 AND 255",
            name=op.f("ck_broadcast_request_keys_key_length"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message_history.id"],
            name=op.f("fk_broadcast_request_keys_message_id_message_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "account", "idempotency_key", name=op.f("pk_broadcast_request_keys")
        ),
    )


def downgrade() -> None:
    op.drop_table("broadcast_request_keys")
