-- message_recipients_apply() as migration 0001 made it, before holdout_count: what a
-- downgrade of 0014 puts back.
CREATE OR REPLACE FUNCTION message_recipients_apply(ids integer[], statuses text[], deltas bigint[])
RETURNS void LANGUAGE sql AS $$
    UPDATE message_history AS m SET
        total_recipients = m.total_recipients + d.total,
        pending_deliveries = m.pending_deliveries + d.pending,
        successful_deliveries = m.successful_deliveries + d.sent + d.deleted,
        failed_deliveries = m.failed_deliveries + d.failed,
        cancelled_deliveries = m.cancelled_deliveries + d.cancelled,
        deleted_deliveries = m.deleted_deliveries + d.deleted
    FROM (
        SELECT id,
               sum(n) AS total,
               coalesce(sum(n) FILTER (WHERE status = 'pending'), 0) AS pending,
               coalesce(sum(n) FILTER (WHERE status = 'sent'), 0) AS sent,
               coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed,
               coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS cancelled,
               coalesce(sum(n) FILTER (WHERE status = 'deleted'), 0) AS deleted
        FROM unnest(ids, statuses, deltas) AS c(id, status, n)
        GROUP BY id
    ) AS d
    WHERE m.id = d.id
      AND (d.total, d.pending, d.sent, d.failed, d.cancelled, d.deleted) <> (0, 0, 0, 0, 0, 0)
$$;
