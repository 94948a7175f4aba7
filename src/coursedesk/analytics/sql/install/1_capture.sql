-- Capture: what coursedesk installs on the bot's tables.
--
-- One row-level trigger per table appends each row an INSERT, UPDATE or DELETE changed
-- to analytics_changes, as jsonb, and does nothing else: no unique key, no index, no
-- shared row is touched, so two bot transactions never wait on each other because of
-- it, and an open one blocks nobody. An INSERT appends the new row with sign +1, a
-- DELETE the old row with sign -1, an UPDATE both. analytics_fold() turns these rows
-- into the summary tables (3_fold.sql).
--
-- Why a row-level trigger and jsonb: the bot inserts one row per statement, and for one
-- row a row-level trigger costs less than a statement-level one with a transition table
-- (measured in docs/benchmarks.md); the whole row goes in as one value, which costs less
-- than passing its columns one by one and keeps working when the bot adds a column.
--
-- A TRUNCATE appends one row of source 'truncate': the folder then rebuilds every
-- summary from the tables (4_rebuild.sql).
--
-- captured_at is the capturing statement's start: analytics_lag_seconds is the age of
-- the oldest row still here.

-- One function per operation, each with one statement: the INSERT path is the bot's hot
-- one, and a branch on TG_OP measurably costs it. TG_ARGV[0] names the source table.
CREATE OR REPLACE FUNCTION analytics_capture_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_changes (source, sign, data) VALUES (TG_ARGV[0], 1, to_jsonb(NEW));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_capture_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_changes (source, sign, data)
    VALUES (TG_ARGV[0], -1, to_jsonb(OLD)), (TG_ARGV[0], 1, to_jsonb(NEW));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_capture_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_changes (source, sign, data) VALUES (TG_ARGV[0], -1, to_jsonb(OLD));
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
FOR EACH ROW EXECUTE FUNCTION analytics_capture_insert('booking');
CREATE OR REPLACE TRIGGER bookings_capture_update AFTER UPDATE ON bookings
FOR EACH ROW EXECUTE FUNCTION analytics_capture_update('booking');
CREATE OR REPLACE TRIGGER bookings_capture_delete AFTER DELETE ON bookings
FOR EACH ROW EXECUTE FUNCTION analytics_capture_delete('booking');
CREATE OR REPLACE TRIGGER bookings_capture_truncate AFTER TRUNCATE ON bookings
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_truncate();
CREATE OR REPLACE TRIGGER events_capture_insert AFTER INSERT ON events
FOR EACH ROW EXECUTE FUNCTION analytics_capture_insert('event');
CREATE OR REPLACE TRIGGER events_capture_update AFTER UPDATE ON events
FOR EACH ROW EXECUTE FUNCTION analytics_capture_update('event');
CREATE OR REPLACE TRIGGER events_capture_delete AFTER DELETE ON events
FOR EACH ROW EXECUTE FUNCTION analytics_capture_delete('event');
CREATE OR REPLACE TRIGGER events_capture_truncate AFTER TRUNCATE ON events
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_truncate();
CREATE OR REPLACE TRIGGER free_lesson_registrations_capture_insert AFTER INSERT ON free_lesson_registrations
FOR EACH ROW EXECUTE FUNCTION analytics_capture_insert('registration');
CREATE OR REPLACE TRIGGER free_lesson_registrations_capture_update AFTER UPDATE ON free_lesson_registrations
FOR EACH ROW EXECUTE FUNCTION analytics_capture_update('registration');
CREATE OR REPLACE TRIGGER free_lesson_registrations_capture_delete AFTER DELETE ON free_lesson_registrations
FOR EACH ROW EXECUTE FUNCTION analytics_capture_delete('registration');
CREATE OR REPLACE TRIGGER free_lesson_registrations_capture_truncate AFTER TRUNCATE ON free_lesson_registrations
FOR EACH STATEMENT EXECUTE FUNCTION analytics_capture_truncate();
