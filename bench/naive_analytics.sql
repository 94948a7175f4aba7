-- The figures of docs/reference.md §4 as the original design computes them: straight off
-- the source tables on every request, users found by COUNT(DISTINCT) over a UNION ALL of
-- the three tables and first_seen by min() per user. analytics_bench.py times these
-- against the routes, which read summary tables, and checks once that both give the same
-- answer.
-- Parameters are psycopg's: %(name)s.

-- name: dashboard_stats
SELECT
    (SELECT count(DISTINCT user_id)
     FROM (SELECT user_id FROM bookings
           UNION ALL SELECT user_id FROM events
           UNION ALL SELECT user_id FROM free_lesson_registrations) AS everyone
    ) AS total_users,
    (SELECT count(*) FROM bookings WHERE confirmed IN (1, 2)) AS active_bookings,
    (SELECT count(*) FROM bookings WHERE confirmed = 2) AS confirmed_payments,
    (SELECT count(*) FROM free_lesson_registrations) AS free_lesson_registrations

-- name: daily_activity
WITH days AS (
    SELECT day::date AS day
    FROM generate_series(%(first_day)s::date, %(last_day)s::date, interval '1 day') AS day
),
window_bounds AS (
    SELECT %(first_day)s::date::timestamp AT TIME ZONE %(tz)s AS starts,
           (%(last_day)s::date + 1)::timestamp AT TIME ZONE %(tz)s AS ends
),
first_seen AS (
    SELECT user_id, min(at) AS first_seen
    FROM (SELECT user_id, created_at AS at FROM bookings
          UNION ALL SELECT user_id, created_at FROM events WHERE user_id IS NOT NULL
          UNION ALL SELECT user_id, registered_at FROM free_lesson_registrations) AS seen
    GROUP BY user_id
),
new_users AS (
    SELECT (first_seen AT TIME ZONE %(tz)s)::date AS day, count(*) AS n
    FROM first_seen GROUP BY 1
),
bookings_per_day AS (
    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n
    FROM bookings, window_bounds
    WHERE created_at >= starts AND created_at < ends
    GROUP BY 1
),
events_per_day AS (
    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n
    FROM events, window_bounds
    WHERE created_at >= starts AND created_at < ends
    GROUP BY 1
),
registrations_per_day AS (
    SELECT (registered_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n
    FROM free_lesson_registrations, window_bounds
    WHERE registered_at >= starts AND registered_at < ends
    GROUP BY 1
)
SELECT days.day AS date,
       coalesce(u.n, 0) AS new_users,
       coalesce(b.n, 0) AS bookings,
       coalesce(e.n, 0) AS events,
       coalesce(r.n, 0) AS free_lesson_registrations
FROM days
LEFT JOIN new_users AS u USING (day)
LEFT JOIN bookings_per_day AS b USING (day)
LEFT JOIN events_per_day AS e USING (day)
LEFT JOIN registrations_per_day AS r USING (day)
ORDER BY days.day

-- name: user_growth
WITH days AS (
    SELECT day::date AS day
    FROM generate_series(%(first_day)s::date, %(last_day)s::date, interval '1 day') AS day
),
first_days AS (
    SELECT user_id, (min(at) AT TIME ZONE %(tz)s)::date AS day
    FROM (SELECT user_id, created_at AS at FROM bookings
          UNION ALL SELECT user_id, created_at FROM events WHERE user_id IS NOT NULL
          UNION ALL SELECT user_id, registered_at FROM free_lesson_registrations) AS seen
    GROUP BY user_id
),
new_users AS (
    SELECT day, count(*) AS n FROM first_days GROUP BY day
)
SELECT days.day AS date,
       coalesce(new_users.n, 0) AS new_users,
       (SELECT count(*) FROM first_days WHERE day < %(first_day)s::date)
           + sum(coalesce(new_users.n, 0)) OVER (ORDER BY days.day) AS total_users
FROM days
LEFT JOIN new_users USING (day)
ORDER BY days.day

-- name: course_figures
SELECT b.course_id,
       coalesce(c.name, 'Course ' || b.course_id) AS course_name,
       count(*) AS total_bookings,
       count(*) FILTER (WHERE b.confirmed = 2) AS confirmed,
       count(*) FILTER (WHERE b.confirmed = 1) AS pending,
       count(*) FILTER (WHERE b.confirmed = -1) AS cancelled,
       count(DISTINCT b.user_id) AS unique_users
FROM bookings AS b
LEFT JOIN courses AS c ON c.id = b.course_id
GROUP BY b.course_id, c.name
ORDER BY b.course_id NULLS LAST

-- name: stream_figures
SELECT b.course_id,
       coalesce(c.name, 'Course ' || b.course_id) AS course_name,
       b.course_stream,
       count(*) AS total_bookings,
       count(*) FILTER (WHERE b.confirmed = 2) AS confirmed,
       count(*) FILTER (WHERE b.confirmed = 1) AS pending,
       count(*) FILTER (WHERE b.confirmed = -1) AS cancelled,
       count(DISTINCT b.user_id) AS unique_users
FROM bookings AS b
LEFT JOIN courses AS c ON c.id = b.course_id
WHERE b.course_stream IS NOT NULL
GROUP BY b.course_id, c.name, b.course_stream
ORDER BY b.course_id NULLS LAST, b.course_stream COLLATE "C"

-- name: top_events
SELECT event_type, count(*) AS count, count(DISTINCT user_id) AS unique_users
FROM events
GROUP BY event_type
ORDER BY count(*) DESC, event_type COLLATE "C"
LIMIT %(limit)s

-- name: referral_figures
SELECT referral_code,
       count(*) AS bookings,
       count(*) FILTER (WHERE confirmed = 2) AS confirmed,
       count(DISTINCT user_id) AS unique_users,
       round(avg(discount_percent), 2) AS avg_discount_percent
FROM bookings
WHERE referral_code IS NOT NULL
GROUP BY referral_code
ORDER BY count(*) DESC, referral_code COLLATE "C"

-- name: lesson_conversion
WITH registered AS (
    SELECT lesson_type, lesson_date, count(*) AS users
    FROM (SELECT DISTINCT lesson_type, lesson_date, user_id
          FROM free_lesson_registrations) AS r
    GROUP BY lesson_type, lesson_date
),
attended AS (
    SELECT lesson_type, lesson_date, count(*) AS users
    FROM (SELECT DISTINCT details ->> 'lesson_type' AS lesson_type,
                          (details ->> 'lesson_date')::date AS lesson_date,
                          user_id
          FROM events
          WHERE event_type = 'lesson_attended' AND user_id IS NOT NULL) AS a
    GROUP BY lesson_type, lesson_date
),
joined AS (
    SELECT coalesce(r.lesson_type, a.lesson_type) AS lesson_type,
           coalesce(r.lesson_date, a.lesson_date) AS lesson_date,
           coalesce(r.users, 0) AS registrations,
           coalesce(a.users, 0) AS attendances,
           round(100.0 * coalesce(a.users, 0) / nullif(r.users, 0), 2) AS conversion_rate
    FROM registered AS r
    FULL OUTER JOIN attended AS a
        ON a.lesson_type = r.lesson_type AND a.lesson_date = r.lesson_date
)
SELECT * FROM joined
ORDER BY lesson_date DESC NULLS LAST, lesson_type COLLATE "C" NULLS LAST

-- name: user_search
-- Each user's latest non-null username and first_name, ILIKE'd; newest first_seen first.
WITH named AS (
    SELECT user_id, username, first_name, created_at AS at, id FROM bookings
    UNION ALL
    SELECT user_id, username, first_name, registered_at, id FROM free_lesson_registrations
),
usernames AS (
    SELECT DISTINCT ON (user_id) user_id, username
    FROM named WHERE username IS NOT NULL
    ORDER BY user_id, at DESC, id DESC
),
first_names AS (
    SELECT DISTINCT ON (user_id) user_id, first_name
    FROM named WHERE first_name IS NOT NULL
    ORDER BY user_id, at DESC, id DESC
),
users AS (
    SELECT user_id, min(at) AS first_seen
    FROM (SELECT user_id, created_at AS at FROM bookings
          UNION ALL SELECT user_id, created_at FROM events WHERE user_id IS NOT NULL
          UNION ALL SELECT user_id, registered_at FROM free_lesson_registrations) AS seen
    GROUP BY user_id
)
SELECT users.user_id, usernames.username, first_names.first_name, count(*) OVER () AS total
FROM users
LEFT JOIN usernames USING (user_id)
LEFT JOIN first_names USING (user_id)
WHERE usernames.username ILIKE %(username_pattern)s
   OR first_names.first_name ILIKE %(name_pattern)s
   OR users.user_id = %(user_id)s
ORDER BY users.first_seen DESC, users.user_id DESC
LIMIT %(limit)s
