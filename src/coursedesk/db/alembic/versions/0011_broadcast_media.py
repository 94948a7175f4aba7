"""Media for broadcasts: uploaded files, their bytes in slices, and what each broadcast sends.

Revision ID: 0011_broadcast_media
Revises: 0010_broadcast_request_keys
Create Date: 2026-12-08 09:00:00.000000

- media_files: one row per file staff uploaded (POST /api/media): its kind, read from its
  first bytes, name, type, size and SHA-256.
- media_chunks: the file's bytes in slices of up to 1 MiB, keyed by (media_id, seq), so
  that an upload is written as it streams in and a worker reads it back a slice at a
  time. Stored EXTERNAL (out of line, never compressed): photos and videos are
  compressed already, and compressing them again only costs CPU.
- broadcast_media: the files a broadcast sends, in album order, each with the kind it is
  sent as and, once a send has uploaded it, the file_id Telegram gave it, which every
  other recipient is sent instead of the bytes.
- message_history.media_upload_owner / media_upload_expires_at: the worker uploading a
  broadcast's files while no file_id is known; the others wait for its file_ids.
- The role db-migrate's scripts run as (0009) is given no right on the new tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_broadcast_media"
down_revision: str | None = "0010_broadcast_request_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "kind IN ('photo', 'video', 'animation', 'document')"


def upgrade() -> None:
    op.create_table(
        "media_files",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("mime_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(KINDS, name=op.f("ck_media_files_kind_known")),
        sa.CheckConstraint(
            "size BETWEEN 0 AND 52428800", name=op.f("ck_media_files_size_in_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_files")),
    )
    op.create_table(
        "media_chunks",
        sa.Column("media_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", postgresql.BYTEA(), nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media_files.id"],
            name=op.f("fk_media_chunks_media_id_media_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("media_id", "seq", name=op.f("pk_media_chunks")),
    )
    op.execute("ALTER TABLE media_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
    op.create_table(
        "broadcast_media",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("media_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("file_id", sa.Text(), nullable=True),
        sa.CheckConstraint(KINDS, name=op.f("ck_broadcast_media_kind_known")),
        sa.CheckConstraint(
            "position BETWEEN 0 AND 9", name=op.f("ck_broadcast_media_position_in_album")
        ),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media_files.id"],
            name=op.f("fk_broadcast_media_media_id_media_files"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message_history.id"],
            name=op.f("fk_broadcast_media_message_id_message_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "position", name=op.f("pk_broadcast_media")),
    )
    op.create_index("ix_broadcast_media_media_id", "broadcast_media", ["media_id"])
    op.add_column("message_history", sa.Column("media_upload_owner", sa.Text(), nullable=True))
    op.add_column(
        "message_history",
        sa.Column("media_upload_expires_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("message_history", "media_upload_expires_at")
    op.drop_column("message_history", "media_upload_owner")
    op.drop_index("ix_broadcast_media_media_id", table_name="broadcast_media")
    op.drop_table("broadcast_media")
    op.drop_table("media_chunks")
    op.drop_table("media_files")
