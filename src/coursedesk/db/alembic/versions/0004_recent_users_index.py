"""The first_seen index of user_summaries carries username and first_name.

Revision ID: 0004_recent_users_index
Revises: 0003_broadcasting
Create Date: 2026-11-23 17:40:00.000000

A search looks for its page among the most recent users first. With the names in the
first_seen index, that look is an index-only scan: a rare term, which fills no page
there, no longer reads ten thousand rows of the table before the trigram indexes
answer it. Both columns have indexes of their own already, so an update that was HOT
(no index touched) still is.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_recent_users_index"
down_revision: str | None = "0003_broadcasting"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_user_summaries_first_seen_user_id"
TABLE = "user_summaries"


def upgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(
        INDEX, TABLE, ["first_seen", "user_id"], postgresql_include=["username", "first_name"]
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(INDEX, TABLE, ["first_seen", "user_id"])
