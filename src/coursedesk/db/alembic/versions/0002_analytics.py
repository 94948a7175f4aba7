"""Analytics summaries kept exact by triggers on the source tables, and user search.

Revision ID: 0002_analytics
Revises: 0001_initial
Create Date: 2026-11-24 09:00:00.000000

The summary tables, and the functions and statement-level triggers that kept them
current inside every write to bookings, events and free_lesson_registrations. The SQL
is frozen in the two files beside this one, as this migration first generated it:
0002_analytics_helpers.sql (bucketing, name grams, the readers of the time counters)
and 0002_analytics_triggers.sql (the triggers, which migration 0007 replaced with a
change log and a fold, and which its downgrade puts back).

This file once generated that SQL itself; CHECKSUMS_OF_EARLIER_TEXT lets `db validate`
accept the checksum recorded by databases migrated with that text.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_analytics"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKSUMS_OF_EARLIER_TEXT = ("5715a8f2ee3b5dd835ea7c0656f75971bccf2259b65c8486b47ee376004545f8",)

HERE = Path(__file__).parent
HELPERS_SQL = HERE / "0002_analytics_helpers.sql"
TRIGGERS_SQL = HERE / "0002_analytics_triggers.sql"

# Written the way PostgreSQL prints them back, so that the schema comparison sees no change.
USER_STATUS_EXPRESSION = (
    "CASE WHEN (confirmed_bookings > 0) THEN 'confirmed'::text "
    "WHEN (pending_bookings > 0) THEN 'pending'::text "
    "WHEN (bookings_count > 0) THEN 'cancelled'::text "
    "ELSE 'no_booking'::text END"
)
NAME_GRAMS_EXPRESSION = "analytics_name_grams(username, first_name)"
SUMMARY_TABLES = (
    "user_summaries",
    "activity_buckets",
    "user_segments",
    "user_funnel",
    "user_retention",
    "course_figures",
    "course_members",
    "stream_figures",
    "stream_members",
    "event_type_figures",
    "event_type_members",
    "referral_figures",
    "referral_members",
    "lesson_figures",
    "lesson_members",
)
TIME_COUNTER_TABLES = ("activity_buckets", "user_funnel", "user_retention")
TRANSITION_OPERATIONS = ("insert", "update", "delete")


def _counter(name: str, kind: sa.types.TypeEngine[int] | None = None) -> sa.Column[int]:
    return sa.Column(name, kind or sa.Integer(), server_default="0", nullable=False)


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, postgresql.TIMESTAMP(timezone=True), nullable=nullable)


def _create_tables() -> None:
    op.create_table(
        "user_summaries",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        _timestamp("username_at"),
        sa.Column("username_row", sa.Integer(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        _timestamp("first_name_at"),
        sa.Column("first_name_row", sa.Integer(), nullable=True),
        _timestamp("first_seen", nullable=False),
        _timestamp("last_seen", nullable=False),
        _counter("bookings_count"),
        _counter("confirmed_bookings"),
        _counter("pending_bookings"),
        _counter("events_count"),
        _counter("lessons_attended"),
        _counter("free_lessons_count"),
        sa.Column("course_stream", sa.Text(), nullable=True),
        _timestamp("stream_booking_at"),
        sa.Column("stream_booking_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Text(),
            sa.Computed(USER_STATUS_EXPRESSION, persisted=True),
            nullable=False,
        ),
        sa.Column(
            "name_grams",
            postgresql.ARRAY(sa.Text()),
            sa.Computed(NAME_GRAMS_EXPRESSION, persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_summaries")),
        # Room on each page for the new row version, so that the frequent updates of
        # last_seen and the counters stay HOT (no index touched).
        postgresql_with={"fillfactor": 85},
    )
    op.create_index(
        "ix_user_summaries_first_seen_user_id", "user_summaries", ["first_seen", "user_id"]
    )
    op.create_index(
        "ix_user_summaries_status_first_seen_user_id",
        "user_summaries",
        ["status", "first_seen", "user_id"],
    )
    op.create_index(
        "ix_user_summaries_course_stream_first_seen_user_id",
        "user_summaries",
        ["course_stream", "first_seen", "user_id"],
    )
    # fastupdate is off: a pending list would be scanned by every search until the next
    # vacuum, and names change far less often than users are searched.
    for column in ("username", "first_name"):
        op.create_index(
            f"ix_user_summaries_{column}_trgm",
            "user_summaries",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        )
    op.create_index(
        "ix_user_summaries_name_grams",
        "user_summaries",
        ["name_grams"],
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    )
    op.create_table(
        "activity_buckets",
        sa.Column("span", sa.SmallInteger(), nullable=False),
        _timestamp("bucket", nullable=False),
        _counter("new_users"),
        _counter("bookings"),
        _counter("events"),
        _counter("free_lesson_registrations"),
        sa.PrimaryKeyConstraint("span", "bucket", name=op.f("pk_activity_buckets")),
    )
    op.create_table(
        "user_segments",
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("course_stream", sa.Text(), nullable=True),
        _counter("users"),
    )
    for table, key in (("user_funnel", "funnel_steps"), ("user_retention", "lifetime_weeks")):
        op.create_table(
            table,
            sa.Column("span", sa.SmallInteger(), nullable=False),
            _timestamp("bucket", nullable=False),
            sa.Column(key, sa.SmallInteger(), nullable=False),
            _counter("users"),
            sa.PrimaryKeyConstraint("span", "bucket", key, name=op.f(f"pk_{table}")),
        )
    booking_counters = ("total_bookings", "confirmed", "pending", "cancelled", "unique_users")
    op.create_table(
        "course_figures",
        sa.Column("course_id", sa.Integer(), nullable=True),
        *(_counter(name) for name in booking_counters),
    )
    op.create_table(
        "course_members",
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        _counter("bookings"),
    )
    op.create_table(
        "stream_figures",
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column("course_stream", sa.Text(), nullable=False),
        *(_counter(name) for name in booking_counters),
    )
    op.create_table(
        "stream_members",
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column("course_stream", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        _counter("bookings"),
    )
    op.create_table(
        "event_type_figures",
        sa.Column("event_type", sa.Text(), nullable=False),
        _counter("events", sa.BigInteger()),
        _counter("unique_users"),
        sa.PrimaryKeyConstraint("event_type", name=op.f("pk_event_type_figures")),
    )
    op.create_table(
        "event_type_members",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        _counter("events"),
        sa.PrimaryKeyConstraint("user_id", "event_type", name=op.f("pk_event_type_members")),
    )
    op.create_table(
        "referral_figures",
        sa.Column("referral_code", sa.Text(), nullable=False),
        _counter("bookings"),
        _counter("confirmed"),
        _counter("unique_users"),
        sa.Column("discount_total", sa.Numeric(), server_default="0", nullable=False),
        _counter("discounted"),
        sa.PrimaryKeyConstraint("referral_code", name=op.f("pk_referral_figures")),
    )
    op.create_table(
        "referral_members",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("referral_code", sa.Text(), nullable=False),
        _counter("bookings"),
        sa.PrimaryKeyConstraint("user_id", "referral_code", name=op.f("pk_referral_members")),
    )
    op.create_table(
        "lesson_figures",
        sa.Column("lesson_type", sa.Text(), nullable=True),
        sa.Column("lesson_date", sa.Date(), nullable=True),
        _counter("registrations"),
        _counter("attendances"),
        _counter("registered_users"),
        _counter("attending_users"),
    )
    op.create_table(
        "lesson_members",
        sa.Column("lesson_type", sa.Text(), nullable=True),
        sa.Column("lesson_date", sa.Date(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        _counter("registrations"),
        _counter("attendances"),
    )
    for table, columns in NULLABLE_KEYS.items():
        op.create_index(
            f"uq_{table}_{'_'.join(columns)}",
            table,
            list(columns),
            unique=True,
            postgresql_nulls_not_distinct=True,
        )


NULLABLE_KEYS = {
    "user_segments": ("status", "course_stream"),
    "course_figures": ("course_id",),
    "course_members": ("user_id", "course_id"),
    "stream_figures": ("course_id", "course_stream"),
    "stream_members": ("user_id", "course_id", "course_stream"),
    "lesson_figures": ("lesson_type", "lesson_date"),
    "lesson_members": ("user_id", "lesson_type", "lesson_date"),
}
SOURCE_TABLES = ("bookings", "events", "free_lesson_registrations")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("""
CREATE FUNCTION analytics_name_grams(username text, first_name text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    grams text[] := '{}';
    name text;
    position integer;
BEGIN
    FOREACH name IN ARRAY ARRAY[lower(username), lower(first_name)] LOOP
        CONTINUE WHEN name IS NULL;
        grams := grams || string_to_array(name, NULL);
        FOR position IN 1 .. length(name) - 1 LOOP
            grams := grams || substr(name, position, 2);
        END LOOP;
    END LOOP;
    RETURN grams;
END
$$
""")
    _create_tables()
    op.execute(HELPERS_SQL.read_text(encoding="utf-8"))
    op.execute(TRIGGERS_SQL.read_text(encoding="utf-8"))
    op.execute("SELECT analytics_rebuild()")


def downgrade() -> None:
    for table in SOURCE_TABLES:
        op.execute(f"DROP TRIGGER {table}_summaries_truncate ON {table}")
        for operation in TRANSITION_OPERATIONS:
            op.execute(f"DROP TRIGGER {table}_summaries_{operation} ON {table}")
            op.execute(f"DROP FUNCTION analytics_{table}_{operation}()")
    op.execute("DROP FUNCTION analytics_rebuild_after_truncate()")
    op.execute("DROP FUNCTION analytics_rebuild()")
    for operation in TRANSITION_OPERATIONS:
        op.execute(f"DROP TRIGGER user_summaries_rollup_{operation} ON user_summaries")
        op.execute(f"DROP FUNCTION analytics_user_summaries_{operation}()")
    for table in TIME_COUNTER_TABLES:
        op.execute(f"DROP FUNCTION analytics_{table}_between(timestamptz[])")
    op.execute("DROP FUNCTION analytics_refresh_users(bigint[])")
    op.execute("DROP FUNCTION analytics_user_from_source(bigint)")
    op.execute("DROP FUNCTION analytics_lesson_date(text)")
    op.execute("DROP FUNCTION analytics_funnel_steps(integer, integer, integer, integer)")
    op.execute("DROP FUNCTION analytics_lifetime_weeks(timestamptz, timestamptz)")
    op.execute("DROP FUNCTION analytics_bucket(timestamptz, smallint)")
    for table in reversed(SUMMARY_TABLES):
        op.drop_table(table)
    op.execute("DROP FUNCTION analytics_name_grams(text, text)")
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
