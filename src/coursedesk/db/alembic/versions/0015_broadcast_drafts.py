"""Drafts of broadcasts that staff keep to finish later.

Revision ID: 0015_broadcast_drafts
Revises: 0014_broadcast_holdout
Create Date: 2026-12-10 10:00:00.000000

- broadcast_drafts: one composition a staff user saved (its fields as the composer holds
  them, jsonb), with a version that every save moves on, so that a save made on an
  older version (another tab) is refused rather than silently overwriting the newer one.
  A draft goes with its owner.
- The role db-migrate's scripts run as (0009) is given no right on the new table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_broadcast_drafts"
down_revision: str | None = "0014_broadcast_holdout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcast_drafts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_broadcast_drafts_version_positive")),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["staff_users.id"],
            name=op.f("fk_broadcast_drafts_owner_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_drafts")),
    )
    op.create_index(
        "ix_broadcast_drafts_owner_id_updated_at",
        "broadcast_drafts",
        ["owner_id", "updated_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_broadcast_drafts_owner_id_updated_at", table_name="broadcast_drafts")
    op.drop_table("broadcast_drafts")
