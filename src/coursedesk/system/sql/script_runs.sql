-- The audit entry of a script that POST /api/db-migrate applies.
--
-- The script runs on a connection of its own, logged in as coursedesk_scripts, and its
-- entry must be kept exactly when the script is: so the app writes it in the script's
-- own transaction, calling record_script_run() on that connection after the script's
-- last statement. The entry names the actor the app wrote in script_runs for that backend
-- before the script began; a run records once, so a script that calls the function
-- itself only makes the app's call, and with it the whole run, fail.
--
-- SECURITY DEFINER with a pinned search_path, as audit_source_change() is: the script's
-- role may neither write audit_log and script_runs nor shadow them.
CREATE OR REPLACE FUNCTION record_script_run(details jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    run_actor text;
BEGIN
    UPDATE script_runs SET recorded = true
    WHERE backend_pid = pg_backend_pid() AND NOT recorded
    RETURNING actor INTO run_actor;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this script run is not registered, or was recorded already';
    END IF;
    INSERT INTO audit_log (actor, action, target_type, details)
    VALUES (run_actor, 'db.migrate', 'database', details);
END
$$;

DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION record_script_run(jsonb) SET search_path = %I, pg_temp', current_schema()
    );
END
$$;

REVOKE EXECUTE ON FUNCTION record_script_run(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_script_run(jsonb) TO coursedesk_scripts;
