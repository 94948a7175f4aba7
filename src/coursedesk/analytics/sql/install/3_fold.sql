-- The fold: analytics_changes (1_capture.sql) turned into the summary tables, a batch at
-- a time, by one process at a time.
--
-- The caller opens a REPEATABLE READ transaction, locks analytics_fold_state in
-- EXCLUSIVE mode before its first query (so its snapshot is taken after the previous
-- batch committed), calls analytics_fold(max_rows) and commits. The change rows a batch
-- reads are deleted in the same transaction that updates the summaries, so each is
-- applied exactly once: a crash mid-batch rolls both back. Rows of a transaction still
-- open are invisible here and stay for a later batch; nothing waits for them.
--
-- Within a batch:
-- 1. rows added for a user merge into their summary: counts add up, first_seen and
--    last_seen take the min and max, names and stream the value of the most recent row
--    (time, then row id); the order in which rows arrive changes nothing;
-- 2. a row updated or deleted comes back as its old version with sign -1 (and the new
--    one with +1). All of that user's visible change rows are taken with it, so the old
--    version is either in their summary already or in this batch, where the two cancel.
--    It is then subtracted like a count, unless it may have been the row that decided
--    a value that does not add up (first or last seen, name, stream): that user is
--    recomputed from the source tables, which the same snapshot shows with exactly the
--    changes this batch consumes;
-- 3. grouped counters add signed rows (+1 new, -1 old); distinct users per group come
--    from member rows (group, user, rows): a user joins a group when their count rises
--    from zero and leaves it when the count falls back to zero;
-- 4. the per-user rollups (segments, funnel, retention, new users) add the difference
--    between the touched users' summaries after and before.
-- Summary rows are written in key order, and only this transaction writes them.

CREATE OR REPLACE FUNCTION analytics_require_fold_lock() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'relation' AND relation = 'analytics_fold_state'::regclass
          AND pid = pg_backend_pid() AND mode = 'ExclusiveLock' AND granted
    ) THEN
        RAISE EXCEPTION 'the summaries are written only under the fold lock'
            USING HINT = 'LOCK TABLE analytics_fold_state IN EXCLUSIVE MODE first';
    END IF;
END
$$;

-- Whether a value seen at (at, row_id) is more recent than one seen at (than_at, than_row).
CREATE OR REPLACE FUNCTION analytics_is_newer(
    at timestamptz, row_id integer, than_at timestamptz, than_row integer
) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT at IS NOT NULL AND (than_at IS NULL OR (at, row_id) > (than_at, than_row))
$$;

-- +1 when a member's row count rose from zero to `now`, -1 when it fell to zero, else 0.
CREATE OR REPLACE FUNCTION analytics_membership_change(now integer, delta integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (now > 0)::int - (now - delta > 0)::int
$$;

-- One user's summary row from the source tables (no row when they have none); the same
-- figures as analytics_expected_users, for a handful of users at a time.
CREATE OR REPLACE FUNCTION analytics_user_from_source(uid bigint)
RETURNS TABLE (
    user_id bigint, username text, username_at timestamptz, username_row integer,
    first_name text, first_name_at timestamptz, first_name_row integer,
    first_seen timestamptz, last_seen timestamptz, bookings_count integer,
    confirmed_bookings integer, pending_bookings integer, events_count integer,
    lessons_attended integer, free_lessons_count integer, course_stream text,
    stream_booking_at timestamptz, stream_booking_id integer
) LANGUAGE sql STABLE AS $$
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
$$;

CREATE OR REPLACE FUNCTION analytics_record_fold(folded integer) RETURNS void
LANGUAGE sql AS $$
    UPDATE analytics_fold_state
    SET folded_at = clock_timestamp(), folded_rows = folded_rows + folded, error = NULL,
        failed_at = NULL
    WHERE id = 1
$$;

-- The working tables of a batch, made once per session.
CREATE OR REPLACE FUNCTION analytics_prepare_fold() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp.fold_batch') IS NULL THEN
        -- The change rows taken from the log as they are, then read into columns.
        CREATE TEMP TABLE fold_taken (LIKE analytics_changes) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE fold_batch (
            captured_at timestamptz, source text, sign smallint, row_id bigint,
            user_id bigint, at timestamptz, username text, first_name text,
            course_id integer, course_stream text, confirmed smallint, referral_code text,
            discount_percent numeric(5, 2), event_type text, lesson_type text,
            lesson_date date
        ) ON COMMIT DELETE ROWS;
        -- The same netted: an UPDATE's old and new row cancel out where they agree on
        -- every column a figure reads.
        CREATE TEMP TABLE fold_net (LIKE fold_batch) ON COMMIT DELETE ROWS;
        -- Users with a row retracted: recomputed from the source tables.
        CREATE TEMP TABLE fold_recomputed (user_id bigint PRIMARY KEY) ON COMMIT DELETE ROWS;
        -- What the per-user rollups read of each touched user, before the batch; then
        -- the signed difference after minus before.
        CREATE TEMP TABLE fold_users_before (
            user_id bigint, status text, course_stream text, first_seen timestamptz,
            funnel_steps smallint, lifetime_weeks smallint
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE fold_user_changes (
            sign integer, status text, course_stream text, first_seen timestamptz,
            funnel_steps smallint, lifetime_weeks smallint
        ) ON COMMIT DELETE ROWS;
    END IF;
    TRUNCATE fold_taken, fold_batch, fold_net, fold_recomputed, fold_users_before,
             fold_user_changes;
END
$$;

-- The rows of fold_taken, read as the table each came from (a column the bot added is
-- ignored), into fold_batch: only what a figure reads. Of an event's details only a
-- lesson attendance's lesson_type and lesson_date count. The values are read by key
-- (a third of the time jsonb_populate_record takes for the three tables), each only from
-- the table that has that column.
CREATE OR REPLACE FUNCTION analytics_read_taken() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fold_batch
    SELECT c.captured_at, c.source, c.sign, (c.data ->> 'id')::bigint,
           (c.data ->> 'user_id')::bigint,
           CASE c.source WHEN 'registration' THEN (c.data ->> 'registered_at')::timestamptz
                         ELSE (c.data ->> 'created_at')::timestamptz END,
           CASE WHEN c.source <> 'event' THEN c.data ->> 'username' END,
           CASE WHEN c.source <> 'event' THEN c.data ->> 'first_name' END,
           CASE WHEN c.source = 'booking' THEN (c.data ->> 'course_id')::integer END,
           CASE WHEN c.source = 'booking' THEN c.data ->> 'course_stream' END,
           CASE WHEN c.source = 'booking' THEN (c.data ->> 'confirmed')::smallint END,
           CASE WHEN c.source = 'booking' THEN c.data ->> 'referral_code' END,
           CASE WHEN c.source = 'booking' THEN (c.data ->> 'discount_percent')::numeric(5, 2) END,
           CASE WHEN c.source = 'event' THEN c.data ->> 'event_type' END,
           CASE WHEN c.source = 'registration' THEN c.data ->> 'lesson_type'
                WHEN c.source = 'event' AND c.data ->> 'event_type' = 'lesson_attended'
                THEN c.data -> 'details' ->> 'lesson_type' END,
           CASE WHEN c.source = 'registration' THEN (c.data ->> 'lesson_date')::date
                WHEN c.source = 'event' AND c.data ->> 'event_type' = 'lesson_attended'
                THEN analytics_lesson_date(c.data -> 'details' ->> 'lesson_date') END
    FROM fold_taken AS c;
    TRUNCATE fold_taken;
END
$$;

-- Folds up to max_rows change rows (every one this snapshot sees when NULL), plus the
-- other visible rows of users recomputed; answers how many change rows it consumed.
CREATE OR REPLACE FUNCTION analytics_fold(max_rows integer) RETURNS integer
LANGUAGE plpgsql SET work_mem = '64MB' SET jit = off AS $$
DECLARE
    taken integer;
    pulled integer;
    added integer;
BEGIN
    IF current_setting('transaction_isolation') <> 'repeatable read' THEN
        RAISE EXCEPTION 'analytics_fold() needs a REPEATABLE READ transaction';
    END IF;
    PERFORM analytics_require_fold_lock();
    PERFORM analytics_prepare_fold();

    IF max_rows IS NULL THEN
        WITH consumed AS (DELETE FROM analytics_changes RETURNING *)
        INSERT INTO fold_taken SELECT * FROM consumed;
    ELSE
        WITH consumed AS (
            DELETE FROM analytics_changes
            WHERE ctid = ANY (ARRAY(SELECT ctid FROM analytics_changes LIMIT max_rows))
            RETURNING *
        )
        INSERT INTO fold_taken SELECT * FROM consumed;
    END IF;
    GET DIAGNOSTICS taken = ROW_COUNT;
    -- Changes read from the WAL (analytics/wal_capture.py) come in fold_pulled, a
    -- temporary table made by the batch: they write no WAL there, which the slot would
    -- only have to read again. They are all folded in this batch.
    IF to_regclass('pg_temp.fold_pulled') IS NOT NULL THEN
        INSERT INTO fold_taken SELECT * FROM fold_pulled;
        GET DIAGNOSTICS pulled = ROW_COUNT;
        TRUNCATE fold_pulled;
        taken := taken + pulled;
    END IF;
    IF taken = 0 THEN
        UPDATE analytics_fold_state SET error = NULL, failed_at = NULL
        WHERE id = 1 AND error IS NOT NULL;
        RETURN 0;
    END IF;
    PERFORM analytics_read_taken();
    IF EXISTS (SELECT 1 FROM fold_batch WHERE source = 'truncate') THEN
        PERFORM analytics_rebuild();
        PERFORM analytics_record_fold(taken);
        RETURN taken;
    END IF;

    -- A user with a row taken back has every visible change row consumed with it: the
    -- old version is then folded already or in this batch, and a user recomputed from
    -- this snapshot has no row left for a later batch to count twice.
    WITH retracted AS (
        SELECT DISTINCT user_id FROM fold_batch WHERE sign < 0 AND user_id IS NOT NULL
    ),
    consumed AS (
        DELETE FROM analytics_changes AS c USING retracted AS r
        WHERE (c.data ->> 'user_id')::bigint = r.user_id
        RETURNING c.*
    )
    INSERT INTO fold_taken SELECT * FROM consumed;
    GET DIAGNOSTICS added = ROW_COUNT;
    PERFORM analytics_read_taken();

    INSERT INTO fold_net (
        captured_at, source, sign, row_id, user_id, at, username, first_name, course_id,
        course_stream, confirmed, referral_code, discount_percent, event_type, lesson_type,
        lesson_date)
    SELECT min(captured_at), source, sum(sign), row_id, user_id, at, username, first_name,
           course_id, course_stream, confirmed, referral_code, discount_percent, event_type,
           lesson_type, lesson_date
    FROM fold_batch
    GROUP BY source, row_id, user_id, at, username, first_name, course_id, course_stream,
             confirmed, referral_code, discount_percent, event_type, lesson_type, lesson_date
    HAVING sum(sign) <> 0;

    -- A row taken back is subtracted like any count, unless it may have been the row a
    -- figure that does not add up was taken from: the user's first or last time seen,
    -- or the row their name or stream came from. Then the user is recomputed. The new
    -- version of the same row (same source, id, user and time), where there is one,
    -- keeps what it agrees on: a booking confirmed or cancelled changes counts alone.
    INSERT INTO fold_recomputed
    SELECT DISTINCT r.user_id
    FROM fold_net AS r
    LEFT JOIN user_summaries AS s ON s.user_id = r.user_id
    LEFT JOIN fold_net AS a
        ON a.sign > 0 AND a.source = r.source AND a.row_id = r.row_id
       AND a.user_id = r.user_id AND a.at = r.at
    WHERE r.sign < 0 AND r.user_id IS NOT NULL
      AND (s.user_id IS NULL
           OR (a.row_id IS NULL AND (r.at <= s.first_seen OR r.at >= s.last_seen) IS NOT FALSE)
           OR ((r.at, r.row_id) = (s.username_at, s.username_row)
               AND a.username IS DISTINCT FROM r.username)
           OR ((r.at, r.row_id) = (s.first_name_at, s.first_name_row)
               AND a.first_name IS DISTINCT FROM r.first_name)
           OR (r.source = 'booking'
               AND (r.at, r.row_id) = (s.stream_booking_at, s.stream_booking_id)
               AND (a.row_id IS NULL OR a.confirmed = -1
                    OR a.course_stream IS DISTINCT FROM r.course_stream)));

    INSERT INTO fold_users_before
    SELECT s.user_id, s.status, s.course_stream, s.first_seen,
           analytics_funnel_steps(s.free_lessons_count, s.lessons_attended, s.bookings_count,
                                  s.confirmed_bookings),
           analytics_lifetime_weeks(s.first_seen, s.last_seen)
    FROM user_summaries AS s
    WHERE s.user_id IN (SELECT n.user_id FROM fold_net AS n);

    PERFORM analytics_fold_users();
    PERFORM analytics_fold_user_rollups();
    PERFORM analytics_fold_activity();
    PERFORM analytics_fold_courses();
    PERFORM analytics_fold_streams();
    PERFORM analytics_fold_referrals();
    PERFORM analytics_fold_event_types();
    PERFORM analytics_fold_lessons();
    PERFORM analytics_record_fold(taken + added);
    RETURN taken + added;
END
$$;

CREATE OR REPLACE FUNCTION analytics_fold_users() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH added AS (
        SELECT n.* FROM fold_net AS n
        WHERE n.user_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM fold_recomputed AS r WHERE r.user_id = n.user_id)
    ),
    seen AS (
        SELECT user_id, min(at) AS first_seen, max(at) AS last_seen,
               coalesce(sum(sign) FILTER (WHERE source = 'booking'), 0) AS bookings,
               coalesce(sum(sign) FILTER (WHERE source = 'booking' AND confirmed = 2), 0)
                   AS confirmed,
               coalesce(sum(sign) FILTER (WHERE source = 'booking' AND confirmed = 1), 0)
                   AS pending,
               coalesce(sum(sign) FILTER (WHERE source = 'event'), 0) AS events,
               coalesce(sum(sign) FILTER (WHERE source = 'event'
                                          AND event_type = 'lesson_attended'), 0) AS attended,
               coalesce(sum(sign) FILTER (WHERE source = 'registration'), 0) AS registrations
        FROM added GROUP BY user_id
    ),
    named AS (
        SELECT user_id, username, first_name, at, row_id FROM added
        WHERE source IN ('booking', 'registration') AND sign > 0
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
        SELECT DISTINCT ON (user_id) user_id, course_stream, at, row_id FROM added
        WHERE source = 'booking' AND confirmed <> -1 AND sign > 0
        ORDER BY user_id, at DESC, row_id DESC
    )
    INSERT INTO user_summaries AS s (
        user_id, first_seen, last_seen, bookings_count, confirmed_bookings, pending_bookings,
        events_count, lessons_attended, free_lessons_count, username, username_at,
        username_row, first_name, first_name_at, first_name_row, course_stream,
        stream_booking_at, stream_booking_id)
    SELECT seen.user_id, seen.first_seen, seen.last_seen, seen.bookings, seen.confirmed,
           seen.pending, seen.events, seen.attended, seen.registrations,
           u.username, u.at, u.row_id, f.first_name, f.at, f.row_id,
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
        events_count = s.events_count + excluded.events_count,
        lessons_attended = s.lessons_attended + excluded.lessons_attended,
        free_lessons_count = s.free_lessons_count + excluded.free_lessons_count,
        -- The value of the more recent row, judged by the row it came from.
        username = CASE
            WHEN analytics_is_newer(excluded.username_at, excluded.username_row,
                                    s.username_at, s.username_row)
            THEN excluded.username ELSE s.username END,
        username_at = CASE
            WHEN analytics_is_newer(excluded.username_at, excluded.username_row,
                                    s.username_at, s.username_row)
            THEN excluded.username_at ELSE s.username_at END,
        username_row = CASE
            WHEN analytics_is_newer(excluded.username_at, excluded.username_row,
                                    s.username_at, s.username_row)
            THEN excluded.username_row ELSE s.username_row END,
        first_name = CASE
            WHEN analytics_is_newer(excluded.first_name_at, excluded.first_name_row,
                                    s.first_name_at, s.first_name_row)
            THEN excluded.first_name ELSE s.first_name END,
        first_name_at = CASE
            WHEN analytics_is_newer(excluded.first_name_at, excluded.first_name_row,
                                    s.first_name_at, s.first_name_row)
            THEN excluded.first_name_at ELSE s.first_name_at END,
        first_name_row = CASE
            WHEN analytics_is_newer(excluded.first_name_at, excluded.first_name_row,
                                    s.first_name_at, s.first_name_row)
            THEN excluded.first_name_row ELSE s.first_name_row END,
        course_stream = CASE
            WHEN analytics_is_newer(excluded.stream_booking_at, excluded.stream_booking_id,
                                    s.stream_booking_at, s.stream_booking_id)
            THEN excluded.course_stream ELSE s.course_stream END,
        stream_booking_at = CASE
            WHEN analytics_is_newer(excluded.stream_booking_at, excluded.stream_booking_id,
                                    s.stream_booking_at, s.stream_booking_id)
            THEN excluded.stream_booking_at ELSE s.stream_booking_at END,
        stream_booking_id = CASE
            WHEN analytics_is_newer(excluded.stream_booking_at, excluded.stream_booking_id,
                                    s.stream_booking_at, s.stream_booking_id)
            THEN excluded.stream_booking_id ELSE s.stream_booking_id END;

    INSERT INTO user_summaries AS s (
        user_id, username, username_at, username_row, first_name, first_name_at,
        first_name_row, first_seen, last_seen, bookings_count, confirmed_bookings,
        pending_bookings, events_count, lessons_attended, free_lessons_count, course_stream,
        stream_booking_at, stream_booking_id)
    SELECT f.* FROM fold_recomputed AS r
    CROSS JOIN LATERAL analytics_user_from_source(r.user_id) AS f
    ORDER BY f.user_id
    ON CONFLICT (user_id) DO UPDATE SET (
        username, username_at, username_row, first_name, first_name_at, first_name_row,
        first_seen, last_seen, bookings_count, confirmed_bookings, pending_bookings,
        events_count, lessons_attended, free_lessons_count, course_stream,
        stream_booking_at, stream_booking_id
    ) = ROW(
        excluded.username, excluded.username_at, excluded.username_row, excluded.first_name,
        excluded.first_name_at, excluded.first_name_row, excluded.first_seen,
        excluded.last_seen, excluded.bookings_count, excluded.confirmed_bookings,
        excluded.pending_bookings, excluded.events_count, excluded.lessons_attended,
        excluded.free_lessons_count, excluded.course_stream, excluded.stream_booking_at,
        excluded.stream_booking_id
    );

    DELETE FROM user_summaries AS s USING fold_recomputed AS r
    WHERE s.user_id = r.user_id
      AND NOT EXISTS (SELECT 1 FROM bookings AS b WHERE b.user_id = r.user_id)
      AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.user_id = r.user_id)
      AND NOT EXISTS (SELECT 1 FROM free_lesson_registrations AS f WHERE f.user_id = r.user_id);

    -- The searched names follow the summaries, written only where a name changed: most
    -- rows of a batch change counts alone, and a write here pays for three GIN indexes.
    INSERT INTO user_names AS n (user_id, username, first_name)
    SELECT s.user_id, s.username, s.first_name
    FROM user_summaries AS s
    LEFT JOIN user_names AS known USING (user_id)
    WHERE s.user_id IN (SELECT f.user_id FROM fold_net AS f)
      AND (s.username IS NOT NULL OR s.first_name IS NOT NULL)
      AND (known.username, known.first_name) IS DISTINCT FROM (s.username, s.first_name)
    ORDER BY s.user_id
    ON CONFLICT (user_id) DO UPDATE SET
        username = excluded.username, first_name = excluded.first_name;

    DELETE FROM user_names AS n USING fold_recomputed AS r
    WHERE n.user_id = r.user_id
      AND NOT EXISTS (
          SELECT 1 FROM user_summaries AS s
          WHERE s.user_id = r.user_id AND (s.username IS NOT NULL OR s.first_name IS NOT NULL));
END
$$;

CREATE OR REPLACE FUNCTION analytics_fold_user_rollups() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fold_user_changes
    SELECT sum(sign), status, course_stream, first_seen, funnel_steps, lifetime_weeks
    FROM (
        SELECT 1 AS sign, s.status, s.course_stream, s.first_seen,
               analytics_funnel_steps(s.free_lessons_count, s.lessons_attended,
                                      s.bookings_count, s.confirmed_bookings) AS funnel_steps,
               analytics_lifetime_weeks(s.first_seen, s.last_seen) AS lifetime_weeks
        FROM user_summaries AS s
        WHERE s.user_id IN (SELECT n.user_id FROM fold_net AS n)
        UNION ALL
        SELECT -1, status, course_stream, first_seen, funnel_steps, lifetime_weeks
        FROM fold_users_before
    ) AS changed
    GROUP BY status, course_stream, first_seen, funnel_steps, lifetime_weeks
    HAVING sum(sign) <> 0;

    INSERT INTO user_segments AS g (status, course_stream, users)
    SELECT status, course_stream, sum(sign) FROM fold_user_changes
    GROUP BY status, course_stream HAVING sum(sign) <> 0
    ORDER BY status, course_stream
    ON CONFLICT (status, course_stream) DO UPDATE SET users = g.users + excluded.users;

    INSERT INTO user_funnel AS t (span, bucket, funnel_steps, users)
    SELECT spans.span, analytics_bucket(c.first_seen, spans.span), c.funnel_steps, sum(c.sign)
    FROM fold_user_changes AS c
    CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2, 3 HAVING sum(c.sign) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (span, bucket, funnel_steps) DO UPDATE SET users = t.users + excluded.users;

    INSERT INTO user_retention AS t (span, bucket, lifetime_weeks, users)
    SELECT spans.span, analytics_bucket(c.first_seen, spans.span), c.lifetime_weeks,
           sum(c.sign)
    FROM fold_user_changes AS c
    CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2, 3 HAVING sum(c.sign) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (span, bucket, lifetime_weeks) DO UPDATE SET users = t.users + excluded.users;
END
$$;

-- Rows per time bucket of the three tables, and new users by their first_seen.
CREATE OR REPLACE FUNCTION analytics_fold_activity() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO activity_buckets AS t (
        span, bucket, new_users, bookings, events, free_lesson_registrations)
    SELECT spans.span, analytics_bucket(c.at, spans.span), sum(c.new_users),
           sum(c.bookings), sum(c.events), sum(c.registrations)
    FROM (
        SELECT at, 0 AS new_users,
               CASE WHEN source = 'booking' THEN sign ELSE 0 END AS bookings,
               CASE WHEN source = 'event' THEN sign ELSE 0 END AS events,
               CASE WHEN source = 'registration' THEN sign ELSE 0 END AS registrations
        FROM fold_net
        UNION ALL
        SELECT first_seen, sign, 0, 0, 0 FROM fold_user_changes
    ) AS c
    CROSS JOIN (VALUES (15::smallint), (60::smallint), (1440::smallint)) AS spans(span)
    GROUP BY 1, 2
    HAVING (sum(c.new_users), sum(c.bookings), sum(c.events), sum(c.registrations))
           <> (0, 0, 0, 0)
    ORDER BY 1, 2
    ON CONFLICT (span, bucket) DO UPDATE SET
        new_users = t.new_users + excluded.new_users,
        bookings = t.bookings + excluded.bookings,
        events = t.events + excluded.events,
        free_lesson_registrations = t.free_lesson_registrations
                                    + excluded.free_lesson_registrations;
END
$$;

CREATE OR REPLACE FUNCTION analytics_fold_courses() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH delta AS (
        SELECT course_id, user_id, sum(sign)::int AS n FROM fold_net
        WHERE source = 'booking' GROUP BY course_id, user_id HAVING sum(sign) <> 0
    ),
    members AS (
        INSERT INTO course_members AS m (course_id, user_id, bookings)
        SELECT course_id, user_id, n FROM delta ORDER BY user_id, course_id
        ON CONFLICT (user_id, course_id) DO UPDATE SET bookings = m.bookings + excluded.bookings
        RETURNING m.course_id, m.user_id, m.bookings
    ),
    users AS (
        SELECT m.course_id, sum(analytics_membership_change(m.bookings, d.n)) AS users
        FROM members AS m
        JOIN delta AS d ON d.user_id = m.user_id AND d.course_id IS NOT DISTINCT FROM m.course_id
        GROUP BY m.course_id
    ),
    counted AS (
        SELECT course_id, sum(sign) AS total,
               coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
               coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
               coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled
        FROM fold_net WHERE source = 'booking' GROUP BY course_id
    )
    INSERT INTO course_figures AS f (
        course_id, total_bookings, confirmed, pending, cancelled, unique_users)
    SELECT c.course_id, c.total, c.confirmed, c.pending, c.cancelled, coalesce(u.users, 0)
    FROM counted AS c LEFT JOIN users AS u ON u.course_id IS NOT DISTINCT FROM c.course_id
    ORDER BY c.course_id
    ON CONFLICT (course_id) DO UPDATE SET
        total_bookings = f.total_bookings + excluded.total_bookings,
        confirmed = f.confirmed + excluded.confirmed,
        pending = f.pending + excluded.pending,
        cancelled = f.cancelled + excluded.cancelled,
        unique_users = f.unique_users + excluded.unique_users;
END
$$;

CREATE OR REPLACE FUNCTION analytics_fold_streams() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH streamed AS (
        SELECT * FROM fold_net WHERE source = 'booking' AND course_stream IS NOT NULL
    ),
    delta AS (
        SELECT course_id, course_stream, user_id, sum(sign)::int AS n FROM streamed
        GROUP BY course_id, course_stream, user_id HAVING sum(sign) <> 0
    ),
    members AS (
        INSERT INTO stream_members AS m (course_id, course_stream, user_id, bookings)
        SELECT course_id, course_stream, user_id, n FROM delta
        ORDER BY user_id, course_id, course_stream
        ON CONFLICT (user_id, course_id, course_stream)
        DO UPDATE SET bookings = m.bookings + excluded.bookings
        RETURNING m.course_id, m.course_stream, m.user_id, m.bookings
    ),
    users AS (
        SELECT m.course_id, m.course_stream,
               sum(analytics_membership_change(m.bookings, d.n)) AS users
        FROM members AS m
        JOIN delta AS d ON d.user_id = m.user_id AND d.course_stream = m.course_stream
                       AND d.course_id IS NOT DISTINCT FROM m.course_id
        GROUP BY m.course_id, m.course_stream
    ),
    counted AS (
        SELECT course_id, course_stream, sum(sign) AS total,
               coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
               coalesce(sum(sign) FILTER (WHERE confirmed = 1), 0) AS pending,
               coalesce(sum(sign) FILTER (WHERE confirmed = -1), 0) AS cancelled
        FROM streamed GROUP BY course_id, course_stream
    )
    INSERT INTO stream_figures AS f (
        course_id, course_stream, total_bookings, confirmed, pending, cancelled, unique_users)
    SELECT c.course_id, c.course_stream, c.total, c.confirmed, c.pending, c.cancelled,
           coalesce(u.users, 0)
    FROM counted AS c
    LEFT JOIN users AS u ON u.course_stream = c.course_stream
                        AND u.course_id IS NOT DISTINCT FROM c.course_id
    ORDER BY c.course_id, c.course_stream
    ON CONFLICT (course_id, course_stream) DO UPDATE SET
        total_bookings = f.total_bookings + excluded.total_bookings,
        confirmed = f.confirmed + excluded.confirmed,
        pending = f.pending + excluded.pending,
        cancelled = f.cancelled + excluded.cancelled,
        unique_users = f.unique_users + excluded.unique_users;
END
$$;

CREATE OR REPLACE FUNCTION analytics_fold_referrals() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH referred AS (
        SELECT * FROM fold_net WHERE source = 'booking' AND referral_code IS NOT NULL
    ),
    delta AS (
        SELECT referral_code, user_id, sum(sign)::int AS n FROM referred
        GROUP BY referral_code, user_id HAVING sum(sign) <> 0
    ),
    members AS (
        INSERT INTO referral_members AS m (referral_code, user_id, bookings)
        SELECT referral_code, user_id, n FROM delta ORDER BY user_id, referral_code
        ON CONFLICT (user_id, referral_code) DO UPDATE SET bookings = m.bookings + excluded.bookings
        RETURNING m.referral_code, m.user_id, m.bookings
    ),
    users AS (
        SELECT m.referral_code, sum(analytics_membership_change(m.bookings, d.n)) AS users
        FROM members AS m
        JOIN delta AS d ON d.user_id = m.user_id AND d.referral_code = m.referral_code
        GROUP BY m.referral_code
    ),
    counted AS (
        SELECT referral_code, sum(sign) AS bookings,
               coalesce(sum(sign) FILTER (WHERE confirmed = 2), 0) AS confirmed,
               coalesce(sum(sign * discount_percent), 0) AS discount_total,
               coalesce(sum(sign) FILTER (WHERE discount_percent IS NOT NULL), 0) AS discounted
        FROM referred GROUP BY referral_code
    )
    INSERT INTO referral_figures AS f (
        referral_code, bookings, confirmed, unique_users, discount_total, discounted)
    SELECT c.referral_code, c.bookings, c.confirmed, coalesce(u.users, 0), c.discount_total,
           c.discounted
    FROM counted AS c LEFT JOIN users AS u USING (referral_code)
    ORDER BY c.referral_code
    ON CONFLICT (referral_code) DO UPDATE SET
        bookings = f.bookings + excluded.bookings,
        confirmed = f.confirmed + excluded.confirmed,
        unique_users = f.unique_users + excluded.unique_users,
        discount_total = f.discount_total + excluded.discount_total,
        discounted = f.discounted + excluded.discounted;
END
$$;

CREATE OR REPLACE FUNCTION analytics_fold_event_types() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH delta AS (
        SELECT event_type, user_id, sum(sign)::int AS n FROM fold_net
        WHERE source = 'event' AND user_id IS NOT NULL
        GROUP BY event_type, user_id HAVING sum(sign) <> 0
    ),
    members AS (
        INSERT INTO event_type_members AS m (event_type, user_id, events)
        SELECT event_type, user_id, n FROM delta ORDER BY user_id, event_type
        ON CONFLICT (user_id, event_type) DO UPDATE SET events = m.events + excluded.events
        RETURNING m.event_type, m.user_id, m.events
    ),
    users AS (
        SELECT m.event_type, sum(analytics_membership_change(m.events, d.n)) AS users
        FROM members AS m
        JOIN delta AS d ON d.user_id = m.user_id AND d.event_type = m.event_type
        GROUP BY m.event_type
    ),
    counted AS (
        SELECT event_type, sum(sign) AS events FROM fold_net
        WHERE source = 'event' GROUP BY event_type
    )
    INSERT INTO event_type_figures AS f (event_type, events, unique_users)
    SELECT c.event_type, c.events, coalesce(u.users, 0)
    FROM counted AS c LEFT JOIN users AS u USING (event_type)
    ORDER BY c.event_type
    ON CONFLICT (event_type) DO UPDATE SET
        events = f.events + excluded.events,
        unique_users = f.unique_users + excluded.unique_users;
END
$$;

-- Registrations and lesson attendances per (lesson_type, lesson_date).
CREATE OR REPLACE FUNCTION analytics_fold_lessons() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH lessons AS (
        SELECT lesson_type, lesson_date, user_id, sign,
               CASE WHEN source = 'registration' THEN sign ELSE 0 END AS registrations,
               CASE WHEN source = 'event' THEN sign ELSE 0 END AS attendances
        FROM fold_net
        WHERE source = 'registration' OR (source = 'event' AND event_type = 'lesson_attended')
    ),
    delta AS (
        SELECT lesson_type, lesson_date, user_id, sum(registrations)::int AS registrations,
               sum(attendances)::int AS attendances
        FROM lessons WHERE user_id IS NOT NULL
        GROUP BY lesson_type, lesson_date, user_id
        HAVING (sum(registrations), sum(attendances)) <> (0, 0)
    ),
    members AS (
        INSERT INTO lesson_members AS m (
            lesson_type, lesson_date, user_id, registrations, attendances)
        SELECT lesson_type, lesson_date, user_id, registrations, attendances FROM delta
        ORDER BY user_id, lesson_type, lesson_date
        ON CONFLICT (user_id, lesson_type, lesson_date) DO UPDATE SET
            registrations = m.registrations + excluded.registrations,
            attendances = m.attendances + excluded.attendances
        RETURNING m.lesson_type, m.lesson_date, m.user_id, m.registrations, m.attendances
    ),
    users AS (
        SELECT m.lesson_type, m.lesson_date,
               sum(analytics_membership_change(m.registrations, d.registrations))
                   AS registered_users,
               sum(analytics_membership_change(m.attendances, d.attendances))
                   AS attending_users
        FROM members AS m
        JOIN delta AS d ON d.user_id = m.user_id
                       AND d.lesson_type IS NOT DISTINCT FROM m.lesson_type
                       AND d.lesson_date IS NOT DISTINCT FROM m.lesson_date
        GROUP BY m.lesson_type, m.lesson_date
    ),
    counted AS (
        SELECT lesson_type, lesson_date, sum(registrations) AS registrations,
               sum(attendances) AS attendances
        FROM lessons GROUP BY lesson_type, lesson_date
    )
    INSERT INTO lesson_figures AS f (
        lesson_type, lesson_date, registrations, attendances, registered_users,
        attending_users)
    SELECT c.lesson_type, c.lesson_date, c.registrations, c.attendances,
           coalesce(u.registered_users, 0), coalesce(u.attending_users, 0)
    FROM counted AS c
    LEFT JOIN users AS u ON u.lesson_type IS NOT DISTINCT FROM c.lesson_type
                        AND u.lesson_date IS NOT DISTINCT FROM c.lesson_date
    ORDER BY c.lesson_type, c.lesson_date
    ON CONFLICT (lesson_type, lesson_date) DO UPDATE SET
        registrations = f.registrations + excluded.registrations,
        attendances = f.attendances + excluded.attendances,
        registered_users = f.registered_users + excluded.registered_users,
        attending_users = f.attending_users + excluded.attending_users;
END
$$;
