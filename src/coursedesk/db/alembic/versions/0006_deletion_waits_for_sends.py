"""A deletion waits for sends still on their way; its cursor starts below every user_id.

Revision ID: 0006_deletion_waits_for_sends
Revises: 0005_recipient_status_index
Create Date: 2026-12-03 07:40:00.000000

- ix_message_recipients_cancelled_leased on (message_id, lease_expires_at) WHERE a
  recipient is cancelled and still leased: the sends that were on their way when their
  broadcast was cancelled. A deletion of that broadcast is not finished while one of
  them may land; the index answers that from a handful of entries, where the cancelled
  recipients of a million-recipient broadcast would otherwise be read one by one.
- message_history.delete_cursor now holds the lowest user_id not yet queued for
  deletion (NULL once all are), where it held the highest one queued (2^63 - 1 once all
  were) and started at 0, which left recipients with a user_id of 0 or below behind.
  Deletions under way are carried over: one that had queued nothing starts again from
  the lowest bigint.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_deletion_waits_for_sends"
down_revision: str | None = "0005_recipient_status_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_message_recipients_cancelled_leased"
TABLE = "message_recipients"
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1


def upgrade() -> None:
    op.create_index(
        INDEX,
        TABLE,
        ["message_id", "lease_expires_at"],
        postgresql_where="delivery_status = 'cancelled' AND lease_owner IS NOT NULL",
    )
    op.execute(
        f"""
        UPDATE message_history
        SET delete_cursor = CASE delete_cursor
            WHEN {BIGINT_MAX} THEN NULL
            WHEN 0 THEN {BIGINT_MIN}
            ELSE delete_cursor + 1
        END
        WHERE delete_cursor IS NOT NULL
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        UPDATE message_history
        SET delete_cursor = CASE
            WHEN delete_cursor IS NULL THEN {BIGINT_MAX}
            WHEN delete_cursor = {BIGINT_MIN} THEN 0
            ELSE delete_cursor - 1
        END
        WHERE delete_requested_at IS NOT NULL
        """
    )
    op.drop_index(INDEX, table_name=TABLE)
