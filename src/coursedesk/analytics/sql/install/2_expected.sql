-- Every summary table as it should be, computed from the source tables alone.
--
-- analytics_rebuild() fills the summaries from these views, and `coursedesk db verify`
-- compares each summary with its view: they are the definition the incremental fold
-- (3_fold.sql) must agree with. The searched names and the per-user rollups (segments,
-- funnel, retention, new users) read user_summaries, which verify checks against
-- analytics_expected_users first. The views hold no zero rows; the folded tables may (a
-- counter that fell back to zero stays, and readers skip it).

-- One row per user: names from the latest row that has
-- them (time, then row id), first and last seen, counts, and the stream of the latest
-- non-cancelled booking.
CREATE OR REPLACE VIEW analytics_expected_users AS
WITH booked AS (
    SELECT user_id, min(created_at) AS first_at, max(created_at) AS last_at,
           count(*)::int AS n,
           (count(*) FILTER (WHERE confirmed = 2))::int AS confirmed,
           (count(*) FILTER (WHERE confirmed = 1))::int AS pending
    FROM bookings GROUP BY user_id
),
evented AS (
    SELECT user_id, min(created_at) AS first_at, max(created_at) AS last_at,
           count(*)::int AS n,
           (count(*) FILTER (WHERE event_type = 'lesson_attended'))::int AS attended
    FROM events WHERE user_id IS NOT NULL GROUP BY user_id
),
registered AS (
    SELECT user_id, min(registered_at) AS first_at, max(registered_at) AS last_at,
           count(*)::int AS n
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
SELECT e.user_id, u.username, u.at AS username_at, u.row_id AS username_row,
       f.first_name, f.at AS first_name_at, f.row_id AS first_name_row,
       least(b.first_at, ev.first_at, r.first_at) AS first_seen,
       greatest(b.last_at, ev.last_at, r.last_at) AS last_seen,
       coalesce(b.n, 0) AS bookings_count, coalesce(b.confirmed, 0) AS confirmed_bookings,
       coalesce(b.pending, 0) AS pending_bookings, coalesce(ev.n, 0) AS events_count,
       coalesce(ev.attended, 0) AS lessons_attended, coalesce(r.n, 0) AS free_lessons_count,
       st.course_stream, st.at AS stream_booking_at, st.row_id AS stream_booking_id
FROM everyone AS e
LEFT JOIN booked AS b USING (user_id)
LEFT JOIN evented AS ev USING (user_id)
LEFT JOIN registered AS r USING (user_id)
LEFT JOIN latest_username AS u USING (user_id)
LEFT JOIN latest_first_name AS f USING (user_id)
LEFT JOIN latest_stream AS st USING (user_id);

-- The searched names: those of user_summaries, for every user who has one.
CREATE OR REPLACE VIEW analytics_expected_user_names AS
SELECT user_id, username, first_name FROM user_summaries
WHERE username IS NOT NULL OR first_name IS NOT NULL;

CREATE OR REPLACE VIEW analytics_expected_user_segments AS
SELECT status, course_stream, count(*)::int AS users
FROM user_summaries GROUP BY status, course_stream;

-- Time counters are kept per UTC quarter-hour, hour and day (span in minutes): rows are
-- counted per quarter-hour, and the hours and days summed from those.
CREATE OR REPLACE VIEW analytics_expected_activity_buckets AS
WITH quarters AS (
    SELECT bucket, sum(new_users)::int AS new_users, sum(bookings)::int AS bookings,
           sum(events)::int AS events,
           sum(free_lesson_registrations)::int AS free_lesson_registrations
    FROM (
        SELECT analytics_bucket(first_seen, 15::smallint) AS bucket, count(*) AS new_users,
               0 AS bookings, 0 AS events, 0 AS free_lesson_registrations
        FROM user_summaries GROUP BY 1
        UNION ALL
        SELECT analytics_bucket(created_at, 15::smallint), 0, count(*), 0, 0
        FROM bookings GROUP BY 1
        UNION ALL
        SELECT analytics_bucket(created_at, 15::smallint), 0, 0, count(*), 0
        FROM events GROUP BY 1
        UNION ALL
        SELECT analytics_bucket(registered_at, 15::smallint), 0, 0, 0, count(*)
        FROM free_lesson_registrations GROUP BY 1
    ) AS counted
    GROUP BY bucket
)
SELECT spans.span, analytics_bucket(q.bucket, spans.span) AS bucket,
       sum(q.new_users)::int AS new_users, sum(q.bookings)::int AS bookings,
       sum(q.events)::int AS events,
       sum(q.free_lesson_registrations)::int AS free_lesson_registrations
FROM quarters AS q
CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
GROUP BY 1, 2;

CREATE OR REPLACE VIEW analytics_expected_user_funnel AS
WITH quarters AS (
    SELECT analytics_bucket(first_seen, 15::smallint) AS bucket,
           analytics_funnel_steps(free_lessons_count, lessons_attended, bookings_count,
                                  confirmed_bookings) AS funnel_steps,
           count(*) AS users
    FROM user_summaries GROUP BY 1, 2
)
SELECT spans.span, analytics_bucket(q.bucket, spans.span) AS bucket, q.funnel_steps,
       sum(q.users)::int AS users
FROM quarters AS q
CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW analytics_expected_user_retention AS
WITH quarters AS (
    SELECT analytics_bucket(first_seen, 15::smallint) AS bucket,
           analytics_lifetime_weeks(first_seen, last_seen) AS lifetime_weeks,
           count(*) AS users
    FROM user_summaries GROUP BY 1, 2
)
SELECT spans.span, analytics_bucket(q.bucket, spans.span) AS bucket, q.lifetime_weeks,
       sum(q.users)::int AS users
FROM quarters AS q
CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW analytics_expected_course_members AS
SELECT course_id, user_id, count(*)::int AS bookings
FROM bookings GROUP BY course_id, user_id;

CREATE OR REPLACE VIEW analytics_expected_course_figures AS
SELECT course_id, count(*)::int AS total_bookings,
       (count(*) FILTER (WHERE confirmed = 2))::int AS confirmed,
       (count(*) FILTER (WHERE confirmed = 1))::int AS pending,
       (count(*) FILTER (WHERE confirmed = -1))::int AS cancelled,
       count(DISTINCT user_id)::int AS unique_users
FROM bookings GROUP BY course_id;

CREATE OR REPLACE VIEW analytics_expected_stream_members AS
SELECT course_id, course_stream, user_id, count(*)::int AS bookings
FROM bookings WHERE course_stream IS NOT NULL GROUP BY course_id, course_stream, user_id;

CREATE OR REPLACE VIEW analytics_expected_stream_figures AS
SELECT course_id, course_stream, count(*)::int AS total_bookings,
       (count(*) FILTER (WHERE confirmed = 2))::int AS confirmed,
       (count(*) FILTER (WHERE confirmed = 1))::int AS pending,
       (count(*) FILTER (WHERE confirmed = -1))::int AS cancelled,
       count(DISTINCT user_id)::int AS unique_users
FROM bookings WHERE course_stream IS NOT NULL GROUP BY course_id, course_stream;

CREATE OR REPLACE VIEW analytics_expected_referral_members AS
SELECT user_id, referral_code, count(*)::int AS bookings
FROM bookings WHERE referral_code IS NOT NULL GROUP BY user_id, referral_code;

CREATE OR REPLACE VIEW analytics_expected_referral_figures AS
SELECT referral_code, count(*)::int AS bookings,
       (count(*) FILTER (WHERE confirmed = 2))::int AS confirmed,
       count(DISTINCT user_id)::int AS unique_users,
       coalesce(sum(discount_percent), 0) AS discount_total,
       count(discount_percent)::int AS discounted
FROM bookings WHERE referral_code IS NOT NULL GROUP BY referral_code;

CREATE OR REPLACE VIEW analytics_expected_event_type_members AS
SELECT user_id, event_type, count(*)::int AS events
FROM events WHERE user_id IS NOT NULL GROUP BY user_id, event_type;

CREATE OR REPLACE VIEW analytics_expected_event_type_figures AS
SELECT event_type, count(*) AS events, count(DISTINCT user_id)::int AS unique_users
FROM events GROUP BY event_type;

-- Registrations and lesson attendances per (lesson_type, lesson_date); an attendance's
-- lesson comes from its details, a date that is not a real YYYY-MM-DD counting as none.
CREATE OR REPLACE VIEW analytics_lesson_rows AS
SELECT lesson_type, lesson_date, user_id, true AS registration
FROM free_lesson_registrations
UNION ALL
SELECT details ->> 'lesson_type', analytics_lesson_date(details ->> 'lesson_date'), user_id,
       false
FROM events WHERE event_type = 'lesson_attended';

CREATE OR REPLACE VIEW analytics_expected_lesson_members AS
SELECT lesson_type, lesson_date, user_id,
       (count(*) FILTER (WHERE registration))::int AS registrations,
       (count(*) FILTER (WHERE NOT registration))::int AS attendances
FROM analytics_lesson_rows WHERE user_id IS NOT NULL
GROUP BY lesson_type, lesson_date, user_id;

CREATE OR REPLACE VIEW analytics_expected_lesson_figures AS
SELECT lesson_type, lesson_date,
       (count(*) FILTER (WHERE registration))::int AS registrations,
       (count(*) FILTER (WHERE NOT registration))::int AS attendances,
       (count(DISTINCT user_id) FILTER (WHERE registration))::int AS registered_users,
       (count(DISTINCT user_id) FILTER (WHERE NOT registration))::int AS attending_users
FROM analytics_lesson_rows GROUP BY lesson_type, lesson_date;
