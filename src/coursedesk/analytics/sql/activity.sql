-- Daily figures over activity_buckets, whose counters are kept per UTC quarter-hour,
-- hour and day. analytics_activity_buckets_between(bounds) answers the whole buckets
-- between the local midnights in `bounds` that no midnight cuts (days, else hours,
-- else quarter-hours: every UTC offset in use is a whole number of quarter-hours), and
-- width_bucket() names the day each one falls in. Both statements answer one row per
-- day from :first_day to :last_day in time zone :tz, zeros included.

-- name: daily_activity
WITH days AS (
    SELECT n, CAST(:first_day AS date) + n AS day
    FROM generate_series(0, CAST(:last_day AS date) - CAST(:first_day AS date)) AS n
),
bounds AS (
    SELECT array_agg((CAST(:first_day AS date) + n)::timestamp AT TIME ZONE :tz ORDER BY n) AS b
    FROM generate_series(0, CAST(:last_day AS date) - CAST(:first_day AS date) + 1) AS n
),
counted AS (
    SELECT width_bucket(a.bucket, bounds.b) - 1 AS n,
           sum(a.new_users) AS new_users,
           sum(a.bookings) AS bookings,
           sum(a.events) AS events,
           sum(a.free_lesson_registrations) AS free_lesson_registrations
    FROM bounds, analytics_activity_buckets_between(bounds.b) AS a
    GROUP BY 1
)
SELECT days.day,
       coalesce(c.new_users, 0)::bigint AS new_users,
       coalesce(c.bookings, 0)::bigint AS bookings,
       coalesce(c.events, 0)::bigint AS events,
       coalesce(c.free_lesson_registrations, 0)::bigint AS free_lesson_registrations
FROM days
LEFT JOIN counted AS c USING (n)
ORDER BY days.day

-- name: user_growth
-- total_users on a day = all users, less those first seen after the range, less those
-- first seen on a later day of the range. "After the range" is the rest of the UTC day
-- the range ends in, then whole UTC days.
WITH days AS (
    SELECT n, CAST(:first_day AS date) + n AS day
    FROM generate_series(0, CAST(:last_day AS date) - CAST(:first_day AS date)) AS n
),
bounds AS (
    SELECT array_agg((CAST(:first_day AS date) + n)::timestamp AT TIME ZONE :tz ORDER BY n) AS b
    FROM generate_series(0, CAST(:last_day AS date) - CAST(:first_day AS date) + 1) AS n
),
counted AS (
    SELECT width_bucket(a.bucket, bounds.b) - 1 AS n, sum(a.new_users) AS new_users
    FROM bounds, analytics_activity_buckets_between(bounds.b) AS a
    GROUP BY 1
),
range_end AS (
    SELECT b[cardinality(b)] AS at,
           analytics_bucket(b[cardinality(b)] + interval '24 hours' - interval '1 microsecond',
                            1440::smallint) AS next_utc_day
    FROM bounds
),
after_range AS (
    SELECT (
        SELECT coalesce(sum(a.new_users), 0)
        FROM range_end, analytics_activity_buckets_between(ARRAY[at, next_utc_day]) AS a
    ) + (
        SELECT coalesce(sum(a.new_users), 0)
        FROM range_end, activity_buckets AS a
        WHERE a.span = 1440 AND a.bucket >= range_end.next_utc_day
    ) AS users
),
everyone AS (
    SELECT coalesce(sum(users), 0) AS users FROM user_segments
),
daily AS (
    SELECT days.day, coalesce(c.new_users, 0) AS new_users
    FROM days LEFT JOIN counted AS c USING (n)
)
SELECT daily.day,
       daily.new_users::bigint AS new_users,
       (everyone.users - after_range.users - coalesce(sum(daily.new_users) OVER (
            ORDER BY daily.day ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0)
       )::bigint AS total_users
FROM daily, everyone, after_range
ORDER BY daily.day
