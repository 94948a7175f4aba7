"""A broadcast's recipients by status come from an index again; analytics_rebuild() is
not JIT-compiled.

Revision ID: 0005_recipient_status_index
Revises: 0004_recent_users_index
Create Date: 2026-12-03 07:00:00.000000

- idx_message_recipients_status on (message_id, delivery_status, user_id): a page of one
  status (the failed ones, say) in user_id order is read straight from the index. With
  only the unique (message_id, user_id) index, the forty failed recipients of a
  million-recipient broadcast were found by walking all million entries and their rows.
  idx_message_recipients_message_id stays dropped: the unique index leads with
  message_id and serves every lookup by message alone.
- analytics_rebuild() sets jit = off for its own statements. On a server built with JIT
  (most packaged PostgreSQL), the rebuild's aggregates are costed far above
  jit_above_cost, and compiling them took longer than it saved: a 100,000-user rebuild
  took 10.2–10.9 s with JIT and 8.9–9.1 s without on PostgreSQL 15 (its user pass
  3.3–3.5 s against 2.1–2.2 s).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_recipient_status_index"
down_revision: str | None = "0004_recent_users_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "idx_message_recipients_status"
TABLE = "message_recipients"


def upgrade() -> None:
    op.create_index(INDEX, TABLE, ["message_id", "delivery_status", "user_id"])
    op.execute("ALTER FUNCTION analytics_rebuild() SET jit = off")


def downgrade() -> None:
    op.execute("ALTER FUNCTION analytics_rebuild() RESET jit")
    op.drop_index(INDEX, table_name=TABLE)
