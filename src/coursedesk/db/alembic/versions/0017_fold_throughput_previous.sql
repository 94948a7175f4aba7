-- analytics_fold() as migration 0016 left it, restored when 0017 is rolled back: every
-- user with a row taken back is recomputed from the source tables. analytics_fold_users()
-- stays as 0017 made it, which folds the same beside this: with it, only users
-- recomputed have rows taken back.
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
