-- analytics_fold() and analytics_fold_users() as migration 0016 left them, restored when
-- 0017 is rolled back: every user with a row taken back is recomputed from the source
-- tables.
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

    -- A user recomputed from this snapshot must have every visible change row consumed
    -- with it: one left for a later batch would be counted twice.
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

    INSERT INTO fold_recomputed
    SELECT DISTINCT user_id FROM fold_net WHERE sign < 0 AND user_id IS NOT NULL;

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
        WHERE source IN ('booking', 'registration')
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
        WHERE source = 'booking' AND confirmed <> -1 ORDER BY user_id, at DESC, row_id DESC
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
