"""The bot's writes come first: summaries folded from a change log, not kept in triggers.

Revision ID: 0007_folded_summaries
Revises: 0006_deletion_waits_for_sends
Create Date: 2026-12-06 06:00:00.000000

The triggers of 0002 updated shared counter rows inside every bot statement, so bot
transactions about different users waited on each other and deadlocked. They are
replaced by row-level capture triggers that only append each changed row, as jsonb, to
analytics_changes (no key, no index), and by analytics_fold(), which one coursedesk process at a time
runs every second or so to turn those rows into the summaries
(analytics/sql/install/).

The switch happens in this migration's transaction, which holds the source tables
against writers while their triggers change: every write before it was counted by the
old triggers, every write after it is captured, so the summaries need no rebuild.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from coursedesk.analytics.install import apply_install_scripts

revision: str = "0007_folded_summaries"
down_revision: str | None = "0006_deletion_waits_for_sends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SOURCE_TABLES = ("bookings", "events", "free_lesson_registrations")
OPERATIONS = ("insert", "update", "delete")
TRIGGERS_0002 = Path(__file__).parent / "0002_analytics_triggers.sql"
CAPTURE_FUNCTIONS = (
    "analytics_capture_insert()",
    "analytics_capture_update()",
    "analytics_capture_delete()",
    "analytics_capture_truncate()",
)
FOLD_FUNCTIONS = (
    "analytics_fold(integer)",
    "analytics_fold_users()",
    "analytics_fold_user_rollups()",
    "analytics_fold_activity()",
    "analytics_fold_courses()",
    "analytics_fold_streams()",
    "analytics_fold_referrals()",
    "analytics_fold_event_types()",
    "analytics_fold_lessons()",
    "analytics_prepare_fold()",
    "analytics_read_taken()",
    "analytics_require_fold_lock()",
    "analytics_record_fold(integer)",
    "analytics_is_newer(timestamptz, integer, timestamptz, integer)",
    "analytics_membership_change(integer, integer)",
)
EXPECTED_VIEWS = (
    "analytics_expected_lesson_figures",
    "analytics_expected_lesson_members",
    "analytics_lesson_rows",
    "analytics_expected_event_type_figures",
    "analytics_expected_event_type_members",
    "analytics_expected_referral_figures",
    "analytics_expected_referral_members",
    "analytics_expected_stream_figures",
    "analytics_expected_stream_members",
    "analytics_expected_course_figures",
    "analytics_expected_course_members",
    "analytics_expected_user_retention",
    "analytics_expected_user_funnel",
    "analytics_expected_activity_buckets",
    "analytics_expected_user_segments",
    "analytics_expected_users",
)


def _drop_0002_triggers() -> None:
    for table in SOURCE_TABLES:
        op.execute(f"DROP TRIGGER {table}_summaries_truncate ON {table}")
        for operation in OPERATIONS:
            op.execute(f"DROP TRIGGER {table}_summaries_{operation} ON {table}")
            op.execute(f"DROP FUNCTION analytics_{table}_{operation}()")
    op.execute("DROP FUNCTION analytics_rebuild_after_truncate()")
    for operation in OPERATIONS:
        op.execute(f"DROP TRIGGER user_summaries_rollup_{operation} ON user_summaries")
        op.execute(f"DROP FUNCTION analytics_user_summaries_{operation}()")
    op.execute("DROP FUNCTION analytics_refresh_users(bigint[])")
    op.execute("DROP FUNCTION analytics_rebuild()")


def upgrade() -> None:
    op.create_table(
        "analytics_changes",
        sa.Column(
            "captured_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("statement_timestamp()"),
            nullable=False,
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sign", sa.SmallInteger(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        # Rows live for about a second: vacuum it by dead rows, not by a share of its size.
        postgresql_with={
            "autovacuum_vacuum_scale_factor": 0,
            "autovacuum_vacuum_threshold": 10000,
        },
    )
    op.create_table(
        "analytics_fold_state",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("folder", sa.Text(), nullable=True),
        sa.Column("folder_since", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("folded_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("folded_rows", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_analytics_fold_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_fold_state")),
    )
    op.execute("INSERT INTO analytics_fold_state (id) VALUES (1)")
    _drop_0002_triggers()
    apply_install_scripts(op.get_bind())


def downgrade() -> None:
    for table in SOURCE_TABLES:
        for operation in (*OPERATIONS, "truncate"):
            op.execute(f"DROP TRIGGER {table}_capture_{operation} ON {table}")
    for function in CAPTURE_FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    op.execute("DROP FUNCTION analytics_rebuild()")
    for function in FOLD_FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    for view in EXPECTED_VIEWS:
        op.execute(f"DROP VIEW {view}")
    op.drop_table("analytics_fold_state")
    op.drop_table("analytics_changes")
    op.execute(TRIGGERS_0002.read_text(encoding="utf-8"))
    op.execute("ALTER FUNCTION analytics_rebuild() SET jit = off")
    # Changes still waiting in the log when it was dropped are counted by the rebuild.
    op.execute("SELECT analytics_rebuild()")
