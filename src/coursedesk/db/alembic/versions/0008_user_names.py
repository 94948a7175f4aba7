"""The searched names move from user_summaries to a table of their own, user_names.

Revision ID: 0008_user_names
Revises: 0007_folded_summaries
Create Date: 2026-12-06 08:30:00.000000

Nearly every row the fold applies updates a user's summary (a count, last_seen), and
such an update cannot be HOT when a booking changes an indexed column, so it wrote new
entries into user_summaries' three GIN indexes (username and first_name trigrams, name
grams) although no name had changed: most of the fold's time. The names and those
indexes now live in user_names, which the fold writes only when a name changes.

The fold lock is held throughout, so no batch is folded between the copy of the names
and the new fold functions.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from coursedesk.analytics.install import apply_install_scripts, run_script

revision: str = "0008_user_names"
down_revision: str | None = "0007_folded_summaries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_GRAMS_EXPRESSION = "analytics_name_grams(username, first_name)"
PREVIOUS_FUNCTIONS = Path(__file__).with_name("0008_user_names_previous.sql")
FOLD_LOCK = "LOCK TABLE analytics_fold_state IN EXCLUSIVE MODE"


def _create_name_indexes(table: str) -> None:
    # fastupdate is off: a pending list would be scanned by every search until the next
    # vacuum, and names change far less often than users are searched.
    for column in ("username", "first_name"):
        op.create_index(
            f"ix_{table}_{column}_trgm",
            table,
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        )
    op.create_index(
        f"ix_{table}_name_grams",
        table,
        ["name_grams"],
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    )


def _drop_name_indexes(table: str) -> None:
    for index in ("username_trgm", "first_name_trgm", "name_grams"):
        op.drop_index(f"ix_{table}_{index}", table_name=table)


def upgrade() -> None:
    op.execute(FOLD_LOCK)
    op.create_table(
        "user_names",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column(
            "name_grams",
            postgresql.ARRAY(sa.Text()),
            sa.Computed(NAME_GRAMS_EXPRESSION, persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_names")),
    )
    op.execute(
        "INSERT INTO user_names (user_id, username, first_name) "
        "SELECT user_id, username, first_name FROM user_summaries "
        "WHERE username IS NOT NULL OR first_name IS NOT NULL"
    )
    _create_name_indexes("user_names")
    _drop_name_indexes("user_summaries")
    op.drop_column("user_summaries", "name_grams")
    apply_install_scripts(op.get_bind())


def downgrade() -> None:
    op.execute(FOLD_LOCK)
    op.add_column(
        "user_summaries",
        sa.Column(
            "name_grams",
            postgresql.ARRAY(sa.Text()),
            sa.Computed(NAME_GRAMS_EXPRESSION, persisted=True),
            nullable=False,
        ),
    )
    _create_name_indexes("user_summaries")
    op.execute("DROP VIEW analytics_expected_user_names")
    run_script(op.get_bind(), PREVIOUS_FUNCTIONS.read_text(encoding="utf-8"))
    op.drop_table("user_names")
