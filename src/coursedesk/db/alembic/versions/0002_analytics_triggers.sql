-- Migration 0002, frozen: the triggers that kept the summaries inside every write to
-- the source tables, until 0007 replaced them with the change log and the fold.
-- Applied by 0002_analytics.py, and again by 0007's downgrade.

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
$$;

CREATE FUNCTION analytics_user_summaries_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
delta AS (
    SELECT status, course_stream, sum(sign)::int AS users FROM changes
    GROUP BY status, course_stream HAVING sum(sign) <> 0
)
INSERT INTO user_segments AS g (status, course_stream, users)
SELECT status, course_stream, users FROM delta ORDER BY status, course_stream
ON CONFLICT (status, course_stream) DO UPDATE SET users = g.users + excluded.users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, new_users)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET new_users = t.new_users + excluded.new_users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket, analytics_funnel_steps(free_lessons_count, lessons_attended, bookings_count, confirmed_bookings) AS funnel_steps,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2, 3 HAVING sum(sign) <> 0
)
INSERT INTO user_funnel AS t (span, bucket, funnel_steps, users)
SELECT span, bucket, funnel_steps, n FROM delta ORDER BY span, bucket, funnel_steps
ON CONFLICT (span, bucket, funnel_steps) DO UPDATE SET users = t.users + excluded.users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket, analytics_lifetime_weeks(first_seen, last_seen) AS lifetime_weeks,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2, 3 HAVING sum(sign) <> 0
)
INSERT INTO user_retention AS t (span, bucket, lifetime_weeks, users)
SELECT span, bucket, lifetime_weeks, n FROM delta ORDER BY span, bucket, lifetime_weeks
ON CONFLICT (span, bucket, lifetime_weeks) DO UPDATE SET users = t.users + excluded.users;
RETURN NULL;
END
$$;

CREATE TRIGGER user_summaries_rollup_insert AFTER INSERT
ON user_summaries REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_user_summaries_insert();

CREATE FUNCTION analytics_user_summaries_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
delta AS (
    SELECT status, course_stream, sum(sign)::int AS users FROM changes
    GROUP BY status, course_stream HAVING sum(sign) <> 0
)
INSERT INTO user_segments AS g (status, course_stream, users)
SELECT status, course_stream, users FROM delta ORDER BY status, course_stream
ON CONFLICT (status, course_stream) DO UPDATE SET users = g.users + excluded.users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, new_users)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET new_users = t.new_users + excluded.new_users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket, analytics_funnel_steps(free_lessons_count, lessons_attended, bookings_count, confirmed_bookings) AS funnel_steps,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2, 3 HAVING sum(sign) <> 0
)
INSERT INTO user_funnel AS t (span, bucket, funnel_steps, users)
SELECT span, bucket, funnel_steps, n FROM delta ORDER BY span, bucket, funnel_steps
ON CONFLICT (span, bucket, funnel_steps) DO UPDATE SET users = t.users + excluded.users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket, analytics_lifetime_weeks(first_seen, last_seen) AS lifetime_weeks,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2, 3 HAVING sum(sign) <> 0
)
INSERT INTO user_retention AS t (span, bucket, lifetime_weeks, users)
SELECT span, bucket, lifetime_weeks, n FROM delta ORDER BY span, bucket, lifetime_weeks
ON CONFLICT (span, bucket, lifetime_weeks) DO UPDATE SET users = t.users + excluded.users;
RETURN NULL;
END
$$;

CREATE TRIGGER user_summaries_rollup_update AFTER UPDATE
ON user_summaries REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_user_summaries_update();

CREATE FUNCTION analytics_user_summaries_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
delta AS (
    SELECT status, course_stream, sum(sign)::int AS users FROM changes
    GROUP BY status, course_stream HAVING sum(sign) <> 0
)
INSERT INTO user_segments AS g (status, course_stream, users)
SELECT status, course_stream, users FROM delta ORDER BY status, course_stream
ON CONFLICT (status, course_stream) DO UPDATE SET users = g.users + excluded.users;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, new_users)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET new_users = t.new_users + excluded.new_users;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket, analytics_funnel_steps(free_lessons_count, lessons_attended, bookings_count, confirmed_bookings) AS funnel_steps,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2, 3 HAVING sum(sign) <> 0
)
INSERT INTO user_funnel AS t (span, bucket, funnel_steps, users)
SELECT span, bucket, funnel_steps, n FROM delta ORDER BY span, bucket, funnel_steps
ON CONFLICT (span, bucket, funnel_steps) DO UPDATE SET users = t.users + excluded.users;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(first_seen, spans.span) AS bucket, analytics_lifetime_weeks(first_seen, last_seen) AS lifetime_weeks,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2, 3 HAVING sum(sign) <> 0
)
INSERT INTO user_retention AS t (span, bucket, lifetime_weeks, users)
SELECT span, bucket, lifetime_weeks, n FROM delta ORDER BY span, bucket, lifetime_weeks
ON CONFLICT (span, bucket, lifetime_weeks) DO UPDATE SET users = t.users + excluded.users;
RETURN NULL;
END
$$;

CREATE TRIGGER user_summaries_rollup_delete AFTER DELETE
ON user_summaries REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_user_summaries_delete();

CREATE FUNCTION analytics_rebuild() RETURNS void LANGUAGE plpgsql
SET work_mem = '256MB' SET maintenance_work_mem = '256MB' AS $$
DECLARE
    drops text[];
    rebuilds text[];
    statement text;
BEGIN
TRUNCATE user_summaries, activity_buckets, user_segments, user_funnel, user_retention, course_figures, course_members, stream_figures, stream_members, event_type_figures, event_type_members, referral_figures, referral_members, lesson_figures, lesson_members;
-- Rows go into a table without indexes several times faster, and an index built over
-- the finished rows costs far less than one kept up row by row. The tables that several
-- counters merge into keep theirs: ON CONFLICT needs them.
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
WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY (ARRAY['user_summaries', 'user_segments', 'user_funnel', 'user_retention', 'course_figures', 'course_members', 'stream_figures', 'stream_members', 'event_type_figures', 'event_type_members', 'referral_figures', 'referral_members']);
FOREACH statement IN ARRAY drops LOOP
    EXECUTE statement;
END LOOP;
-- The per-user counters are taken from the finished table, not by its trigger.
ALTER TABLE user_summaries DISABLE TRIGGER user_summaries_rollup_insert;
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
ORDER BY e.user_id;
ALTER TABLE user_summaries ENABLE TRIGGER user_summaries_rollup_insert;
WITH changes AS (SELECT 1 AS sign, r.* FROM user_summaries AS r),
delta AS (
    SELECT status, course_stream, sum(sign)::int AS users FROM changes
    GROUP BY status, course_stream HAVING sum(sign) <> 0
)
INSERT INTO user_segments AS g (status, course_stream, users)
SELECT status, course_stream, users FROM delta ORDER BY status, course_stream;
WITH changes AS (SELECT 1 AS sign, r.* FROM user_summaries AS r),
quarters AS (
    SELECT analytics_bucket(first_seen, 15::smallint) AS bucket,
           count(*)::int AS n
    FROM changes GROUP BY 1
)
INSERT INTO activity_buckets AS t (span, bucket, new_users)
SELECT 15::smallint, bucket, n FROM quarters
UNION ALL
SELECT 60::smallint, analytics_bucket(bucket, 60::smallint) AS hour, sum(n)::int
FROM quarters GROUP BY hour
UNION ALL
SELECT 1440::smallint, analytics_bucket(bucket, 1440::smallint) AS day, sum(n)::int
FROM quarters GROUP BY day;
WITH changes AS (SELECT 1 AS sign, r.* FROM user_summaries AS r),
quarters AS (
    SELECT analytics_bucket(first_seen, 15::smallint) AS bucket, analytics_funnel_steps(free_lessons_count, lessons_attended, bookings_count, confirmed_bookings) AS funnel_steps,
           count(*)::int AS n
    FROM changes GROUP BY 1, 2
)
INSERT INTO user_funnel AS t (span, bucket, funnel_steps, users)
SELECT 15::smallint, bucket, funnel_steps, n FROM quarters
UNION ALL
SELECT 60::smallint, analytics_bucket(bucket, 60::smallint) AS hour, funnel_steps, sum(n)::int
FROM quarters GROUP BY hour, funnel_steps
UNION ALL
SELECT 1440::smallint, analytics_bucket(bucket, 1440::smallint) AS day, funnel_steps, sum(n)::int
FROM quarters GROUP BY day, funnel_steps;
WITH changes AS (SELECT 1 AS sign, r.* FROM user_summaries AS r),
quarters AS (
    SELECT analytics_bucket(first_seen, 15::smallint) AS bucket, analytics_lifetime_weeks(first_seen, last_seen) AS lifetime_weeks,
           count(*)::int AS n
    FROM changes GROUP BY 1, 2
)
INSERT INTO user_retention AS t (span, bucket, lifetime_weeks, users)
SELECT 15::smallint, bucket, lifetime_weeks, n FROM quarters
UNION ALL
SELECT 60::smallint, analytics_bucket(bucket, 60::smallint) AS hour, lifetime_weeks, sum(n)::int
FROM quarters GROUP BY hour, lifetime_weeks
UNION ALL
SELECT 1440::smallint, analytics_bucket(bucket, 1440::smallint) AS day, lifetime_weeks, sum(n)::int
FROM quarters GROUP BY day, lifetime_weeks;
WITH changes AS (SELECT 1 AS sign, r.* FROM bookings AS r),
quarters AS (
    SELECT analytics_bucket(created_at, 15::smallint) AS bucket,
           count(*)::int AS n
    FROM changes GROUP BY 1
)
INSERT INTO activity_buckets AS t (span, bucket, bookings)
SELECT 15::smallint, bucket, n FROM quarters
UNION ALL
SELECT 60::smallint, analytics_bucket(bucket, 60::smallint) AS hour, sum(n)::int
FROM quarters GROUP BY hour
UNION ALL
SELECT 1440::smallint, analytics_bucket(bucket, 1440::smallint) AS day, sum(n)::int
FROM quarters GROUP BY day
ON CONFLICT (span, bucket) DO UPDATE SET bookings = t.bookings + excluded.bookings;
WITH changes AS (SELECT 1 AS sign, r.* FROM bookings AS r), keyed AS (SELECT c.* FROM changes AS c WHERE true)
INSERT INTO course_members AS m (course_id, user_id, bookings)
SELECT course_id, user_id, count(*) FROM keyed WHERE user_id IS NOT NULL
GROUP BY course_id, user_id;
WITH changes AS (SELECT 1 AS sign, r.* FROM bookings AS r), keyed AS (SELECT c.* FROM changes AS c WHERE true)
INSERT INTO course_figures AS f (course_id, total_bookings, confirmed, pending, cancelled, unique_users)
SELECT course_id,
       coalesce(sum(sign), 0) AS total_bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
           coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled,
       count(DISTINCT user_id)
FROM keyed GROUP BY course_id;
WITH changes AS (SELECT 1 AS sign, r.* FROM bookings AS r), keyed AS (SELECT c.* FROM changes AS c WHERE c.course_stream IS NOT NULL)
INSERT INTO stream_members AS m (course_id, course_stream, user_id, bookings)
SELECT course_id, course_stream, user_id, count(*) FROM keyed WHERE user_id IS NOT NULL
GROUP BY course_id, course_stream, user_id;
WITH changes AS (SELECT 1 AS sign, r.* FROM bookings AS r), keyed AS (SELECT c.* FROM changes AS c WHERE c.course_stream IS NOT NULL)
INSERT INTO stream_figures AS f (course_id, course_stream, total_bookings, confirmed, pending, cancelled, unique_users)
SELECT course_id, course_stream,
       coalesce(sum(sign), 0) AS total_bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
           coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled,
       count(DISTINCT user_id)
FROM keyed GROUP BY course_id, course_stream;
WITH changes AS (SELECT 1 AS sign, r.* FROM bookings AS r), keyed AS (SELECT c.* FROM changes AS c WHERE c.referral_code IS NOT NULL)
INSERT INTO referral_members AS m (referral_code, user_id, bookings)
SELECT referral_code, user_id, count(*) FROM keyed WHERE user_id IS NOT NULL
GROUP BY referral_code, user_id;
WITH changes AS (SELECT 1 AS sign, r.* FROM bookings AS r), keyed AS (SELECT c.* FROM changes AS c WHERE c.referral_code IS NOT NULL)
INSERT INTO referral_figures AS f (referral_code, bookings, confirmed, discount_total, discounted, unique_users)
SELECT referral_code,
       coalesce(sum(sign), 0) AS bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign * discount_percent), 0) AS discount_total,
           coalesce(sum(sign) FILTER (WHERE discount_percent IS NOT NULL), 0) AS discounted,
       count(DISTINCT user_id)
FROM keyed GROUP BY referral_code;
WITH changes AS (SELECT 1 AS sign, r.* FROM events AS r),
quarters AS (
    SELECT analytics_bucket(created_at, 15::smallint) AS bucket,
           count(*)::int AS n
    FROM changes GROUP BY 1
)
INSERT INTO activity_buckets AS t (span, bucket, events)
SELECT 15::smallint, bucket, n FROM quarters
UNION ALL
SELECT 60::smallint, analytics_bucket(bucket, 60::smallint) AS hour, sum(n)::int
FROM quarters GROUP BY hour
UNION ALL
SELECT 1440::smallint, analytics_bucket(bucket, 1440::smallint) AS day, sum(n)::int
FROM quarters GROUP BY day
ON CONFLICT (span, bucket) DO UPDATE SET events = t.events + excluded.events;
WITH changes AS (SELECT 1 AS sign, r.* FROM events AS r), keyed AS (SELECT c.* FROM changes AS c WHERE true)
INSERT INTO event_type_members AS m (event_type, user_id, events)
SELECT event_type, user_id, count(*) FROM keyed WHERE user_id IS NOT NULL
GROUP BY event_type, user_id;
WITH changes AS (SELECT 1 AS sign, r.* FROM events AS r), keyed AS (SELECT c.* FROM changes AS c WHERE true)
INSERT INTO event_type_figures AS f (event_type, events, unique_users)
SELECT event_type,
       coalesce(sum(sign), 0) AS events,
       count(DISTINCT user_id)
FROM keyed GROUP BY event_type;
WITH changes AS (SELECT 1 AS sign, r.* FROM events AS r), keyed AS (SELECT c.*, c.details ->> 'lesson_type' AS lesson_type, analytics_lesson_date(c.details ->> 'lesson_date') AS lesson_date FROM changes AS c WHERE c.event_type = 'lesson_attended')
INSERT INTO lesson_members AS m (lesson_type, lesson_date, user_id, attendances)
SELECT lesson_type, lesson_date, user_id, count(*) FROM keyed WHERE user_id IS NOT NULL
GROUP BY lesson_type, lesson_date, user_id;
WITH changes AS (SELECT 1 AS sign, r.* FROM events AS r), keyed AS (SELECT c.*, c.details ->> 'lesson_type' AS lesson_type, analytics_lesson_date(c.details ->> 'lesson_date') AS lesson_date FROM changes AS c WHERE c.event_type = 'lesson_attended')
INSERT INTO lesson_figures AS f (lesson_type, lesson_date, attendances, attending_users)
SELECT lesson_type, lesson_date,
       coalesce(sum(sign), 0) AS attendances,
       count(DISTINCT user_id)
FROM keyed GROUP BY lesson_type, lesson_date;
WITH changes AS (SELECT 1 AS sign, r.* FROM free_lesson_registrations AS r),
quarters AS (
    SELECT analytics_bucket(registered_at, 15::smallint) AS bucket,
           count(*)::int AS n
    FROM changes GROUP BY 1
)
INSERT INTO activity_buckets AS t (span, bucket, free_lesson_registrations)
SELECT 15::smallint, bucket, n FROM quarters
UNION ALL
SELECT 60::smallint, analytics_bucket(bucket, 60::smallint) AS hour, sum(n)::int
FROM quarters GROUP BY hour
UNION ALL
SELECT 1440::smallint, analytics_bucket(bucket, 1440::smallint) AS day, sum(n)::int
FROM quarters GROUP BY day
ON CONFLICT (span, bucket) DO UPDATE SET free_lesson_registrations = t.free_lesson_registrations + excluded.free_lesson_registrations;
WITH changes AS (SELECT 1 AS sign, r.* FROM free_lesson_registrations AS r), keyed AS (SELECT c.* FROM changes AS c WHERE true)
INSERT INTO lesson_members AS m (lesson_type, lesson_date, user_id, registrations)
SELECT lesson_type, lesson_date, user_id, count(*) FROM keyed WHERE user_id IS NOT NULL
GROUP BY lesson_type, lesson_date, user_id
ON CONFLICT (lesson_type, lesson_date, user_id) DO UPDATE SET registrations = m.registrations + excluded.registrations;
WITH changes AS (SELECT 1 AS sign, r.* FROM free_lesson_registrations AS r), keyed AS (SELECT c.* FROM changes AS c WHERE true)
INSERT INTO lesson_figures AS f (lesson_type, lesson_date, registrations, registered_users)
SELECT lesson_type, lesson_date,
       coalesce(sum(sign), 0) AS registrations,
       count(DISTINCT user_id)
FROM keyed GROUP BY lesson_type, lesson_date
ON CONFLICT (lesson_type, lesson_date) DO UPDATE SET
    registrations = f.registrations + excluded.registrations, registered_users = f.registered_users + excluded.registered_users;
FOREACH statement IN ARRAY rebuilds LOOP
    EXECUTE statement;
END LOOP;
END
$$;

CREATE FUNCTION analytics_rebuild_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_rebuild();
    RETURN NULL;
END
$$;

CREATE FUNCTION analytics_bookings_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
seen AS (
    SELECT user_id, min(created_at) AS first_seen, max(created_at) AS last_seen,
           count(*) AS bookings, count(*) FILTER (WHERE confirmed = 2) AS confirmed,
           count(*) FILTER (WHERE confirmed = 1) AS pending
    FROM changes GROUP BY user_id
),
latest_username AS (
    SELECT DISTINCT ON (user_id) user_id, username, created_at AS at, id AS row_id
    FROM changes WHERE username IS NOT NULL ORDER BY user_id, created_at DESC, id DESC
),
latest_first_name AS (
    SELECT DISTINCT ON (user_id) user_id, first_name, created_at AS at, id AS row_id
    FROM changes WHERE first_name IS NOT NULL ORDER BY user_id, created_at DESC, id DESC
),
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
    username = CASE WHEN excluded.username_at IS NOT NULL AND (s.username_at IS NULL OR (excluded.username_at, excluded.username_row) > (s.username_at, s.username_row)) THEN excluded.username ELSE s.username END,
    username_at = CASE WHEN excluded.username_at IS NOT NULL AND (s.username_at IS NULL OR (excluded.username_at, excluded.username_row) > (s.username_at, s.username_row)) THEN excluded.username_at ELSE s.username_at END,
    username_row = CASE WHEN excluded.username_at IS NOT NULL AND (s.username_at IS NULL OR (excluded.username_at, excluded.username_row) > (s.username_at, s.username_row)) THEN excluded.username_row ELSE s.username_row END,
    first_name = CASE WHEN excluded.first_name_at IS NOT NULL AND (s.first_name_at IS NULL OR (excluded.first_name_at, excluded.first_name_row) > (s.first_name_at, s.first_name_row)) THEN excluded.first_name ELSE s.first_name END,
    first_name_at = CASE WHEN excluded.first_name_at IS NOT NULL AND (s.first_name_at IS NULL OR (excluded.first_name_at, excluded.first_name_row) > (s.first_name_at, s.first_name_row)) THEN excluded.first_name_at ELSE s.first_name_at END,
    first_name_row = CASE WHEN excluded.first_name_at IS NOT NULL AND (s.first_name_at IS NULL OR (excluded.first_name_at, excluded.first_name_row) > (s.first_name_at, s.first_name_row)) THEN excluded.first_name_row ELSE s.first_name_row END,
    course_stream = CASE WHEN excluded.stream_booking_at IS NOT NULL AND (s.stream_booking_at IS NULL OR (excluded.stream_booking_at, excluded.stream_booking_id) > (s.stream_booking_at, s.stream_booking_id)) THEN excluded.course_stream ELSE s.course_stream END,
    stream_booking_at = CASE WHEN excluded.stream_booking_at IS NOT NULL AND (s.stream_booking_at IS NULL OR (excluded.stream_booking_at, excluded.stream_booking_id) > (s.stream_booking_at, s.stream_booking_id)) THEN excluded.stream_booking_at ELSE s.stream_booking_at END,
    stream_booking_id = CASE WHEN excluded.stream_booking_at IS NOT NULL AND (s.stream_booking_at IS NULL OR (excluded.stream_booking_at, excluded.stream_booking_id) > (s.stream_booking_at, s.stream_booking_id)) THEN excluded.stream_booking_id ELSE s.stream_booking_id END;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(created_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, bookings)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET bookings = t.bookings + excluded.bookings;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT course_id, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY course_id, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO course_members AS m (course_id, user_id, bookings)
    SELECT course_id, user_id, n FROM member_delta ORDER BY user_id, course_id
    ON CONFLICT (course_id, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.course_id, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.course_id,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.course_id IS NOT DISTINCT FROM m.course_id
    GROUP BY m.course_id
),
row_delta AS (
    SELECT course_id,
           coalesce(sum(sign), 0) AS total_bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
           coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled
    FROM keyed GROUP BY course_id
)
INSERT INTO course_figures AS f (course_id, total_bookings, confirmed, pending, cancelled, unique_users)
SELECT r.course_id, r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.course_id IS NOT DISTINCT FROM r.course_id
WHERE (r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.course_id
ON CONFLICT (course_id) DO UPDATE SET
    total_bookings = f.total_bookings + excluded.total_bookings, confirmed = f.confirmed + excluded.confirmed, pending = f.pending + excluded.pending, cancelled = f.cancelled + excluded.cancelled, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE c.course_stream IS NOT NULL),
member_delta AS (
    SELECT course_id, course_stream, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY course_id, course_stream, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO stream_members AS m (course_id, course_stream, user_id, bookings)
    SELECT course_id, course_stream, user_id, n FROM member_delta ORDER BY user_id, course_id, course_stream
    ON CONFLICT (course_id, course_stream, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.course_id, m.course_stream, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.course_id, m.course_stream,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.course_id IS NOT DISTINCT FROM m.course_id AND d.course_stream IS NOT DISTINCT FROM m.course_stream
    GROUP BY m.course_id, m.course_stream
),
row_delta AS (
    SELECT course_id, course_stream,
           coalesce(sum(sign), 0) AS total_bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
           coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled
    FROM keyed GROUP BY course_id, course_stream
)
INSERT INTO stream_figures AS f (course_id, course_stream, total_bookings, confirmed, pending, cancelled, unique_users)
SELECT r.course_id, r.course_stream, r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.course_id IS NOT DISTINCT FROM r.course_id AND u.course_stream IS NOT DISTINCT FROM r.course_stream
WHERE (r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.course_id, r.course_stream
ON CONFLICT (course_id, course_stream) DO UPDATE SET
    total_bookings = f.total_bookings + excluded.total_bookings, confirmed = f.confirmed + excluded.confirmed, pending = f.pending + excluded.pending, cancelled = f.cancelled + excluded.cancelled, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE c.referral_code IS NOT NULL),
member_delta AS (
    SELECT referral_code, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY referral_code, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO referral_members AS m (referral_code, user_id, bookings)
    SELECT referral_code, user_id, n FROM member_delta ORDER BY user_id, referral_code
    ON CONFLICT (referral_code, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.referral_code, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.referral_code,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.referral_code IS NOT DISTINCT FROM m.referral_code
    GROUP BY m.referral_code
),
row_delta AS (
    SELECT referral_code,
           coalesce(sum(sign), 0) AS bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign * discount_percent), 0) AS discount_total,
           coalesce(sum(sign) FILTER (WHERE discount_percent IS NOT NULL), 0) AS discounted
    FROM keyed GROUP BY referral_code
)
INSERT INTO referral_figures AS f (referral_code, bookings, confirmed, discount_total, discounted, unique_users)
SELECT r.referral_code, r.bookings, r.confirmed, r.discount_total, r.discounted, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.referral_code IS NOT DISTINCT FROM r.referral_code
WHERE (r.bookings, r.confirmed, r.discount_total, r.discounted, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.referral_code
ON CONFLICT (referral_code) DO UPDATE SET
    bookings = f.bookings + excluded.bookings, confirmed = f.confirmed + excluded.confirmed, discount_total = f.discount_total + excluded.discount_total, discounted = f.discounted + excluded.discounted, unique_users = f.unique_users + excluded.unique_users;
RETURN NULL;
END
$$;

CREATE TRIGGER bookings_summaries_insert AFTER INSERT
ON bookings REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_bookings_insert();

CREATE FUNCTION analytics_bookings_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
PERFORM analytics_refresh_users(array(
    WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r)
    SELECT DISTINCT user_id FROM (
        SELECT user_id FROM changes WHERE user_id IS NOT NULL
        GROUP BY user_id, id, username, first_name, created_at, confirmed, course_stream HAVING sum(sign) <> 0
    ) AS changed
));
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(created_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, bookings)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET bookings = t.bookings + excluded.bookings;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT course_id, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY course_id, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO course_members AS m (course_id, user_id, bookings)
    SELECT course_id, user_id, n FROM member_delta ORDER BY user_id, course_id
    ON CONFLICT (course_id, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.course_id, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.course_id,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.course_id IS NOT DISTINCT FROM m.course_id
    GROUP BY m.course_id
),
row_delta AS (
    SELECT course_id,
           coalesce(sum(sign), 0) AS total_bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
           coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled
    FROM keyed GROUP BY course_id
)
INSERT INTO course_figures AS f (course_id, total_bookings, confirmed, pending, cancelled, unique_users)
SELECT r.course_id, r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.course_id IS NOT DISTINCT FROM r.course_id
WHERE (r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.course_id
ON CONFLICT (course_id) DO UPDATE SET
    total_bookings = f.total_bookings + excluded.total_bookings, confirmed = f.confirmed + excluded.confirmed, pending = f.pending + excluded.pending, cancelled = f.cancelled + excluded.cancelled, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE c.course_stream IS NOT NULL),
member_delta AS (
    SELECT course_id, course_stream, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY course_id, course_stream, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO stream_members AS m (course_id, course_stream, user_id, bookings)
    SELECT course_id, course_stream, user_id, n FROM member_delta ORDER BY user_id, course_id, course_stream
    ON CONFLICT (course_id, course_stream, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.course_id, m.course_stream, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.course_id, m.course_stream,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.course_id IS NOT DISTINCT FROM m.course_id AND d.course_stream IS NOT DISTINCT FROM m.course_stream
    GROUP BY m.course_id, m.course_stream
),
row_delta AS (
    SELECT course_id, course_stream,
           coalesce(sum(sign), 0) AS total_bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
           coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled
    FROM keyed GROUP BY course_id, course_stream
)
INSERT INTO stream_figures AS f (course_id, course_stream, total_bookings, confirmed, pending, cancelled, unique_users)
SELECT r.course_id, r.course_stream, r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.course_id IS NOT DISTINCT FROM r.course_id AND u.course_stream IS NOT DISTINCT FROM r.course_stream
WHERE (r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.course_id, r.course_stream
ON CONFLICT (course_id, course_stream) DO UPDATE SET
    total_bookings = f.total_bookings + excluded.total_bookings, confirmed = f.confirmed + excluded.confirmed, pending = f.pending + excluded.pending, cancelled = f.cancelled + excluded.cancelled, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE c.referral_code IS NOT NULL),
member_delta AS (
    SELECT referral_code, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY referral_code, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO referral_members AS m (referral_code, user_id, bookings)
    SELECT referral_code, user_id, n FROM member_delta ORDER BY user_id, referral_code
    ON CONFLICT (referral_code, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.referral_code, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.referral_code,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.referral_code IS NOT DISTINCT FROM m.referral_code
    GROUP BY m.referral_code
),
row_delta AS (
    SELECT referral_code,
           coalesce(sum(sign), 0) AS bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign * discount_percent), 0) AS discount_total,
           coalesce(sum(sign) FILTER (WHERE discount_percent IS NOT NULL), 0) AS discounted
    FROM keyed GROUP BY referral_code
)
INSERT INTO referral_figures AS f (referral_code, bookings, confirmed, discount_total, discounted, unique_users)
SELECT r.referral_code, r.bookings, r.confirmed, r.discount_total, r.discounted, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.referral_code IS NOT DISTINCT FROM r.referral_code
WHERE (r.bookings, r.confirmed, r.discount_total, r.discounted, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.referral_code
ON CONFLICT (referral_code) DO UPDATE SET
    bookings = f.bookings + excluded.bookings, confirmed = f.confirmed + excluded.confirmed, discount_total = f.discount_total + excluded.discount_total, discounted = f.discounted + excluded.discounted, unique_users = f.unique_users + excluded.unique_users;
RETURN NULL;
END
$$;

CREATE TRIGGER bookings_summaries_update AFTER UPDATE
ON bookings REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_bookings_update();

CREATE FUNCTION analytics_bookings_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
PERFORM analytics_refresh_users(array(
    WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r)
    SELECT DISTINCT user_id FROM (
        SELECT user_id FROM changes WHERE user_id IS NOT NULL
        GROUP BY user_id, id, username, first_name, created_at, confirmed, course_stream HAVING sum(sign) <> 0
    ) AS changed
));
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(created_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, bookings)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET bookings = t.bookings + excluded.bookings;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT course_id, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY course_id, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO course_members AS m (course_id, user_id, bookings)
    SELECT course_id, user_id, n FROM member_delta ORDER BY user_id, course_id
    ON CONFLICT (course_id, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.course_id, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.course_id,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.course_id IS NOT DISTINCT FROM m.course_id
    GROUP BY m.course_id
),
row_delta AS (
    SELECT course_id,
           coalesce(sum(sign), 0) AS total_bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
           coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled
    FROM keyed GROUP BY course_id
)
INSERT INTO course_figures AS f (course_id, total_bookings, confirmed, pending, cancelled, unique_users)
SELECT r.course_id, r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.course_id IS NOT DISTINCT FROM r.course_id
WHERE (r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.course_id
ON CONFLICT (course_id) DO UPDATE SET
    total_bookings = f.total_bookings + excluded.total_bookings, confirmed = f.confirmed + excluded.confirmed, pending = f.pending + excluded.pending, cancelled = f.cancelled + excluded.cancelled, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE c.course_stream IS NOT NULL),
member_delta AS (
    SELECT course_id, course_stream, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY course_id, course_stream, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO stream_members AS m (course_id, course_stream, user_id, bookings)
    SELECT course_id, course_stream, user_id, n FROM member_delta ORDER BY user_id, course_id, course_stream
    ON CONFLICT (course_id, course_stream, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.course_id, m.course_stream, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.course_id, m.course_stream,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.course_id IS NOT DISTINCT FROM m.course_id AND d.course_stream IS NOT DISTINCT FROM m.course_stream
    GROUP BY m.course_id, m.course_stream
),
row_delta AS (
    SELECT course_id, course_stream,
           coalesce(sum(sign), 0) AS total_bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
           coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled
    FROM keyed GROUP BY course_id, course_stream
)
INSERT INTO stream_figures AS f (course_id, course_stream, total_bookings, confirmed, pending, cancelled, unique_users)
SELECT r.course_id, r.course_stream, r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.course_id IS NOT DISTINCT FROM r.course_id AND u.course_stream IS NOT DISTINCT FROM r.course_stream
WHERE (r.total_bookings, r.confirmed, r.pending, r.cancelled, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.course_id, r.course_stream
ON CONFLICT (course_id, course_stream) DO UPDATE SET
    total_bookings = f.total_bookings + excluded.total_bookings, confirmed = f.confirmed + excluded.confirmed, pending = f.pending + excluded.pending, cancelled = f.cancelled + excluded.cancelled, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE c.referral_code IS NOT NULL),
member_delta AS (
    SELECT referral_code, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY referral_code, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO referral_members AS m (referral_code, user_id, bookings)
    SELECT referral_code, user_id, n FROM member_delta ORDER BY user_id, referral_code
    ON CONFLICT (referral_code, user_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
    RETURNING m.referral_code, m.user_id, m.bookings AS now
),
user_delta AS (
    SELECT m.referral_code,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.referral_code IS NOT DISTINCT FROM m.referral_code
    GROUP BY m.referral_code
),
row_delta AS (
    SELECT referral_code,
           coalesce(sum(sign), 0) AS bookings,
           coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
           coalesce(sum(sign * discount_percent), 0) AS discount_total,
           coalesce(sum(sign) FILTER (WHERE discount_percent IS NOT NULL), 0) AS discounted
    FROM keyed GROUP BY referral_code
)
INSERT INTO referral_figures AS f (referral_code, bookings, confirmed, discount_total, discounted, unique_users)
SELECT r.referral_code, r.bookings, r.confirmed, r.discount_total, r.discounted, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.referral_code IS NOT DISTINCT FROM r.referral_code
WHERE (r.bookings, r.confirmed, r.discount_total, r.discounted, coalesce(u.users, 0)) <> (0, 0, 0, 0, 0)
ORDER BY r.referral_code
ON CONFLICT (referral_code) DO UPDATE SET
    bookings = f.bookings + excluded.bookings, confirmed = f.confirmed + excluded.confirmed, discount_total = f.discount_total + excluded.discount_total, discounted = f.discounted + excluded.discounted, unique_users = f.unique_users + excluded.unique_users;
RETURN NULL;
END
$$;

CREATE TRIGGER bookings_summaries_delete AFTER DELETE
ON bookings REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_bookings_delete();

CREATE TRIGGER bookings_summaries_truncate AFTER TRUNCATE ON bookings
FOR EACH STATEMENT EXECUTE FUNCTION analytics_rebuild_after_truncate();

CREATE FUNCTION analytics_events_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r)
INSERT INTO user_summaries AS s (user_id, first_seen, last_seen, events_count, lessons_attended)
SELECT user_id, min(created_at), max(created_at), count(*),
       count(*) FILTER (WHERE event_type = 'lesson_attended')
FROM changes WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE SET
    first_seen = least(s.first_seen, excluded.first_seen),
    last_seen = greatest(s.last_seen, excluded.last_seen),
    events_count = s.events_count + excluded.events_count,
    lessons_attended = s.lessons_attended + excluded.lessons_attended;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(created_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, events)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET events = t.events + excluded.events;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT event_type, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY event_type, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO event_type_members AS m (event_type, user_id, events)
    SELECT event_type, user_id, n FROM member_delta ORDER BY user_id, event_type
    ON CONFLICT (event_type, user_id) DO UPDATE SET events = m.events + excluded.events
    RETURNING m.event_type, m.user_id, m.events AS now
),
user_delta AS (
    SELECT m.event_type,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.event_type IS NOT DISTINCT FROM m.event_type
    GROUP BY m.event_type
),
row_delta AS (
    SELECT event_type,
           coalesce(sum(sign), 0) AS events
    FROM keyed GROUP BY event_type
)
INSERT INTO event_type_figures AS f (event_type, events, unique_users)
SELECT r.event_type, r.events, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.event_type IS NOT DISTINCT FROM r.event_type
WHERE (r.events, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.event_type
ON CONFLICT (event_type) DO UPDATE SET
    events = f.events + excluded.events, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
keyed AS (SELECT c.*, c.details ->> 'lesson_type' AS lesson_type, analytics_lesson_date(c.details ->> 'lesson_date') AS lesson_date FROM changes AS c WHERE c.event_type = 'lesson_attended'),
member_delta AS (
    SELECT lesson_type, lesson_date, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY lesson_type, lesson_date, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO lesson_members AS m (lesson_type, lesson_date, user_id, attendances)
    SELECT lesson_type, lesson_date, user_id, n FROM member_delta ORDER BY user_id, lesson_type, lesson_date
    ON CONFLICT (lesson_type, lesson_date, user_id) DO UPDATE SET attendances = m.attendances + excluded.attendances
    RETURNING m.lesson_type, m.lesson_date, m.user_id, m.attendances AS now
),
user_delta AS (
    SELECT m.lesson_type, m.lesson_date,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.lesson_type IS NOT DISTINCT FROM m.lesson_type AND d.lesson_date IS NOT DISTINCT FROM m.lesson_date
    GROUP BY m.lesson_type, m.lesson_date
),
row_delta AS (
    SELECT lesson_type, lesson_date,
           coalesce(sum(sign), 0) AS attendances
    FROM keyed GROUP BY lesson_type, lesson_date
)
INSERT INTO lesson_figures AS f (lesson_type, lesson_date, attendances, attending_users)
SELECT r.lesson_type, r.lesson_date, r.attendances, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.lesson_type IS NOT DISTINCT FROM r.lesson_type AND u.lesson_date IS NOT DISTINCT FROM r.lesson_date
WHERE (r.attendances, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.lesson_type, r.lesson_date
ON CONFLICT (lesson_type, lesson_date) DO UPDATE SET
    attendances = f.attendances + excluded.attendances, attending_users = f.attending_users + excluded.attending_users;
RETURN NULL;
END
$$;

CREATE TRIGGER events_summaries_insert AFTER INSERT
ON events REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_events_insert();

CREATE FUNCTION analytics_events_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
PERFORM analytics_refresh_users(array(
    WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r)
    SELECT DISTINCT user_id FROM (
        SELECT user_id FROM changes WHERE user_id IS NOT NULL
        GROUP BY user_id, created_at, event_type = 'lesson_attended' HAVING sum(sign) <> 0
    ) AS changed
));
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(created_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, events)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET events = t.events + excluded.events;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT event_type, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY event_type, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO event_type_members AS m (event_type, user_id, events)
    SELECT event_type, user_id, n FROM member_delta ORDER BY user_id, event_type
    ON CONFLICT (event_type, user_id) DO UPDATE SET events = m.events + excluded.events
    RETURNING m.event_type, m.user_id, m.events AS now
),
user_delta AS (
    SELECT m.event_type,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.event_type IS NOT DISTINCT FROM m.event_type
    GROUP BY m.event_type
),
row_delta AS (
    SELECT event_type,
           coalesce(sum(sign), 0) AS events
    FROM keyed GROUP BY event_type
)
INSERT INTO event_type_figures AS f (event_type, events, unique_users)
SELECT r.event_type, r.events, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.event_type IS NOT DISTINCT FROM r.event_type
WHERE (r.events, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.event_type
ON CONFLICT (event_type) DO UPDATE SET
    events = f.events + excluded.events, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
keyed AS (SELECT c.*, c.details ->> 'lesson_type' AS lesson_type, analytics_lesson_date(c.details ->> 'lesson_date') AS lesson_date FROM changes AS c WHERE c.event_type = 'lesson_attended'),
member_delta AS (
    SELECT lesson_type, lesson_date, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY lesson_type, lesson_date, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO lesson_members AS m (lesson_type, lesson_date, user_id, attendances)
    SELECT lesson_type, lesson_date, user_id, n FROM member_delta ORDER BY user_id, lesson_type, lesson_date
    ON CONFLICT (lesson_type, lesson_date, user_id) DO UPDATE SET attendances = m.attendances + excluded.attendances
    RETURNING m.lesson_type, m.lesson_date, m.user_id, m.attendances AS now
),
user_delta AS (
    SELECT m.lesson_type, m.lesson_date,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.lesson_type IS NOT DISTINCT FROM m.lesson_type AND d.lesson_date IS NOT DISTINCT FROM m.lesson_date
    GROUP BY m.lesson_type, m.lesson_date
),
row_delta AS (
    SELECT lesson_type, lesson_date,
           coalesce(sum(sign), 0) AS attendances
    FROM keyed GROUP BY lesson_type, lesson_date
)
INSERT INTO lesson_figures AS f (lesson_type, lesson_date, attendances, attending_users)
SELECT r.lesson_type, r.lesson_date, r.attendances, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.lesson_type IS NOT DISTINCT FROM r.lesson_type AND u.lesson_date IS NOT DISTINCT FROM r.lesson_date
WHERE (r.attendances, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.lesson_type, r.lesson_date
ON CONFLICT (lesson_type, lesson_date) DO UPDATE SET
    attendances = f.attendances + excluded.attendances, attending_users = f.attending_users + excluded.attending_users;
RETURN NULL;
END
$$;

CREATE TRIGGER events_summaries_update AFTER UPDATE
ON events REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_events_update();

CREATE FUNCTION analytics_events_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
PERFORM analytics_refresh_users(array(
    WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r)
    SELECT DISTINCT user_id FROM (
        SELECT user_id FROM changes WHERE user_id IS NOT NULL
        GROUP BY user_id, created_at, event_type = 'lesson_attended' HAVING sum(sign) <> 0
    ) AS changed
));
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(created_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, events)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET events = t.events + excluded.events;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT event_type, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY event_type, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO event_type_members AS m (event_type, user_id, events)
    SELECT event_type, user_id, n FROM member_delta ORDER BY user_id, event_type
    ON CONFLICT (event_type, user_id) DO UPDATE SET events = m.events + excluded.events
    RETURNING m.event_type, m.user_id, m.events AS now
),
user_delta AS (
    SELECT m.event_type,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.event_type IS NOT DISTINCT FROM m.event_type
    GROUP BY m.event_type
),
row_delta AS (
    SELECT event_type,
           coalesce(sum(sign), 0) AS events
    FROM keyed GROUP BY event_type
)
INSERT INTO event_type_figures AS f (event_type, events, unique_users)
SELECT r.event_type, r.events, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.event_type IS NOT DISTINCT FROM r.event_type
WHERE (r.events, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.event_type
ON CONFLICT (event_type) DO UPDATE SET
    events = f.events + excluded.events, unique_users = f.unique_users + excluded.unique_users;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
keyed AS (SELECT c.*, c.details ->> 'lesson_type' AS lesson_type, analytics_lesson_date(c.details ->> 'lesson_date') AS lesson_date FROM changes AS c WHERE c.event_type = 'lesson_attended'),
member_delta AS (
    SELECT lesson_type, lesson_date, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY lesson_type, lesson_date, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO lesson_members AS m (lesson_type, lesson_date, user_id, attendances)
    SELECT lesson_type, lesson_date, user_id, n FROM member_delta ORDER BY user_id, lesson_type, lesson_date
    ON CONFLICT (lesson_type, lesson_date, user_id) DO UPDATE SET attendances = m.attendances + excluded.attendances
    RETURNING m.lesson_type, m.lesson_date, m.user_id, m.attendances AS now
),
user_delta AS (
    SELECT m.lesson_type, m.lesson_date,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.lesson_type IS NOT DISTINCT FROM m.lesson_type AND d.lesson_date IS NOT DISTINCT FROM m.lesson_date
    GROUP BY m.lesson_type, m.lesson_date
),
row_delta AS (
    SELECT lesson_type, lesson_date,
           coalesce(sum(sign), 0) AS attendances
    FROM keyed GROUP BY lesson_type, lesson_date
)
INSERT INTO lesson_figures AS f (lesson_type, lesson_date, attendances, attending_users)
SELECT r.lesson_type, r.lesson_date, r.attendances, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.lesson_type IS NOT DISTINCT FROM r.lesson_type AND u.lesson_date IS NOT DISTINCT FROM r.lesson_date
WHERE (r.attendances, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.lesson_type, r.lesson_date
ON CONFLICT (lesson_type, lesson_date) DO UPDATE SET
    attendances = f.attendances + excluded.attendances, attending_users = f.attending_users + excluded.attending_users;
RETURN NULL;
END
$$;

CREATE TRIGGER events_summaries_delete AFTER DELETE
ON events REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_events_delete();

CREATE TRIGGER events_summaries_truncate AFTER TRUNCATE ON events
FOR EACH STATEMENT EXECUTE FUNCTION analytics_rebuild_after_truncate();

CREATE FUNCTION analytics_free_lesson_registrations_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
seen AS (
    SELECT user_id, min(registered_at) AS first_seen, max(registered_at) AS last_seen,
           count(*) AS registrations
    FROM changes GROUP BY user_id
),
latest_username AS (
    SELECT DISTINCT ON (user_id) user_id, username, registered_at AS at, id AS row_id
    FROM changes WHERE username IS NOT NULL ORDER BY user_id, registered_at DESC, id DESC
),
latest_first_name AS (
    SELECT DISTINCT ON (user_id) user_id, first_name, registered_at AS at, id AS row_id
    FROM changes WHERE first_name IS NOT NULL ORDER BY user_id, registered_at DESC, id DESC
)
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
    username = CASE WHEN excluded.username_at IS NOT NULL AND (s.username_at IS NULL OR (excluded.username_at, excluded.username_row) > (s.username_at, s.username_row)) THEN excluded.username ELSE s.username END,
    username_at = CASE WHEN excluded.username_at IS NOT NULL AND (s.username_at IS NULL OR (excluded.username_at, excluded.username_row) > (s.username_at, s.username_row)) THEN excluded.username_at ELSE s.username_at END,
    username_row = CASE WHEN excluded.username_at IS NOT NULL AND (s.username_at IS NULL OR (excluded.username_at, excluded.username_row) > (s.username_at, s.username_row)) THEN excluded.username_row ELSE s.username_row END,
    first_name = CASE WHEN excluded.first_name_at IS NOT NULL AND (s.first_name_at IS NULL OR (excluded.first_name_at, excluded.first_name_row) > (s.first_name_at, s.first_name_row)) THEN excluded.first_name ELSE s.first_name END,
    first_name_at = CASE WHEN excluded.first_name_at IS NOT NULL AND (s.first_name_at IS NULL OR (excluded.first_name_at, excluded.first_name_row) > (s.first_name_at, s.first_name_row)) THEN excluded.first_name_at ELSE s.first_name_at END,
    first_name_row = CASE WHEN excluded.first_name_at IS NOT NULL AND (s.first_name_at IS NULL OR (excluded.first_name_at, excluded.first_name_row) > (s.first_name_at, s.first_name_row)) THEN excluded.first_name_row ELSE s.first_name_row END;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(registered_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, free_lesson_registrations)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET free_lesson_registrations = t.free_lesson_registrations + excluded.free_lesson_registrations;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT lesson_type, lesson_date, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY lesson_type, lesson_date, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO lesson_members AS m (lesson_type, lesson_date, user_id, registrations)
    SELECT lesson_type, lesson_date, user_id, n FROM member_delta ORDER BY user_id, lesson_type, lesson_date
    ON CONFLICT (lesson_type, lesson_date, user_id) DO UPDATE SET registrations = m.registrations + excluded.registrations
    RETURNING m.lesson_type, m.lesson_date, m.user_id, m.registrations AS now
),
user_delta AS (
    SELECT m.lesson_type, m.lesson_date,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.lesson_type IS NOT DISTINCT FROM m.lesson_type AND d.lesson_date IS NOT DISTINCT FROM m.lesson_date
    GROUP BY m.lesson_type, m.lesson_date
),
row_delta AS (
    SELECT lesson_type, lesson_date,
           coalesce(sum(sign), 0) AS registrations
    FROM keyed GROUP BY lesson_type, lesson_date
)
INSERT INTO lesson_figures AS f (lesson_type, lesson_date, registrations, registered_users)
SELECT r.lesson_type, r.lesson_date, r.registrations, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.lesson_type IS NOT DISTINCT FROM r.lesson_type AND u.lesson_date IS NOT DISTINCT FROM r.lesson_date
WHERE (r.registrations, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.lesson_type, r.lesson_date
ON CONFLICT (lesson_type, lesson_date) DO UPDATE SET
    registrations = f.registrations + excluded.registrations, registered_users = f.registered_users + excluded.registered_users;
RETURN NULL;
END
$$;

CREATE TRIGGER free_lesson_registrations_summaries_insert AFTER INSERT
ON free_lesson_registrations REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_free_lesson_registrations_insert();

CREATE FUNCTION analytics_free_lesson_registrations_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
PERFORM analytics_refresh_users(array(
    WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r)
    SELECT DISTINCT user_id FROM (
        SELECT user_id FROM changes WHERE user_id IS NOT NULL
        GROUP BY user_id, id, username, first_name, registered_at HAVING sum(sign) <> 0
    ) AS changed
));
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(registered_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, free_lesson_registrations)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET free_lesson_registrations = t.free_lesson_registrations + excluded.free_lesson_registrations;
WITH changes AS (SELECT 1 AS sign, r.* FROM new_rows AS r UNION ALL SELECT -1, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT lesson_type, lesson_date, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY lesson_type, lesson_date, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO lesson_members AS m (lesson_type, lesson_date, user_id, registrations)
    SELECT lesson_type, lesson_date, user_id, n FROM member_delta ORDER BY user_id, lesson_type, lesson_date
    ON CONFLICT (lesson_type, lesson_date, user_id) DO UPDATE SET registrations = m.registrations + excluded.registrations
    RETURNING m.lesson_type, m.lesson_date, m.user_id, m.registrations AS now
),
user_delta AS (
    SELECT m.lesson_type, m.lesson_date,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.lesson_type IS NOT DISTINCT FROM m.lesson_type AND d.lesson_date IS NOT DISTINCT FROM m.lesson_date
    GROUP BY m.lesson_type, m.lesson_date
),
row_delta AS (
    SELECT lesson_type, lesson_date,
           coalesce(sum(sign), 0) AS registrations
    FROM keyed GROUP BY lesson_type, lesson_date
)
INSERT INTO lesson_figures AS f (lesson_type, lesson_date, registrations, registered_users)
SELECT r.lesson_type, r.lesson_date, r.registrations, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.lesson_type IS NOT DISTINCT FROM r.lesson_type AND u.lesson_date IS NOT DISTINCT FROM r.lesson_date
WHERE (r.registrations, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.lesson_type, r.lesson_date
ON CONFLICT (lesson_type, lesson_date) DO UPDATE SET
    registrations = f.registrations + excluded.registrations, registered_users = f.registered_users + excluded.registered_users;
RETURN NULL;
END
$$;

CREATE TRIGGER free_lesson_registrations_summaries_update AFTER UPDATE
ON free_lesson_registrations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_free_lesson_registrations_update();

CREATE FUNCTION analytics_free_lesson_registrations_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
PERFORM analytics_refresh_users(array(
    WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r)
    SELECT DISTINCT user_id FROM (
        SELECT user_id FROM changes WHERE user_id IS NOT NULL
        GROUP BY user_id, id, username, first_name, registered_at HAVING sum(sign) <> 0
    ) AS changed
));
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
delta AS (
    SELECT spans.span, analytics_bucket(registered_at, spans.span) AS bucket,
           sum(sign)::int AS n
    FROM changes CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2 HAVING sum(sign) <> 0
)
INSERT INTO activity_buckets AS t (span, bucket, free_lesson_registrations)
SELECT span, bucket, n FROM delta ORDER BY span, bucket
ON CONFLICT (span, bucket) DO UPDATE SET free_lesson_registrations = t.free_lesson_registrations + excluded.free_lesson_registrations;
WITH changes AS (SELECT -1 AS sign, r.* FROM old_rows AS r),
keyed AS (SELECT c.* FROM changes AS c WHERE true),
member_delta AS (
    SELECT lesson_type, lesson_date, user_id, sum(sign)::int AS n FROM keyed
    WHERE user_id IS NOT NULL GROUP BY lesson_type, lesson_date, user_id HAVING sum(sign) <> 0
),
members AS (
    INSERT INTO lesson_members AS m (lesson_type, lesson_date, user_id, registrations)
    SELECT lesson_type, lesson_date, user_id, n FROM member_delta ORDER BY user_id, lesson_type, lesson_date
    ON CONFLICT (lesson_type, lesson_date, user_id) DO UPDATE SET registrations = m.registrations + excluded.registrations
    RETURNING m.lesson_type, m.lesson_date, m.user_id, m.registrations AS now
),
user_delta AS (
    SELECT m.lesson_type, m.lesson_date,
           sum(CASE WHEN m.now > 0 AND m.now - d.n <= 0 THEN 1
                    WHEN m.now <= 0 AND m.now - d.n > 0 THEN -1 ELSE 0 END)::int AS users
    FROM members AS m JOIN member_delta AS d
      ON d.user_id = m.user_id AND d.lesson_type IS NOT DISTINCT FROM m.lesson_type AND d.lesson_date IS NOT DISTINCT FROM m.lesson_date
    GROUP BY m.lesson_type, m.lesson_date
),
row_delta AS (
    SELECT lesson_type, lesson_date,
           coalesce(sum(sign), 0) AS registrations
    FROM keyed GROUP BY lesson_type, lesson_date
)
INSERT INTO lesson_figures AS f (lesson_type, lesson_date, registrations, registered_users)
SELECT r.lesson_type, r.lesson_date, r.registrations, coalesce(u.users, 0)
FROM row_delta AS r LEFT JOIN user_delta AS u ON u.lesson_type IS NOT DISTINCT FROM r.lesson_type AND u.lesson_date IS NOT DISTINCT FROM r.lesson_date
WHERE (r.registrations, coalesce(u.users, 0)) <> (0, 0)
ORDER BY r.lesson_type, r.lesson_date
ON CONFLICT (lesson_type, lesson_date) DO UPDATE SET
    registrations = f.registrations + excluded.registrations, registered_users = f.registered_users + excluded.registered_users;
RETURN NULL;
END
$$;

CREATE TRIGGER free_lesson_registrations_summaries_delete AFTER DELETE
ON free_lesson_registrations REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_free_lesson_registrations_delete();

CREATE TRIGGER free_lesson_registrations_summaries_truncate AFTER TRUNCATE ON free_lesson_registrations
FOR EACH STATEMENT EXECUTE FUNCTION analytics_rebuild_after_truncate();
