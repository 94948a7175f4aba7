"""Analytics summaries kept exact by triggers on the source tables, and user search.

Revision ID: 0002_analytics
Revises: 0001_initial
Create Date: 2026-11-24 09:00:00.000000

The bot writes bookings, events and free_lesson_registrations directly, so every
figure is derived inside the database: statement-level triggers (with transition
tables, so a COPY or a multi-row statement costs one pass) keep per-user summaries and
grouped counters current in the same transaction as the change.

How the counters stay exact under concurrency:
- An INSERT merges its rows into user_summaries with INSERT … ON CONFLICT DO UPDATE:
  min, max, sums and "the most recent value by (time, row id)" are commutative, so two
  transactions adding rows for the same user in any order give the same row.
- An UPDATE or DELETE recomputes the affected users from the source tables after
  locking their summary rows; a waiting writer then merges onto the recomputed row.
- Grouped counters are signed deltas (+1 for a new row, -1 for an old one, so an
  UPDATE is -old +new) added with ON CONFLICT DO UPDATE. Distinct users per group come
  from member rows (group, user, rows): a user joins a group when their count rises
  from zero and leaves when it falls back to zero.
- Locks are taken in one order (summary rows, then counters, each sorted by key).

Every function is generated from one template per statement, rendered with the rows
of the trigger (new_rows / old_rows) or, for analytics_rebuild(), with whole tables.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_analytics"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USER_STATUS_EXPRESSION = (
    "CASE WHEN (confirmed_bookings > 0) THEN 'confirmed'::text "
    "WHEN (pending_bookings > 0) THEN 'pending'::text "
    "WHEN (bookings_count > 0) THEN 'cancelled'::text "
    "ELSE 'no_booking'::text END"
)

# Every 1- and 2-character substring of the lower-cased names: user search looks short
# queries up here, as trigrams need at least three characters. A gram may repeat: the
# GIN index keeps each once per row, and dropping repeats here would triple the cost of
# every summary write.
NAME_GRAMS_FUNCTION = """
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
"""
NAME_GRAMS_EXPRESSION = "analytics_name_grams(username, first_name)"

HELPER_FUNCTIONS = (
    # The UTC quarter-hour, hour or day (span in minutes) that holds `at`.
    """
CREATE FUNCTION analytics_bucket(at timestamptz, span smallint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin(make_interval(mins => span), at, timestamptz '2000-01-01 00:00:00+00')
$$
""",
    """
CREATE FUNCTION analytics_lifetime_weeks(first_seen timestamptz, last_seen timestamptz)
RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(floor(extract(epoch FROM last_seen - first_seen) / 604800), 52)::smallint
$$
""",
    """
CREATE FUNCTION analytics_funnel_steps(
    free_lessons integer, attended integer, bookings integer, confirmed integer
) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((free_lessons > 0)::int + 2 * (attended > 0)::int
            + 4 * (bookings > 0)::int + 8 * (confirmed > 0)::int)::smallint
$$
""",
    # The bot writes lesson_date into event details as text; anything that is not a
    # real YYYY-MM-DD date counts as no date rather than failing the bot's INSERT.
    """
CREATE FUNCTION analytics_lesson_date(value text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        CASE WHEN substr(value, 1, 4)::int >= 1 AND substr(value, 6, 2)::int BETWEEN 1 AND 12 THEN
            CASE WHEN substr(value, 9, 2)::int BETWEEN 1 AND extract(day FROM
                    make_date(substr(value, 1, 4)::int, substr(value, 6, 2)::int, 1)
                    + interval '1 month - 1 day')
            THEN make_date(substr(value, 1, 4)::int, substr(value, 6, 2)::int,
                           substr(value, 9, 2)::int)
            END
        END
    END
$$
""",
    """
CREATE FUNCTION analytics_user_from_source(uid bigint)
RETURNS TABLE (
    user_id bigint, username text, username_at timestamptz, username_row integer,
    first_name text, first_name_at timestamptz, first_name_row integer,
    first_seen timestamptz, last_seen timestamptz, bookings_count integer,
    confirmed_bookings integer, pending_bookings integer, events_count integer,
    lessons_attended integer, free_lessons_count integer, course_stream text,
    stream_booking_at timestamptz, stream_booking_id integer
) LANGUAGE sql VOLATILE AS $$
    WITH named AS (
        SELECT b.username, b.first_name, b.created_at AS at, b.id AS row_id
        FROM bookings AS b WHERE b.user_id = uid
        UNION ALL
        SELECT r.username, r.first_name, r.registered_at, r.id
        FROM free_lesson_registrations AS r WHERE r.user_id = uid
    ),
    booked AS (
        SELECT min(b.created_at) AS first_at, max(b.created_at) AS last_at,
               count(*)::int AS n,
               (count(*) FILTER (WHERE b.confirmed = 2))::int AS confirmed,
               (count(*) FILTER (WHERE b.confirmed = 1))::int AS pending
        FROM bookings AS b WHERE b.user_id = uid
    ),
    evented AS (
        SELECT min(e.created_at) AS first_at, max(e.created_at) AS last_at,
               count(*)::int AS n,
               (count(*) FILTER (WHERE e.event_type = 'lesson_attended'))::int AS attended
        FROM events AS e WHERE e.user_id = uid
    ),
    registered AS (
        SELECT min(r.registered_at) AS first_at, max(r.registered_at) AS last_at,
               count(*)::int AS n
        FROM free_lesson_registrations AS r WHERE r.user_id = uid
    ),
    latest_username AS (
        SELECT n.username, n.at, n.row_id FROM named AS n WHERE n.username IS NOT NULL
        ORDER BY n.at DESC, n.row_id DESC LIMIT 1
    ),
    latest_first_name AS (
        SELECT n.first_name, n.at, n.row_id FROM named AS n WHERE n.first_name IS NOT NULL
        ORDER BY n.at DESC, n.row_id DESC LIMIT 1
    ),
    latest_stream AS (
        SELECT b.course_stream, b.created_at, b.id FROM bookings AS b
        WHERE b.user_id = uid AND b.confirmed <> -1
        ORDER BY b.created_at DESC, b.id DESC LIMIT 1
    )
    SELECT uid, un.username, un.at, un.row_id, fn.first_name, fn.at, fn.row_id,
           least(booked.first_at, evented.first_at, registered.first_at),
           greatest(booked.last_at, evented.last_at, registered.last_at),
           booked.n, booked.confirmed, booked.pending, evented.n, evented.attended,
           registered.n, st.course_stream, st.created_at, st.id
    FROM booked CROSS JOIN evented CROSS JOIN registered
    LEFT JOIN latest_username AS un ON true
    LEFT JOIN latest_first_name AS fn ON true
    LEFT JOIN latest_stream AS st ON true
    WHERE booked.n + evented.n + registered.n > 0
$$
""",
    # Runs after an UPDATE or DELETE. The summary rows are locked first, in id order,
    # so the recomputation (a later statement, hence a later snapshot) sees every
    # transaction that merged into them before us, and any that merges after us waits
    # and adds its rows to our result. A user new to user_summaries can meet a
    # concurrent first INSERT of the same user: ON CONFLICT waits for it and the row
    # is computed again, as the function takes a fresh snapshot for each call.
    """
CREATE FUNCTION analytics_refresh_users(ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM user_summaries WHERE user_id = ANY(ids) ORDER BY user_id FOR UPDATE;
    INSERT INTO user_summaries AS s (
        user_id, username, username_at, username_row, first_name, first_name_at,
        first_name_row, first_seen, last_seen, bookings_count, confirmed_bookings,
        pending_bookings, events_count, lessons_attended, free_lessons_count,
        course_stream, stream_booking_at, stream_booking_id)
    SELECT f.* FROM unnest(ids) AS u(id) CROSS JOIN LATERAL analytics_user_from_source(u.id) AS f
    ORDER BY f.user_id
    ON CONFLICT (user_id) DO UPDATE SET (
        username, username_at, username_row, first_name, first_name_at, first_name_row,
        first_seen, last_seen, bookings_count, confirmed_bookings, pending_bookings,
        events_count, lessons_attended, free_lessons_count, course_stream,
        stream_booking_at, stream_booking_id
    ) = (
        SELECT f.username, f.username_at, f.username_row, f.first_name, f.first_name_at,
               f.first_name_row, f.first_seen, f.last_seen, f.bookings_count,
               f.confirmed_bookings, f.pending_bookings, f.events_count,
               f.lessons_attended, f.free_lessons_count, f.course_stream,
               f.stream_booking_at, f.stream_booking_id
        FROM analytics_user_from_source(s.user_id) AS f
    );
    DELETE FROM user_summaries AS s
    WHERE s.user_id = ANY(ids)
      AND NOT EXISTS (SELECT 1 FROM bookings AS b WHERE b.user_id = s.user_id)
      AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.user_id = s.user_id)
      AND NOT EXISTS (SELECT 1 FROM free_lesson_registrations AS r WHERE r.user_id = s.user_id);
END
$$
""",
)

# The rows a statement changed, each with its sign.
CHANGE_SETS = {
    "insert": "SELECT 1 AS sign, r.* FROM new_rows AS r",
    "update": (
        "SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r"
    ),
    "delete": "SELECT -1 AS sign, r.* FROM old_rows AS r",
}
TRANSITION_TABLES = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
}


def _newer(column: str, at: str, row: str) -> str:
    """SET clauses that take the incoming value when its (time, row id) is more recent."""
    newer = (
        f"excluded.{at} IS NOT NULL AND (s.{at} IS NULL "
        f"OR (excluded.{at}, excluded.{row}) > (s.{at}, s.{row}))"
    )
    return ",\n".join(
        f"    {name} = CASE WHEN {newer} THEN excluded.{name} ELSE s.{name} END"
        for name in (column, at, row)
    )


def _latest(column: str, at: str) -> str:
    return f"""
latest_{column} AS (
    SELECT DISTINCT ON (user_id) user_id, {column}, {at} AS at, id AS row_id
    FROM changes WHERE {column} IS NOT NULL ORDER BY user_id, {at} DESC, id DESC
)"""


MERGE_USERS_FROM_BOOKINGS = f"""
WITH changes AS ({{changes}}),
seen AS (
    SELECT user_id, min(created_at) AS first_seen, max(created_at) AS last_seen,
           count(*) AS bookings, count(*) FILTER (WHERE confirmed = 2) AS confirmed,
           count(*) FILTER (WHERE confirmed = 1) AS pending
    FROM changes GROUP BY user_id
),{_latest("username", "created_at")},{_latest("first_name", "created_at")},
latest_stream AS (
    SELECT DISTINCT ON (user_id) user_id, course_stream, created_at AS at, id AS row_id
    FROM changes WHERE confirmed <> -1 ORDER BY user_id, created_at DESC, id DESC
)
INSERT INTO user_summaries AS s (
    user_id, first_seen, last_seen, bookings_count, confirmed_bookings, pending_bookings,
    username, username_at, username_row, first_name, first_name_at, first_name_row,
    course_stream, stream_booking_at, stream_booking_id)
SELECT seen.user_id, seen.first_seen, seen.last_seen, seen.bookings, seen.confirmed,
       seen.pending, u.username, u.at, u.row_id, f.first_name, f.at, f.row_id,
       st.course_stream, st.at, st.row_id
FROM seen
LEFT JOIN latest_username AS u USING (user_id)
LEFT JOIN latest_first_name AS f USING (user_id)
LEFT JOIN latest_stream AS st USING (user_id)
ORDER BY seen.user_id
ON CONFLICT (user_id) DO UPDATE SET
    first_seen = least(s.first_seen, excluded.first_seen),
    last_seen = greatest(s.last_seen, excluded.last_seen),
    bookings_count = s.bookings_count + excluded.bookings_count,
    confirmed_bookings = s.confirmed_bookings + excluded.confirmed_bookings,
    pending_bookings = s.pending_bookings + excluded.pending_bookings,
{_newer("username", "username_at", "username_row")},
{_newer("first_name", "first_name_at", "first_name_row")},
{_newer("course_stream", "stream_booking_at", "stream_booking_id")}
"""

MERGE_USERS_FROM_EVENTS = """
WITH changes AS ({changes})
INSERT INTO user_summaries AS s (user_id, first_seen, last_seen, events_count, lessons_attended)
SELECT user_id, min(created_at), max(created_at), count(*),
       count(*) FILTER (WHERE event_type = 'lesson_attended')
FROM changes WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE SET
    first_seen = least(s.first_seen, excluded.first_seen),
    last_seen = greatest(s.last_seen, excluded.last_seen),
    events_count = s.events_count + excluded.events_count,
    lessons_attended = s.lessons_attended + excluded.lessons_attended
"""

MERGE_USERS_FROM_REGISTRATIONS = f"""
WITH changes AS ({{changes}}),
seen AS (
    SELECT user_id, min(registered_at) AS first_seen, max(registered_at) AS last_seen,
           count(*) AS registrations
    FROM changes GROUP BY user_id
),{_latest("username", "registered_at")},{_latest("first_name", "registered_at")}
INSERT INTO user_summaries AS s (
    user_id, first_seen, last_seen, free_lessons_count, username, username_at, username_row,
    first_name, first_name_at, first_name_row)
SELECT seen.user_id, seen.first_seen, seen.last_seen, seen.registrations,
       u.username, u.at, u.row_id, f.first_name, f.at, f.row_id
FROM seen
LEFT JOIN latest_username AS u USING (user_id)
LEFT JOIN latest_first_name AS f USING (user_id)
ORDER BY seen.user_id
ON CONFLICT (user_id) DO UPDATE SET
    first_seen = least(s.first_seen, excluded.first_seen),
    last_seen = greatest(s.last_seen, excluded.last_seen),
    free_lessons_count = s.free_lessons_count + excluded.free_lessons_count,
{_newer("username", "username_at", "username_row")},
{_newer("first_name", "first_name_at", "first_name_row")}
"""

# After an UPDATE or DELETE: the users whose rows changed in a column a summary reads.
REFRESH_USERS = """
PERFORM analytics_refresh_users(array(
    WITH changes AS ({changes})
    SELECT DISTINCT user_id FROM (
        SELECT user_id FROM changes WHERE user_id IS NOT NULL
        GROUP BY user_id, {columns} HAVING sum(sign) <> 0
    ) AS changed
))
"""


# Time counters are kept three times over, per UTC quarter-hour, hour and day (the span,
# in minutes). Every UTC offset in use is a whole number of quarter-hours, so any range
# between local midnights is a sum of whole buckets: days where no boundary cuts them,
# hours of the cut days, quarter-hours of the cut hours (see the *_between readers).
SPANS = "(VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)"


@dataclass(frozen=True)
class TimeCounter:
    """Rows counted per span and bucket of the time `at`, and the other `keys`."""

    table: str
    at: str
    counter: str
    keys: dict[str, str] = field(default_factory=dict)  # name: expression

    @property
    def key_list(self) -> str:
        return ", ".join(["span", "bucket", *self.keys])

    def _extra_columns(self) -> str:
        return "".join(f", {expression} AS {name}" for name, expression in self.keys.items())

    def _upsert(self) -> str:
        return (
            f"ON CONFLICT ({self.key_list}) "
            f"DO UPDATE SET {self.counter} = t.{self.counter} + excluded.{self.counter}"
        )

    def incremental(self) -> str:
        """Adds the signed rows of {changes}."""
        positions = ", ".join(str(n) for n in range(1, len(self.keys) + 3))
        return f"""
WITH changes AS ({{changes}}),
delta AS (
    SELECT spans.span, analytics_bucket({self.at}, spans.span) AS bucket{self._extra_columns()},
           sum(sign)::int AS n
    FROM changes CROSS JOIN {SPANS}
    GROUP BY {positions} HAVING sum(sign) <> 0
)
INSERT INTO {self.table} AS t ({self.key_list}, {self.counter})
SELECT {self.key_list}, n FROM delta ORDER BY {self.key_list}
{self._upsert()}
"""

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.table,)

    def bulk(self, merging: frozenset[str]) -> tuple[str, ...]:
        """Counts every row of {changes} by quarter-hour, then hours and days from those;
        adds to the rows already there only when the table is in `merging`."""
        names = ", ".join(self.keys)
        extra = f", {names}" if self.keys else ""
        return (
            f"""
WITH changes AS ({{changes}}),
quarters AS (
    SELECT analytics_bucket({self.at}, 15::smallint) AS bucket{self._extra_columns()},
           count(*)::int AS n
    FROM changes GROUP BY {", ".join(str(n) for n in range(1, len(self.keys) + 2))}
)
INSERT INTO {self.table} AS t ({self.key_list}, {self.counter})
SELECT 15::smallint, bucket{extra}, n FROM quarters
UNION ALL
SELECT 60::smallint, analytics_bucket(bucket, 60::smallint) AS hour{extra}, sum(n)::int
FROM quarters GROUP BY hour{extra}
UNION ALL
SELECT 1440::smallint, analytics_bucket(bucket, 1440::smallint) AS day{extra}, sum(n)::int
FROM quarters GROUP BY day{extra}
{self._upsert() if self.table in merging else ""}
""",
        )


@dataclass(frozen=True)
class GroupCounter:
    """Signed row counts per group, and distinct users per group through member rows."""

    figures: str
    members: str
    keys: tuple[str, ...]
    member_count: str
    users_column: str
    sums: dict[str, str]
    row_filter: str = "true"
    key_expressions: str = ""

    def _keyed(self) -> str:
        return (
            f"keyed AS (SELECT c.*{self.key_expressions} FROM changes AS c WHERE {self.row_filter})"
        )

    def _sum_columns(self) -> str:
        return ",\n           ".join(
            f"coalesce({expression}, 0) AS {name}" for name, expression in self.sums.items()
        )

    def _figures_upsert(self) -> str:
        added = ", ".join(
            f"{name} = f.{name} + excluded.{name}" for name in (*self.sums, self.users_column)
        )
        return f"ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET\n    {added}"

    def incremental(self) -> str:
        """Adds the signed rows of {changes}; a user joins a group when their member count
        rises from zero and leaves it when the count falls back to zero."""
        key_list = ", ".join(self.keys)
        member_keys = ", ".join(f"m.{key}" for key in self.keys)
        same_key = " AND ".join(
            f"{{a}}.{key} IS NOT DISTINCT FROM {{b}}.{key}" for key in self.keys
        )
        nonzero = ", ".join(f"r.{name}" for name in self.sums)
        zeros = ", ".join("0" for _ in self.sums)
        count = self.member_count
        return f"""
WITH changes AS ({{changes}}),
{self._keyed()},
member_delta AS (
    SELECT {key_list}, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY {key_list}, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO {self.members} AS m ({key_list}, user_id, {count})
    SELECT {key_list}, user_id, n FROM member_delta ORDER BY user_id, {key_list}
    ON CONFLICT ({key_list}, user_id) DO UPDATE SET {count} = m.{count} + excluded.{count}
    RETURNING {member_keys}, m.user_id, m.{count} AS now
),
user_delta AS (
    SELECT {member_keys},
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND {same_key.format(a="d", b="m")}
    GROUP BY {member_keys}
),
row_delta AS (
    SELECT {key_list},
           {self._sum_columns()}
    FROM keyed GROUP BY {key_list}
)
INSERT INTO {self.figures} AS f ({key_list}, {", ".join(self.sums)}, {self.users_column})
SELECT {", ".join(f"r.{key}" for key in self.keys)}, {nonzero}, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON {same_key.format(a="u", b="r")}
WHERE ({nonzero}, coalesce(u.users, 0)) <> ({zeros}, 0)
ORDER BY {", ".join(f"r.{key}" for key in self.keys)}
{self._figures_upsert()}
"""

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.members, self.figures)

    def bulk(self, merging: frozenset[str]) -> tuple[str, ...]:
        """Counts every row of {changes}: member rows, then the figures of each group;
        adds to the rows already there only in the tables in `merging`."""
        key_list = ", ".join(self.keys)
        count = self.member_count
        members_merge = (
            f"ON CONFLICT ({key_list}, user_id) "
            f"DO UPDATE SET {count} = m.{count} + excluded.{count}"
        )
        members = f"""
WITH changes AS ({{changes}}), {self._keyed()}
INSERT INTO {self.members} AS m ({key_list}, user_id, {count})
SELECT {key_list}, user_id, count(*) FROM keyed WHERE user_id IS NOT NULL
GROUP BY {key_list}, user_id
{members_merge if self.members in merging else ""}
"""
        figures = f"""
WITH changes AS ({{changes}}), {self._keyed()}
INSERT INTO {self.figures} AS f ({key_list}, {", ".join(self.sums)}, {self.users_column})
SELECT {key_list},
       {self._sum_columns()},
       count(DISTINCT user_id)
FROM keyed GROUP BY {key_list}
{self._figures_upsert() if self.figures in merging else ""}
"""
        return members, figures


SummaryCounter = TimeCounter | GroupCounter

BOOKING_SUMS = {
    "total_bookings": "sum(sign)",
    "confirmed": "sum(sign) FILTER (WHERE confirmed = 2)",
    "pending": "sum(sign) FILTER (WHERE confirmed = 1)",
    "cancelled": "sum(sign) FILTER (WHERE confirmed = -1)",
}


@dataclass(frozen=True)
class SourceStatements:
    """What a change to one source table does to the summaries."""

    merge: str  # merges inserted rows into user_summaries
    refresh_columns: str  # the columns user_summaries reads, for UPDATE and DELETE
    counters: tuple[SummaryCounter, ...]


SOURCE_STATEMENTS = {
    "bookings": SourceStatements(
        merge=MERGE_USERS_FROM_BOOKINGS,
        refresh_columns="id, username, first_name, created_at, confirmed, course_stream",
        counters=(
            TimeCounter("activity_buckets", "created_at", "bookings"),
            GroupCounter(
                figures="course_figures",
                members="course_members",
                keys=("course_id",),
                member_count="bookings",
                users_column="unique_users",
                sums=BOOKING_SUMS,
            ),
            GroupCounter(
                figures="stream_figures",
                members="stream_members",
                keys=("course_id", "course_stream"),
                member_count="bookings",
                users_column="unique_users",
                sums=BOOKING_SUMS,
                row_filter="c.course_stream IS NOT NULL",
            ),
            GroupCounter(
                figures="referral_figures",
                members="referral_members",
                keys=("referral_code",),
                member_count="bookings",
                users_column="unique_users",
                sums={
                    "bookings": "sum(sign)",
                    "confirmed": "sum(sign) FILTER (WHERE confirmed = 2)",
                    "discount_total": "sum(sign * discount_percent)",
                    "discounted": "sum(sign) FILTER (WHERE discount_percent IS NOT NULL)",
                },
                row_filter="c.referral_code IS NOT NULL",
            ),
        ),
    ),
    "events": SourceStatements(
        merge=MERGE_USERS_FROM_EVENTS,
        refresh_columns="created_at, event_type = 'lesson_attended'",
        counters=(
            TimeCounter("activity_buckets", "created_at", "events"),
            GroupCounter(
                figures="event_type_figures",
                members="event_type_members",
                keys=("event_type",),
                member_count="events",
                users_column="unique_users",
                sums={"events": "sum(sign)"},
            ),
            GroupCounter(
                figures="lesson_figures",
                members="lesson_members",
                keys=("lesson_type", "lesson_date"),
                member_count="attendances",
                users_column="attending_users",
                sums={"attendances": "sum(sign)"},
                row_filter="c.event_type = 'lesson_attended'",
                key_expressions=(
                    ", c.details ->> 'lesson_type' AS lesson_type"
                    ", analytics_lesson_date(c.details ->> 'lesson_date') AS lesson_date"
                ),
            ),
        ),
    ),
    "free_lesson_registrations": SourceStatements(
        merge=MERGE_USERS_FROM_REGISTRATIONS,
        refresh_columns="id, username, first_name, registered_at",
        counters=(
            TimeCounter("activity_buckets", "registered_at", "free_lesson_registrations"),
            GroupCounter(
                figures="lesson_figures",
                members="lesson_members",
                keys=("lesson_type", "lesson_date"),
                member_count="registrations",
                users_column="registered_users",
                sums={"registrations": "sum(sign)"},
            ),
        ),
    ),
}


def _user_segments(*, merge: bool) -> str:
    """What a change of user_summaries rows adds to the users per status and stream;
    `merge` adds to the rows already there (which a bulk load into an empty table
    need not)."""
    conflict = "ON CONFLICT (status, course_stream) DO UPDATE SET users = g.users + excluded.users"
    return f"""
WITH changes AS ({{changes}}),
delta AS (
    SELECT status, course_stream, sum(sign)::int AS users FROM changes
    GROUP BY status, course_stream HAVING sum(sign) <> 0
)
INSERT INTO user_segments AS g (status, course_stream, users)
SELECT status, course_stream, users FROM delta ORDER BY status, course_stream
{conflict if merge else ""}
"""


# What a change of user_summaries rows adds to the per-user counters.
USER_TIME_COUNTERS = (
    TimeCounter("activity_buckets", "first_seen", "new_users"),
    TimeCounter(
        "user_funnel",
        "first_seen",
        "users",
        {
            "funnel_steps": "analytics_funnel_steps(free_lessons_count, lessons_attended,"
            " bookings_count, confirmed_bookings)"
        },
    ),
    TimeCounter(
        "user_retention",
        "first_seen",
        "users",
        {"lifetime_weeks": "analytics_lifetime_weeks(first_seen, last_seen)"},
    ),
)

# Reader of a time counter table: its whole buckets from bounds[1] to the last bound
# that no bound cuts, taking days where possible, else hours of the days a bound cuts,
# else quarter-hours of the hours a bound cuts (only offsets of :30 and :45 cut hours).
# Callers group the buckets by width_bucket(bucket, bounds), the period each falls in.
# Intervals are written in hours, not days: a day added to a timestamptz would follow
# the session's time zone across daylight saving changes.
BETWEEN_FUNCTION = """
CREATE FUNCTION analytics_{table}_between(bounds timestamptz[]) RETURNS SETOF {table}
LANGUAGE sql STABLE AS $$
    WITH cut AS MATERIALIZED (
        SELECT DISTINCT spans.span, analytics_bucket(m, spans.span) AS bucket
        FROM unnest(bounds) AS m
        CROSS JOIN (VALUES (60::smallint), (1440::smallint)) AS spans(span)
        WHERE analytics_bucket(m, spans.span) <> m
    )
    SELECT t.* FROM {table} AS t
    WHERE t.span = 1440 AND t.bucket >= bounds[1]
      AND t.bucket + interval '24 hours' <= bounds[cardinality(bounds)]
      AND width_bucket(t.bucket, bounds)
          = width_bucket(t.bucket + interval '24 hours' - interval '1 microsecond', bounds)
    UNION ALL
    SELECT t.* FROM cut JOIN {table} AS t
      ON t.span = 60 AND t.bucket >= cut.bucket AND t.bucket < cut.bucket + interval '24 hours'
    WHERE cut.span = 1440 AND t.bucket >= bounds[1]
      AND t.bucket + interval '1 hour' <= bounds[cardinality(bounds)]
      AND (NOT EXISTS (SELECT 1 FROM cut WHERE cut.span = 60)
           OR width_bucket(t.bucket, bounds)
              = width_bucket(t.bucket + interval '1 hour' - interval '1 microsecond', bounds))
    UNION ALL
    SELECT t.* FROM cut JOIN {table} AS t
      ON t.span = 15 AND t.bucket >= cut.bucket AND t.bucket < cut.bucket + interval '1 hour'
    WHERE cut.span = 60 AND t.bucket >= bounds[1]
      AND t.bucket + interval '15 minutes' <= bounds[cardinality(bounds)]
$$
"""
TIME_COUNTER_TABLES = ("activity_buckets", "user_funnel", "user_retention")

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


def _render(statements: Sequence[str], changes: str) -> str:
    return "\n".join(f"{statement.format(changes=changes).strip()};" for statement in statements)


def _source_function(table: str, operation: str) -> str:
    statements = SOURCE_STATEMENTS[table]
    changes = CHANGE_SETS[operation]
    if operation == "insert":
        users = statements.merge.format(changes=changes).strip()
    else:
        users = REFRESH_USERS.format(changes=changes, columns=statements.refresh_columns).strip()
    return f"""
CREATE FUNCTION analytics_{table}_{operation}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{users};
{_render([counter.incremental() for counter in statements.counters], changes)}
RETURN NULL;
END
$$
"""


def _rollup_function(operation: str) -> str:
    statements = (_user_segments(merge=True), *(c.incremental() for c in USER_TIME_COUNTERS))
    return f"""
CREATE FUNCTION analytics_user_summaries_{operation}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_render(statements, CHANGE_SETS[operation])}
RETURN NULL;
END
$$
"""


# Every user at once, for analytics_rebuild(): the same figures as the merges and
# analytics_user_from_source(), computed by one pass over each source table.
REBUILD_USERS = """
INSERT INTO user_summaries (
    user_id, username, username_at, username_row, first_name, first_name_at,
    first_name_row, first_seen, last_seen, bookings_count, confirmed_bookings,
    pending_bookings, events_count, lessons_attended, free_lessons_count, course_stream,
    stream_booking_at, stream_booking_id)
WITH booked AS (
    SELECT user_id, min(created_at) AS first_at, max(created_at) AS last_at, count(*) AS n,
           count(*) FILTER (WHERE confirmed = 2) AS confirmed,
           count(*) FILTER (WHERE confirmed = 1) AS pending
    FROM bookings GROUP BY user_id
),
evented AS (
    SELECT user_id, min(created_at) AS first_at, max(created_at) AS last_at, count(*) AS n,
           count(*) FILTER (WHERE event_type = 'lesson_attended') AS attended
    FROM events WHERE user_id IS NOT NULL GROUP BY user_id
),
registered AS (
    SELECT user_id, min(registered_at) AS first_at, max(registered_at) AS last_at,
           count(*) AS n
    FROM free_lesson_registrations GROUP BY user_id
),
named AS (
    SELECT user_id, username, first_name, created_at AS at, id AS row_id FROM bookings
    UNION ALL
    SELECT user_id, username, first_name, registered_at, id FROM free_lesson_registrations
),
latest_username AS (
    SELECT DISTINCT ON (user_id) user_id, username, at, row_id FROM named
    WHERE username IS NOT NULL ORDER BY user_id, at DESC, row_id DESC
),
latest_first_name AS (
    SELECT DISTINCT ON (user_id) user_id, first_name, at, row_id FROM named
    WHERE first_name IS NOT NULL ORDER BY user_id, at DESC, row_id DESC
),
latest_stream AS (
    SELECT DISTINCT ON (user_id) user_id, course_stream, created_at AS at, id AS row_id
    FROM bookings WHERE confirmed <> -1 ORDER BY user_id, created_at DESC, id DESC
),
everyone AS (
    SELECT user_id FROM booked UNION SELECT user_id FROM evented
    UNION SELECT user_id FROM registered
)
SELECT e.user_id, u.username, u.at, u.row_id, f.first_name, f.at, f.row_id,
       least(b.first_at, ev.first_at, r.first_at), greatest(b.last_at, ev.last_at, r.last_at),
       coalesce(b.n, 0), coalesce(b.confirmed, 0), coalesce(b.pending, 0), coalesce(ev.n, 0),
       coalesce(ev.attended, 0), coalesce(r.n, 0), st.course_stream, st.at, st.row_id
FROM everyone AS e
LEFT JOIN booked AS b USING (user_id)
LEFT JOIN evented AS ev USING (user_id)
LEFT JOIN registered AS r USING (user_id)
LEFT JOIN latest_username AS u USING (user_id)
LEFT JOIN latest_first_name AS f USING (user_id)
LEFT JOIN latest_stream AS st USING (user_id)
ORDER BY e.user_id
"""


def _bulk_sources() -> list[tuple[str, tuple[str, ...], tuple[SummaryCounter, ...]]]:
    """What analytics_rebuild() reads, in order: (table, plain statements, counters)."""
    return [
        ("user_summaries", (_user_segments(merge=False),), USER_TIME_COUNTERS),
        *((table, (), statements.counters) for table, statements in SOURCE_STATEMENTS.items()),
    ]


def _merged_tables() -> frozenset[str]:
    """The summary tables that more than one counter writes into."""
    writes = Counter(
        table for _, _, counters in _bulk_sources() for c in counters for table in c.tables
    )
    return frozenset(table for table, writers in writes.items() if writers > 1)


def _bulk_passes() -> list[str]:
    """Every counter's bulk statements, source by source. Into an empty table a plain
    INSERT is several times cheaper than ON CONFLICT, so only the later writers of a
    table shared by several counters merge into its rows."""
    written: set[str] = set()
    passes = []
    for table, fixed, counters in _bulk_sources():
        statements = list(fixed)
        for counter in counters:
            statements.extend(counter.bulk(frozenset(written)))
            written.update(counter.tables)
        passes.append(_render(statements, f"SELECT 1 AS sign, r.* FROM {table} AS r"))
    return passes


# The indexes and key constraints of the given tables: the statements that drop them and
# those that make them again.
INDEX_STATEMENTS = """
SELECT array_agg(CASE WHEN k.conname IS NULL
                      THEN format('DROP INDEX %I', x.relname)
                      ELSE format('ALTER TABLE %I DROP CONSTRAINT %I', t.relname, k.conname)
                 END),
       array_agg(CASE WHEN k.conname IS NULL
                      THEN pg_get_indexdef(i.indexrelid)
                      ELSE format('ALTER TABLE %I ADD CONSTRAINT %I %s',
                                  t.relname, k.conname, pg_get_constraintdef(k.oid))
                 END)
INTO drops, rebuilds
FROM pg_index AS i
JOIN pg_class AS x ON x.oid = i.indexrelid
JOIN pg_class AS t ON t.oid = i.indrelid
LEFT JOIN pg_constraint AS k ON k.conindid = i.indexrelid AND k.conrelid = t.oid
WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY ({tables})
"""


def _rebuild_function() -> str:
    unmerged = [table for table in SUMMARY_TABLES if table not in _merged_tables()]
    tables = "ARRAY[" + ", ".join(f"'{table}'" for table in unmerged) + "]"
    return f"""
CREATE FUNCTION analytics_rebuild() RETURNS void LANGUAGE plpgsql
SET work_mem = '256MB' SET maintenance_work_mem = '256MB' AS $$
DECLARE
    drops text[];
    rebuilds text[];
    statement text;
BEGIN
TRUNCATE {", ".join(SUMMARY_TABLES)};
-- Rows go into a table without indexes several times faster, and an index built over
-- the finished rows costs far less than one kept up row by row. The tables that several
-- counters merge into keep theirs: ON CONFLICT needs them.
{INDEX_STATEMENTS.format(tables=tables).strip()};
FOREACH statement IN ARRAY drops LOOP
    EXECUTE statement;
END LOOP;
-- The per-user counters are taken from the finished table, not by its trigger.
ALTER TABLE user_summaries DISABLE TRIGGER user_summaries_rollup_insert;
{REBUILD_USERS.strip()};
ALTER TABLE user_summaries ENABLE TRIGGER user_summaries_rollup_insert;
{chr(10).join(_bulk_passes())}
FOREACH statement IN ARRAY rebuilds LOOP
    EXECUTE statement;
END LOOP;
END
$$
"""


REBUILD_AFTER_TRUNCATE = """
CREATE FUNCTION analytics_rebuild_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_rebuild();
    RETURN NULL;
END
$$
"""


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
    op.execute(NAME_GRAMS_FUNCTION)
    _create_tables()
    for statement in HELPER_FUNCTIONS:
        op.execute(statement)
    for table in TIME_COUNTER_TABLES:
        op.execute(BETWEEN_FUNCTION.format(table=table))
    for operation, transition in TRANSITION_TABLES.items():
        op.execute(_rollup_function(operation))
        op.execute(
            f"CREATE TRIGGER user_summaries_rollup_{operation} AFTER {operation.upper()} "
            f"ON user_summaries {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION analytics_user_summaries_{operation}()"
        )
    op.execute(_rebuild_function())
    op.execute(REBUILD_AFTER_TRUNCATE)
    for table in SOURCE_TABLES:
        for operation, transition in TRANSITION_TABLES.items():
            op.execute(_source_function(table, operation))
            op.execute(
                f"CREATE TRIGGER {table}_summaries_{operation} AFTER {operation.upper()} "
                f"ON {table} {transition} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION analytics_{table}_{operation}()"
            )
        op.execute(
            f"CREATE TRIGGER {table}_summaries_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION analytics_rebuild_after_truncate()"
        )
    op.execute("SELECT analytics_rebuild()")


def downgrade() -> None:
    for table in SOURCE_TABLES:
        op.execute(f"DROP TRIGGER {table}_summaries_truncate ON {table}")
        for operation in TRANSITION_TABLES:
            op.execute(f"DROP TRIGGER {table}_summaries_{operation} ON {table}")
            op.execute(f"DROP FUNCTION analytics_{table}_{operation}()")
    op.execute("DROP FUNCTION analytics_rebuild_after_truncate()")
    op.execute("DROP FUNCTION analytics_rebuild()")
    for operation in TRANSITION_TABLES:
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
