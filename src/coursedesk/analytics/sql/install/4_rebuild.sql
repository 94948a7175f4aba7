-- Every summary recomputed from the source tables (the views of 2_expected.sql).
--
-- Runs under the fold lock (3_fold.sql). It consumes every change row its snapshot sees,
-- so with REPEATABLE READ (or with the source tables locked against writers, as `db
-- seed` does) the rows of later commits stay in analytics_changes and are folded on top:
-- the bot goes on writing during a rebuild and nothing it writes is lost.
--
-- The summaries are truncated, which keeps readers of them waiting until the rebuild
-- commits; the bot's tables are only read. Rows go into tables without indexes several
-- times faster, and an index built over the finished rows costs far less than one kept
-- up row by row, so the summary tables' indexes and keys are dropped and made again.

CREATE OR REPLACE FUNCTION analytics_rebuild() RETURNS void
LANGUAGE plpgsql
SET work_mem = '256MB' SET maintenance_work_mem = '256MB' SET jit = off AS $$
DECLARE
    summaries text[] := ARRAY[
        'user_summaries', 'user_names', 'user_segments', 'activity_buckets', 'user_funnel',
        'user_retention', 'course_figures', 'course_members', 'stream_figures',
        'stream_members', 'referral_figures', 'referral_members', 'event_type_figures',
        'event_type_members', 'lesson_figures', 'lesson_members'];
    drops text[];
    rebuilds text[];
    statement text;
BEGIN
    PERFORM analytics_require_fold_lock();
    DELETE FROM analytics_changes;
    TRUNCATE user_summaries, user_names, user_segments, activity_buckets, user_funnel,
             user_retention, course_figures, course_members, stream_figures, stream_members,
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
    INSERT INTO user_names (user_id, username, first_name)
    SELECT user_id, username, first_name FROM analytics_expected_user_names;

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
