"""The catalog and data queries `db verify` runs, each named and explained."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import TextClause, text


class Status(StrEnum):
    ok = "ok"
    warning = "warning"
    problem = "problem"


TRIGGERS_SQL = text(
    """
    SELECT c.relname AS table_name, t.tgname AS name, t.tgenabled AS enabled,
           p.proname AS function
    FROM pg_trigger AS t
    JOIN pg_class AS c ON c.oid = t.tgrelid
    JOIN pg_proc AS p ON p.oid = t.tgfoid
    WHERE NOT t.tgisinternal
      AND c.relnamespace = current_schema()::regnamespace
    ORDER BY c.relname, t.tgname
    """
)

# Sequences owned by a column (serial or identity) and the value each hands out next;
# last_value is null until the sequence is first used.
SEQUENCES_SQL = text(
    """
    SELECT seq.sequencename AS sequence_name,
           c.relname AS table_name,
           a.attname AS column_name,
           coalesce(seq.last_value + seq.increment_by, seq.start_value) AS next_value
    FROM pg_depend AS d
    JOIN pg_class AS s ON s.oid = d.objid AND s.relkind = 'S'
    JOIN pg_class AS c ON c.oid = d.refobjid
    JOIN pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    JOIN pg_sequences AS seq
        ON seq.schemaname = current_schema() AND seq.sequencename = s.relname
    WHERE d.classid = 'pg_class'::regclass
      AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i')
      AND c.relnamespace = current_schema()::regnamespace
    ORDER BY seq.sequencename
    """
)


@dataclass(frozen=True)
class DataCheck:
    """A count of rows that should not exist; `found` reads as a sentence with {n}."""

    name: str
    severity: Status
    sql: TextClause
    found: str
    ok_detail: str


DATA_CHECKS = (
    # The foreign key forbids these; a check that finds any means it was bypassed.
    DataCheck(
        "recipients without a message",
        Status.problem,
        text(
            "SELECT count(*) FROM message_recipients AS r "
            "WHERE NOT EXISTS (SELECT 1 FROM message_history AS m WHERE m.id = r.message_id)"
        ),
        "{n} message_recipients rows point to no message_history row",
        "every recipient row belongs to a broadcast",
    ),
    DataCheck(
        "sessions without a staff user",
        Status.problem,
        text(
            "SELECT count(*) FROM web_sessions AS w "
            "WHERE NOT EXISTS (SELECT 1 FROM staff_users AS s WHERE s.id = w.user_id)"
        ),
        "{n} web_sessions rows point to no staff_users row",
        "every web session belongs to a staff user",
    ),
    # A user the source tables have never seen may still be a real chat (its rows
    # deleted since), so this is worth a look, not a failure.
    DataCheck(
        "recipients who are not users",
        Status.warning,
        text(
            "SELECT count(*) FROM message_recipients AS r "
            "WHERE NOT EXISTS (SELECT 1 FROM bot_users AS u WHERE u.user_id = r.user_id) "
            "AND NOT EXISTS (SELECT 1 FROM bookings AS b WHERE b.user_id = r.user_id) "
            "AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.user_id = r.user_id) "
            "AND NOT EXISTS "
            "(SELECT 1 FROM free_lesson_registrations AS f WHERE f.user_id = r.user_id)"
        ),
        "{n} recipients are in no source table nor in bot_users",
        "every recipient is a known user",
    ),
    DataCheck(
        "booking statuses",
        Status.problem,
        text("SELECT count(*) FROM bookings WHERE confirmed NOT IN (-1, 1, 2)"),
        "{n} bookings have a confirmed value other than -1, 1 or 2",
        "every booking is cancelled (-1), pending (1) or confirmed (2)",
    ),
    DataCheck(
        "booking discounts",
        Status.problem,
        text("SELECT count(*) FROM bookings WHERE discount_percent NOT BETWEEN 0 AND 100"),
        "{n} bookings have a discount_percent outside 0-100",
        "every discount lies between 0 and 100 percent",
    ),
    # The figures on message_history are kept by a trigger from the recipient rows
    # (migration 0001); "successful" counts sent messages, deleted ones included.
    DataCheck(
        "delivery figures",
        Status.problem,
        text(
            """
            SELECT count(*)
            FROM message_history AS m
            LEFT JOIN (
                SELECT message_id,
                       count(*) AS total,
                       count(*) FILTER (WHERE delivery_status = 'pending') AS pending,
                       count(*) FILTER (WHERE delivery_status IN ('sent', 'deleted')) AS successful,
                       count(*) FILTER (WHERE delivery_status = 'failed') AS failed,
                       count(*) FILTER (WHERE delivery_status = 'cancelled') AS cancelled,
                       count(*) FILTER (WHERE delivery_status = 'deleted') AS deleted,
                       count(*) FILTER (WHERE delivery_status = 'holdout') AS holdout
                FROM message_recipients
                GROUP BY message_id
            ) AS r ON r.message_id = m.id
            WHERE (m.total_recipients, m.pending_deliveries, m.successful_deliveries,
                   m.failed_deliveries, m.cancelled_deliveries, m.deleted_deliveries,
                   m.holdout_count)
                  IS DISTINCT FROM
                  (coalesce(r.total, 0), coalesce(r.pending, 0), coalesce(r.successful, 0),
                   coalesce(r.failed, 0), coalesce(r.cancelled, 0), coalesce(r.deleted, 0),
                   coalesce(r.holdout, 0))
            """
        ),
        "{n} broadcasts have delivery figures that disagree with their recipient rows",
        "every broadcast's delivery figures match its recipient rows",
    ),
    DataCheck(
        "lesson attendance details",
        Status.warning,
        text(
            "SELECT count(*) FROM events WHERE event_type = 'lesson_attended' "
            "AND (coalesce(details ->> 'lesson_type', '') = '' "
            "OR coalesce(details ->> 'lesson_date', '') !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$')"
        ),
        "{n} lesson_attended events lack a lesson_type or a YYYY-MM-DD lesson_date "
        "(they are left out of lesson conversion)",
        "every lesson_attended event names its lesson type and date",
    ),
)
