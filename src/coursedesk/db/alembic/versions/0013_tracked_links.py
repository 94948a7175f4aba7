"""Tracked links of broadcasts: the links each broadcast sends and who clicked them.

Revision ID: 0013_tracked_links
Revises: 0012_broadcast_buttons_and_pins
Create Date: 2026-12-09 09:00:00.000000

- message_history.track_links: whether the broadcast's links go out through /r/{token}.
- broadcast_links: every http(s) link of a tracked broadcast (in its text, caption and URL
  buttons), numbered by position; a redirect only ever leads to one of these.
- broadcast_clicks: one row per recipient and link that was clicked: when first and last,
  and how many times. The (recipient_id, position) key is what counts a recipient's click
  on a link once however often it is repeated.
- link_token_keys: the one secret the tokens of /r/{token} are signed with, made here at
  random, so every process on every host issues and checks the same tokens and none has to
  be stored per recipient.
- The role db-migrate's scripts run as (0009) is given no right on the new tables.
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_tracked_links"
down_revision: str | None = "0012_broadcast_buttons_and_pins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "message_history",
        sa.Column("track_links", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "broadcast_links",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.CheckConstraint("position >= 0", name=op.f("ck_broadcast_links_position_positive")),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message_history.id"],
            name=op.f("fk_broadcast_links_message_id_message_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "position", name=op.f("pk_broadcast_links")),
    )
    op.create_table(
        "broadcast_clicks",
        sa.Column("recipient_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column(
            "first_clicked_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_clicked_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("clicks", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint("clicks >= 1", name=op.f("ck_broadcast_clicks_clicks_positive")),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["message_recipients.id"],
            name=op.f("fk_broadcast_clicks_recipient_id_message_recipients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id", "position"],
            ["broadcast_links.message_id", "broadcast_links.position"],
            name=op.f("fk_broadcast_clicks_message_id_broadcast_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recipient_id", "position", name=op.f("pk_broadcast_clicks")),
    )
    op.create_index(
        "ix_broadcast_clicks_message_id_recipient_id",
        "broadcast_clicks",
        ["message_id", "recipient_id"],
    )
    op.create_table(
        "link_token_keys",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("secret", postgresql.BYTEA(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_link_token_keys_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_token_keys")),
    )
    keys = sa.table("link_token_keys", sa.column("id"), sa.column("secret"))
    op.bulk_insert(keys, [{"id": 1, "secret": secrets.token_bytes(32)}])


def downgrade() -> None:
    op.drop_table("link_token_keys")
    op.drop_index("ix_broadcast_clicks_message_id_recipient_id", table_name="broadcast_clicks")
    op.drop_table("broadcast_clicks")
    op.drop_table("broadcast_links")
    op.drop_column("message_history", "track_links")
