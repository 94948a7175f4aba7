"""Drift: each summary table compared with what the source tables say it should hold.

`coursedesk db verify` runs this in one REPEATABLE READ transaction under the fold lock:
it first folds every pending change (in its own transaction, rolled back at the end), so
summaries and source tables are compared at one snapshot. The expected rows come from
the views of analytics/sql/install/2_expected.sql, the same ones a rebuild loads; a
counter row that fell back to zero is not a difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from coursedesk.analytics.folding import FOLD, NO_STATEMENT_TIMEOUT, REPEATABLE_READ, fold_in
from coursedesk.db.registry import metadata


@dataclass(frozen=True)
class SummaryTable:
    """A summary table, its identifying columns and the view that defines it."""

    table: str
    keys: tuple[str, ...]
    values: tuple[str, ...]  # the columns compared besides the keys
    # Whether every row is compared (a table of values), not only those with a counter
    # that is not zero.
    every_row: bool = False

    @property
    def nullable_keys(self) -> bool:
        """Whether a key column may be null (course_id, lesson_date, …): such a key cannot
        be joined on by hash, so the table is compared row by row with EXCEPT instead."""
        columns = metadata().tables[self.table].c
        return any(columns[key].nullable for key in self.keys)

    @property
    def expected_view(self) -> str:
        if self.table == "user_summaries":
            return "analytics_expected_users"
        return f"analytics_expected_{self.table}"


USER_COLUMNS = (
    "username",
    "username_at",
    "username_row",
    "first_name",
    "first_name_at",
    "first_name_row",
    "first_seen",
    "last_seen",
    "bookings_count",
    "confirmed_bookings",
    "pending_bookings",
    "events_count",
    "lessons_attended",
    "free_lessons_count",
    "course_stream",
    "stream_booking_at",
    "stream_booking_id",
)
BOOKING_COUNTERS = ("total_bookings", "confirmed", "pending", "cancelled", "unique_users")

# In the order they are checked: the names and the per-user rollups read user_summaries,
# so it comes first.
SUMMARY_TABLES = (
    SummaryTable("user_summaries", ("user_id",), USER_COLUMNS, every_row=True),
    SummaryTable("user_names", ("user_id",), ("username", "first_name"), every_row=True),
    SummaryTable("user_segments", ("status", "course_stream"), ("users",)),
    SummaryTable(
        "activity_buckets",
        ("span", "bucket"),
        ("new_users", "bookings", "events", "free_lesson_registrations"),
    ),
    SummaryTable("user_funnel", ("span", "bucket", "funnel_steps"), ("users",)),
    SummaryTable("user_retention", ("span", "bucket", "lifetime_weeks"), ("users",)),
    SummaryTable("course_figures", ("course_id",), BOOKING_COUNTERS),
    SummaryTable("course_members", ("course_id", "user_id"), ("bookings",)),
    SummaryTable("stream_figures", ("course_id", "course_stream"), BOOKING_COUNTERS),
    SummaryTable("stream_members", ("course_id", "course_stream", "user_id"), ("bookings",)),
    SummaryTable(
        "referral_figures",
        ("referral_code",),
        ("bookings", "confirmed", "unique_users", "discount_total", "discounted"),
    ),
    SummaryTable("referral_members", ("user_id", "referral_code"), ("bookings",)),
    SummaryTable("event_type_figures", ("event_type",), ("events", "unique_users")),
    SummaryTable("event_type_members", ("user_id", "event_type"), ("events",)),
    SummaryTable(
        "lesson_figures",
        ("lesson_type", "lesson_date"),
        ("registrations", "attendances", "registered_users", "attending_users"),
    ),
    SummaryTable(
        "lesson_members",
        ("lesson_type", "lesson_date", "user_id"),
        ("registrations", "attendances"),
    ),
)


@dataclass(frozen=True)
class Drift:
    """How one summary table differs from the source tables."""

    table: str
    missing: int  # rows the source tables call for that the summary lacks or holds otherwise
    extra: int  # summary rows the source tables do not call for
    expected_example: str | None
    found_example: str | None

    def describe(self) -> str:
        parts = [f"{self.table} differs from the source tables"]
        if self.missing:
            parts.append(f"{self.missing} expected rows missing or different")
        if self.extra:
            parts.append(f"{self.extra} rows not expected")
        detail = ", ".join(parts[1:])
        example = []
        if self.expected_example:
            example.append(f"expected {self.expected_example}")
        if self.found_example:
            example.append(f"found {self.found_example}")
        columns = f" ({'; '.join(example)})" if example else ""
        return f"{parts[0]}: {detail}{columns}"


def _comparison(summary: SummaryTable) -> str:
    """One statement answering how many expected rows are missing or differ, how many
    found rows are not expected, and an example of each."""
    columns = ", ".join((*summary.keys, *summary.values))
    if summary.every_row:
        found = f"SELECT {columns} FROM {summary.table}"
    else:
        nonzero = " OR ".join(f"{value} <> 0" for value in summary.values)
        found = f"SELECT {columns} FROM {summary.table} WHERE {nonzero}"
    expected = f"SELECT {columns} FROM {summary.expected_view}"
    if summary.nullable_keys:
        return f"""
            WITH expected AS ({expected}), found AS ({found}),
            missing AS (SELECT * FROM expected EXCEPT ALL SELECT * FROM found),
            extra AS (SELECT * FROM found EXCEPT ALL SELECT * FROM expected)
            SELECT (SELECT count(*) FROM missing) AS missing,
                   (SELECT count(*) FROM extra) AS extra,
                   (SELECT min(m::text) FROM missing AS m) AS expected_example,
                   (SELECT min(x::text) FROM extra AS x) AS found_example
        """
    key = summary.keys[0]
    return f"""
        WITH expected AS ({expected}), found AS ({found}),
        differing AS (
            SELECT CASE WHEN e.{key} IS NOT NULL THEN e END AS expected_row,
                   CASE WHEN f.{key} IS NOT NULL THEN f END AS found_row
            FROM expected AS e FULL JOIN found AS f USING ({", ".join(summary.keys)})
            WHERE e IS DISTINCT FROM f
        )
        SELECT count(expected_row) AS missing, count(found_row) AS extra,
               min(expected_row::text) AS expected_example,
               min(found_row::text) AS found_example
        FROM differing
    """


def compare_summaries(connection: Connection) -> list[Drift]:
    """Every summary table that differs from the source tables, in the caller's snapshot."""
    drifts = []
    for summary in SUMMARY_TABLES:
        row = connection.execute(text(_comparison(summary))).one()
        if row.missing or row.extra:
            drifts.append(
                Drift(
                    summary.table,
                    row.missing,
                    row.extra,
                    row.expected_example,
                    row.found_example,
                )
            )
    return drifts


def find_drift(engine: Engine) -> list[Drift]:
    """Fold what is pending and compare, at one snapshot, then roll everything back.

    The folder waits while this runs (the fold lock), so the figures fall behind by as
    long as it takes; the bot's writes do not wait.
    """
    with engine.connect() as plain:
        connection = plain.execution_options(isolation_level=REPEATABLE_READ)
        with connection.begin() as transaction:
            connection.execute(NO_STATEMENT_TIMEOUT)
            connection.execute(text("SET LOCAL work_mem = '256MB'"))
            fold_in(connection)
            connection.execute(FOLD, {"max_rows": None})
            drifts = compare_summaries(connection)
            transaction.rollback()
    return drifts
