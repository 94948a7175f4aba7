-- audit_source_change() as migration 0001 created it, restored when 0009 is rolled back:
-- run with its caller's rights, the actor read from the setting coursedesk.actor alone.
CREATE OR REPLACE FUNCTION audit_source_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    app_actor text := nullif(current_setting('coursedesk.actor', true), '');
    old_row jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP IN ('UPDATE', 'INSERT') THEN to_jsonb(NEW) END;
BEGIN
    IF TG_OP = 'UPDATE' AND old_row = new_row THEN
        RETURN NULL;
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

GRANT EXECUTE ON FUNCTION audit_source_change() TO PUBLIC;
