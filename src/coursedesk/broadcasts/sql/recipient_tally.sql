-- The delivery figures on message_history, derived from the recipient rows: the
-- statement-level triggers on message_recipients (migration 0001) call
-- message_recipients_tally(), which sums the statement's changes per (message, status)
-- and hands them to message_recipients_apply() in one call, so a batch of N recipient
-- updates touches the message row once, and a statement that changes no
-- delivery_status (a lease being taken) touches it not at all. The audience insert that
-- skips row triggers calls message_recipients_apply() itself (broadcasts/audiences.py).
--
-- Every status has its counter; `holdout` (the control group, never sent) counts in
-- total_recipients and holdout_count only.
CREATE OR REPLACE FUNCTION message_recipients_apply(ids integer[], statuses text[], deltas bigint[])
RETURNS void LANGUAGE sql AS $$
    UPDATE message_history AS m SET
        total_recipients = m.total_recipients + d.total,
        pending_deliveries = m.pending_deliveries + d.pending,
        successful_deliveries = m.successful_deliveries + d.sent + d.deleted,
        failed_deliveries = m.failed_deliveries + d.failed,
        cancelled_deliveries = m.cancelled_deliveries + d.cancelled,
        deleted_deliveries = m.deleted_deliveries + d.deleted,
        holdout_count = m.holdout_count + d.holdout
    FROM (
        SELECT id,
               sum(n) AS total,
               coalesce(sum(n) FILTER (WHERE status = 'pending'), 0) AS pending,
               coalesce(sum(n) FILTER (WHERE status = 'sent'), 0) AS sent,
               coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed,
               coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS cancelled,
               coalesce(sum(n) FILTER (WHERE status = 'deleted'), 0) AS deleted,
               coalesce(sum(n) FILTER (WHERE status = 'holdout'), 0) AS holdout
        FROM unnest(ids, statuses, deltas) AS c(id, status, n)
        GROUP BY id
    ) AS d
    WHERE m.id = d.id
      AND (d.total, d.pending, d.sent, d.failed, d.cancelled, d.deleted, d.holdout)
          <> (0, 0, 0, 0, 0, 0, 0)
$$;
