-- What 0008 replaced, as 0007 installed it: its downgrade puts these back.
--
-- analytics_fold_users() and analytics_rebuild() before the searched names had a table of
-- their own (user_names). Frozen here, as they were; the living definitions are in
-- analytics/sql/install/.

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
END
$$;

CREATE OR REPLACE FUNCTION analytics_rebuild() RETURNS void
LANGUAGE plpgsql
SET work_mem = '256MB' SET maintenance_work_mem = '256MB' SET jit = off AS $$
DECLARE
    summaries text[] := ARRAY[
        'user_summaries', 'user_segments', 'activity_buckets', 'user_funnel',
        'user_retention', 'course_figures', 'course_members', 'stream_figures',
        'stream_members', 'referral_figures', 'referral_members', 'event_type_figures',
        'event_type_members', 'lesson_figures', 'lesson_members'];
    drops text[];
    rebuilds text[];
    statement text;
BEGIN
    PERFORM analytics_require_fold_lock();
    DELETE FROM analytics_changes;
    TRUNCATE user_summaries, user_segments, activity_buckets, user_funnel, user_retention,
             course_figures, course_members, stream_figures, stream_members,
             referral_figures, referral_members, event_type_figures, event_type_members,
             lesson_figures, lesson_members;

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
    WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY (summaries);
    FOREACH statement IN ARRAY coalesce(drops, '{}') LOOP
        EXECUTE statement;
    END LOOP;

    INSERT INTO user_summaries (
        user_id, username, username_at, username_row, first_name, first_name_at,
        first_name_row, first_seen, last_seen, bookings_count, confirmed_bookings,
        pending_bookings, events_count, lessons_attended, free_lessons_count, course_stream,
        stream_booking_at, stream_booking_id)
    SELECT user_id, username, username_at, username_row, first_name, first_name_at,
           first_name_row, first_seen, last_seen, bookings_count, confirmed_bookings,
           pending_bookings, events_count, lessons_attended, free_lessons_count,
           course_stream, stream_booking_at, stream_booking_id
    FROM analytics_expected_users;

    INSERT INTO user_segments (status, course_stream, users)
    SELECT status, course_stream, users FROM analytics_expected_user_segments;
    INSERT INTO activity_buckets (
        span, bucket, new_users, bookings, events, free_lesson_registrations)
    SELECT span, bucket, new_users, bookings, events, free_lesson_registrations
    FROM analytics_expected_activity_buckets;
    INSERT INTO user_funnel (span, bucket, funnel_steps, users)
    SELECT span, bucket, funnel_steps, users FROM analytics_expected_user_funnel;
    INSERT INTO user_retention (span, bucket, lifetime_weeks, users)
    SELECT span, bucket, lifetime_weeks, users FROM analytics_expected_user_retention;

    INSERT INTO course_members (course_id, user_id, bookings)
    SELECT course_id, user_id, bookings FROM analytics_expected_course_members;
    INSERT INTO course_figures (
        course_id, total_bookings, confirmed, pending, cancelled, unique_users)
    SELECT course_id, total_bookings, confirmed, pending, cancelled, unique_users
    FROM analytics_expected_course_figures;
    INSERT INTO stream_members (course_id, course_stream, user_id, bookings)
    SELECT course_id, course_stream, user_id, bookings FROM analytics_expected_stream_members;
    INSERT INTO stream_figures (
        course_id, course_stream, total_bookings, confirmed, pending, cancelled, unique_users)
    SELECT course_id, course_stream, total_bookings, confirmed, pending, cancelled,
           unique_users
    FROM analytics_expected_stream_figures;
    INSERT INTO referral_members (user_id, referral_code, bookings)
    SELECT user_id, referral_code, bookings FROM analytics_expected_referral_members;
    INSERT INTO referral_figures (
        referral_code, bookings, confirmed, unique_users, discount_total, discounted)
    SELECT referral_code, bookings, confirmed, unique_users, discount_total, discounted
    FROM analytics_expected_referral_figures;
    INSERT INTO event_type_members (user_id, event_type, events)
    SELECT user_id, event_type, events FROM analytics_expected_event_type_members;
    INSERT INTO event_type_figures (event_type, events, unique_users)
    SELECT event_type, events, unique_users FROM analytics_expected_event_type_figures;
    INSERT INTO lesson_members (lesson_type, lesson_date, user_id, registrations, attendances)
    SELECT lesson_type, lesson_date, user_id, registrations, attendances
    FROM analytics_expected_lesson_members;
    INSERT INTO lesson_figures (
        lesson_type, lesson_date, registrations, attendances, registered_users,
        attending_users)
    SELECT lesson_type, lesson_date, registrations, attendances, registered_users,
           attending_users
    FROM analytics_expected_lesson_figures;

    FOREACH statement IN ARRAY coalesce(rebuilds, '{}') LOOP
        EXECUTE statement;
    END LOOP;
END
$$;
