-- The audit of the bot's tables: each UPDATE or DELETE of a row of bookings, events,
-- free_lesson_registrations or courses adds an audit_log entry, whoever makes it.
--
-- Who made it: a script of POST /api/db-migrate runs as the role coursedesk_scripts,
-- and its actor is the one the app wrote in script_runs for that backend before the
-- script began, a table the script may not write. The app's own requests name theirs
-- with set_config('coursedesk.actor', ..., true); anything else is recorded as the
-- database role that ran it, with source 'sql'. INSERTs are the bot's normal work and the
-- row itself is their record, so they are not copied into the log.
--
-- SECURITY DEFINER, so that no writer of those tables needs, or has, a right to write
-- audit_log; its search_path is pinned with pg_temp last, so that a temporary table named
-- audit_log or script_runs cannot stand in for the real one. Only triggers run it.
CREATE OR REPLACE FUNCTION audit_source_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    app_actor text;
    old_row jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP IN ('UPDATE', 'INSERT') THEN to_jsonb(NEW) END;
BEGIN
    IF TG_OP = 'UPDATE' AND old_row = new_row THEN
        RETURN NULL;
    END IF;
    IF session_user = 'coursedesk_scripts' THEN
        SELECT actor INTO app_actor FROM script_runs WHERE backend_pid = pg_backend_pid();
    ELSE
        app_actor := nullif(current_setting('coursedesk.actor', true), '');
    END IF;
    INSERT INTO audit_log (actor, action, target_type, target_id, before, after, source)
    VALUES (
        coalesce(app_actor, 'sql:' || session_user),
        TG_ARGV[0] || '.' || lower(TG_OP),
        TG_ARGV[0],
        coalesce(new_row, old_row) ->> 'id',
        old_row,
        new_row,
        CASE WHEN app_actor IS NULL THEN 'sql' ELSE 'app' END
    );
    RETURN NULL;
END
$$;

DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION audit_source_change() SET search_path = %I, pg_temp', current_schema()
    );
END
$$;

-- A trigger is created only by who may execute its function: no one else may point this
-- one, which writes audit_log with its owner's rights, at a table of their own.
REVOKE EXECUTE ON FUNCTION audit_source_change() FROM PUBLIC;
