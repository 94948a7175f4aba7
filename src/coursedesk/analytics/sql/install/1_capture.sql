-- Capture: what coursedesk installs on the bot's tables.
--
-- One statement-level trigger per table and operation appends the rows the statement
-- changed to analytics_changes, and does nothing else: no unique key, no index, no
-- shared row is touched, so two bot transactions never wait on each other because of
-- it, and an open one blocks nobody. An INSERT appends each new row with sign +1, a
-- DELETE each old row with sign -1, an UPDATE both. Only the columns a figure reads are
-- kept. analytics_fold() turns these rows into the summary tables (3_fold.sql).
--
-- A TRUNCATE appends one row of source 'truncate': the folder then rebuilds every
-- summary from the tables (4_rebuild.sql).
--
-- captured_at is the capturing statement's start: analytics_lag_seconds is the age of
-- the oldest row still here.

CREATE OR REPLACE FUNCTION analytics_capture_bookings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO analytics_changes (
            source, sign, row_id, user_id, at, username, first_name, course_id,
            course_stream, confirmed, referral_code, discount_percent)
        SELECT 'booking', -1, o.id, o.user_id, o.created_at, o.username, o.first_name,
               o.course_id, o.course_stream, o.confirmed, o.referral_code, o.discount_percent
        FROM old_rows AS o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO analytics_changes (
            source, sign, row_id, user_id, at, username, first_name, course_id,
            course_stream, confirmed, referral_code, discount_percent)
        SELECT 'booking', 1, n.id, n.user_id, n.created_at, n.username, n.first_name,
               n.course_id, n.course_stream, n.confirmed, n.referral_code, n.discount_percent
        FROM new_rows AS n;
    END IF;
    RETURN NULL;
END
$$;

-- Of an event's details only a lesson attendance's lesson_type and lesson_date count.
CREATE OR REPLACE FUNCTION analytics_capture_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO analytics_changes (
            source, sign, row_id, user_id, at, event_type, lesson_type, lesson_date)
        SELECT 'event', -1, o.id, o.user_id, o.created_at, o.event_type,
               CASE WHEN o.event_type = 'lesson_attended' THEN o.details ->> 'lesson_type' END,
               CASE WHEN o.event_type = 'lesson_attended'
                    THEN analytics_lesson_date(o.details ->> 'lesson_date') END
        FROM old_rows AS o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO analytics_changes (
            source, sign, row_id, user_id, at, event_type, lesson_type, lesson_date)
        SELECT 'event', 1, n.id, n.user_id, n.created_at, n.event_type,
               CASE WHEN n.event_type = 'lesson_attended' THEN n.details ->> 'lesson_type' END,
               CASE WHEN n.event_type = 'lesson_attended'
                    THEN analytics_lesson_date(n.details ->> 'lesson_date') END
        FROM new_rows AS n;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_capture_free_lesson_registrations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO analytics_changes (
            source, sign, row_id, user_id, at, username, first_name, lesson_type, lesson_date)
        SELECT 'registration', -1, o.id, o.user_id, o.registered_at, o.username,
               o.first_name, o.lesson_type, o.lesson_date
        FROM old_rows AS o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO analytics_changes (
            source, sign, row_id, user_id, at, username, first_name, lesson_type, lesson_date)
        SELECT 'registration', 1, n.id, n.user_id, n.registered_at, n.username,
               n.first_name, n.lesson_type, n.lesson_date
        FROM new_rows AS n;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_capture_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_changes (source, sign) VALUES ('truncate', 0);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER bookings_capture_insert AFTER INSERT ON bookings
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_bookings();
CREATE OR REPLACE TRIGGER bookings_capture_update AFTER UPDATE ON bookings
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_bookings();
CREATE OR REPLACE TRIGGER bookings_capture_delete AFTER DELETE ON bookings
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_bookings();
CREATE OR REPLACE TRIGGER bookings_capture_truncate AFTER TRUNCATE ON bookings
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_truncate();

CREATE OR REPLACE TRIGGER events_capture_insert AFTER INSERT ON events
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_events();
CREATE OR REPLACE TRIGGER events_capture_update AFTER UPDATE ON events
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_events();
CREATE OR REPLACE TRIGGER events_capture_delete AFTER DELETE ON events
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_events();
CREATE OR REPLACE TRIGGER events_capture_truncate AFTER TRUNCATE ON events
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_truncate();

CREATE OR REPLACE TRIGGER free_lesson_registrations_capture_insert
AFTER INSERT ON free_lesson_registrations
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_free_lesson_registrations();
CREATE OR REPLACE TRIGGER free_lesson_registrations_capture_update
AFTER UPDATE ON free_lesson_registrations
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_free_lesson_registrations();
CREATE OR REPLACE TRIGGER free_lesson_registrations_capture_delete
AFTER DELETE ON free_lesson_registrations
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_free_lesson_registrations();
CREATE OR REPLACE TRIGGER free_lesson_registrations_capture_truncate
AFTER TRUNCATE ON free_lesson_registrations
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_truncate();
