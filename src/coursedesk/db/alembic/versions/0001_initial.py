"""Initial schema: source tables, broadcasts, accounts, audit log and their triggers.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23 13:47:01.169377
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

AUDITED_SOURCE_TABLES = {
    "bookings": "booking",
    "events": "event",
    "free_lesson_registrations": "free_lesson_registration",
    "courses": "course",
}

# Changes to the bot's tables are audited in the database itself, so an UPDATE or DELETE
# run by hand is recorded as surely as an edit through the app. The app names its actor
# with set_config('coursedesk.actor', ..., true) inside the transaction; anything else is
# recorded as the database role that ran it. INSERTs are the bot's normal work and the
# row itself is their record, so they are not copied into the log.
AUDIT_FUNCTION = """
CREATE FUNCTION audit_source_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
$$
"""

# The delivery figures on message_history are derived from the recipient rows by one
# statement-level trigger: a batch of N recipient updates touches the message row once,
# and a statement that changes no delivery_status (a lease being taken) touches it not
# at all.
TALLY_FUNCTIONS = (
    """
CREATE FUNCTION message_recipients_apply(ids integer[], statuses text[], deltas bigint[])
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
$$
""",
    """
CREATE FUNCTION message_recipients_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM message_recipients_apply(array_agg(message_id), array_agg(status), array_agg(n))
        FROM (SELECT message_id, delivery_status AS status, count(*) AS n
              FROM new_rows GROUP BY 1, 2) AS c;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM message_recipients_apply(array_agg(message_id), array_agg(status), array_agg(n))
        FROM (SELECT message_id, delivery_status AS status, count(*) AS n
              FROM new_rows GROUP BY 1, 2
              UNION ALL
              SELECT message_id, delivery_status, -count(*)
              FROM old_rows GROUP BY 1, 2) AS c;
    ELSE
        PERFORM message_recipients_apply(array_agg(message_id), array_agg(status), array_agg(n))
        FROM (SELECT message_id, delivery_status AS status, -count(*) AS n
              FROM old_rows GROUP BY 1, 2) AS c;
    END IF;
    RETURN NULL;
END
$$
""",
)

TALLY_TRIGGERS = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
}

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("revoked_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('viewer', 'operator', 'admin')", name=op.f("ck_api_tokens_role_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    op.create_index("uq_api_tokens_token_hash", "api_tokens", ["token_hash"], unique=True)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "occurred_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target_type", sa.Text(), nullable=True),
        sa.Column("target_id", sa.Text(), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("source", sa.Text(), server_default="app", nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_action_occurred_at", "audit_log", ["action", "occurred_at"], unique=False
    )
    op.create_index("ix_audit_log_occurred_at", "audit_log", ["occurred_at"], unique=False)
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column("course_stream", sa.Text(), nullable=True),
        sa.Column("confirmed", sa.SmallInteger(), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("referral_code", sa.Text(), nullable=True),
        sa.Column("discount_percent", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.CheckConstraint("confirmed IN (-1, 1, 2)", name=op.f("ck_bookings_confirmed_known")),
        sa.CheckConstraint(
            "discount_percent IS NULL OR discount_percent BETWEEN 0 AND 100",
            name=op.f("ck_bookings_discount_percent_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    op.create_index(
        "ix_bookings_course_id_course_stream",
        "bookings",
        ["course_id", "course_stream"],
        unique=False,
    )
    op.create_index("ix_bookings_created_at", "bookings", ["created_at"], unique=False)
    op.create_index(
        "ix_bookings_referral_code",
        "bookings",
        ["referral_code"],
        unique=False,
        postgresql_where="referral_code IS NOT NULL",
    )
    op.create_index(
        "ix_bookings_user_id_created_at", "bookings", ["user_id", "created_at"], unique=False
    )
    op.create_table(
        "bot_users",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("is_blocked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("blocked_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_bot_users")),
    )
    op.create_table(
        "courses",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_created_at", "events", ["created_at"], unique=False)
    op.create_index("ix_events_event_type", "events", ["event_type"], unique=False)
    op.create_index(
        "ix_events_user_id_created_at", "events", ["user_id", "created_at"], unique=False
    )
    op.create_table(
        "free_lesson_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column(
            "registered_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "notification_sent", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("lesson_type", sa.Text(), nullable=True),
        sa.Column("lesson_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_free_lesson_registrations")),
    )
    op.create_index(
        "ix_free_lesson_registrations_lesson_type_lesson_date",
        "free_lesson_registrations",
        ["lesson_type", "lesson_date"],
        unique=False,
    )
    op.create_index(
        "ix_free_lesson_registrations_registered_at",
        "free_lesson_registrations",
        ["registered_at"],
        unique=False,
    )
    op.create_index(
        "ix_free_lesson_registrations_user_id",
        "free_lesson_registrations",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column(
            "attempted_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(
        "ix_login_attempts_address_attempted_at",
        "login_attempts",
        ["address", "attempted_at"],
        unique=False,
    )
    op.create_index(
        "ix_login_attempts_username_attempted_at",
        "login_attempts",
        ["username", "attempted_at"],
        unique=False,
    )
    op.create_table(
        "message_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_text", sa.Text(), nullable=False),
        sa.Column("parse_mode", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="scheduled", nullable=False),
        sa.Column("recipient_type", sa.Text(), nullable=False),
        sa.Column("recipient_group", sa.Text(), nullable=True),
        sa.Column("audience", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("total_recipients", sa.Integer(), server_default="0", nullable=False),
        sa.Column("successful_deliveries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed_deliveries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pending_deliveries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cancelled_deliveries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("deleted_deliveries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("scheduled_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("started_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("sent_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("cancelled_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("deleted_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "parse_mode IS NULL OR parse_mode IN ('HTML', 'MarkdownV2')",
            name=op.f("ck_message_history_parse_mode_known"),
        ),
        sa.CheckConstraint(
            "recipient_type IN ('individual', 'group')",
            name=op.f("ck_message_history_recipient_type_known"),
        ),
        sa.CheckConstraint(
            "status IN ('scheduled', 'sending', 'sent', 'cancelled')",
            name=op.f("ck_message_history_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_history")),
    )
    op.create_index(
        "ix_message_history_created_at", "message_history", ["created_at"], unique=False
    )
    op.create_index(
        "ix_message_history_due",
        "message_history",
        ["scheduled_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('scheduled', 'sending')"),
    )
    op.create_table(
        "migration_checksums",
        sa.Column("revision", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("checksum", sa.Text(), nullable=False),
        sa.Column(
            "applied_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_migration_checksums")),
    )
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('viewer', 'operator', 'admin')", name=op.f("ck_staff_users_role_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
    )
    op.create_index("uq_staff_users_username", "staff_users", ["username"], unique=True)
    op.create_table(
        "telegram_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("update_type", sa.Text(), nullable=False),
        sa.Column(
            "received_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_telegram_updates")),
    )
    op.create_table(
        "message_recipients",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("delivery_status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("sent_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "delivery_status IN ('pending', 'sent', 'failed', 'cancelled', 'deleted')",
            name=op.f("ck_message_recipients_delivery_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message_history.id"],
            name=op.f("fk_message_recipients_message_id_message_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_recipients")),
        sa.UniqueConstraint(
            "message_id", "user_id", name="uq_message_recipients_message_id_user_id"
        ),
    )
    op.create_index(
        "idx_message_recipients_message_id", "message_recipients", ["message_id"], unique=False
    )
    op.create_index(
        "idx_message_recipients_status",
        "message_recipients",
        ["message_id", "delivery_status"],
        unique=False,
    )
    op.create_index(
        "idx_message_recipients_user_id", "message_recipients", ["user_id"], unique=False
    )
    op.create_index(
        "ix_message_recipients_claimable",
        "message_recipients",
        ["message_id", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("delivery_status = 'pending'"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_users.id"],
            name=op.f("fk_web_sessions_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_web_sessions")),
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"], unique=False)

    op.execute(AUDIT_FUNCTION)
    for table, target in AUDITED_SOURCE_TABLES.items():
        op.execute(
            f"CREATE TRIGGER {table}_audit AFTER UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION audit_source_change('{target}')"
        )
    for statement in TALLY_FUNCTIONS:
        op.execute(statement)
    for operation, referencing in TALLY_TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER message_recipients_tally_{operation} AFTER {operation.upper()} "
            f"ON message_recipients {referencing} "
            "FOR EACH STATEMENT EXECUTE FUNCTION message_recipients_tally()"
        )


def downgrade() -> None:
    for operation in TALLY_TRIGGERS:
        op.execute(f"DROP TRIGGER message_recipients_tally_{operation} ON message_recipients")
    op.execute("DROP FUNCTION message_recipients_tally()")
    op.execute("DROP FUNCTION message_recipients_apply(integer[], text[], bigint[])")
    for table in AUDITED_SOURCE_TABLES:
        op.execute(f"DROP TRIGGER {table}_audit ON {table}")
    op.execute("DROP FUNCTION audit_source_change()")
    op.drop_index("ix_web_sessions_expires_at", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index(
        "ix_message_recipients_claimable",
        table_name="message_recipients",
        postgresql_where=sa.text("delivery_status = 'pending'"),
    )
    op.drop_index("idx_message_recipients_user_id", table_name="message_recipients")
    op.drop_index("idx_message_recipients_status", table_name="message_recipients")
    op.drop_index("idx_message_recipients_message_id", table_name="message_recipients")
    op.drop_table("message_recipients")
    op.drop_table("telegram_updates")
    op.drop_index("uq_staff_users_username", table_name="staff_users")
    op.drop_table("staff_users")
    op.drop_table("migration_checksums")
    op.drop_index(
        "ix_message_history_due",
        table_name="message_history",
        postgresql_where=sa.text("status IN ('scheduled', 'sending')"),
    )
    op.drop_index("ix_message_history_created_at", table_name="message_history")
    op.drop_table("message_history")
    op.drop_index("ix_login_attempts_username_attempted_at", table_name="login_attempts")
    op.drop_index("ix_login_attempts_address_attempted_at", table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index("ix_free_lesson_registrations_user_id", table_name="free_lesson_registrations")
    op.drop_index(
        "ix_free_lesson_registrations_registered_at", table_name="free_lesson_registrations"
    )
    op.drop_index(
        "ix_free_lesson_registrations_lesson_type_lesson_date",
        table_name="free_lesson_registrations",
    )
    op.drop_table("free_lesson_registrations")
    op.drop_index("ix_events_user_id_created_at", table_name="events")
    op.drop_index("ix_events_event_type", table_name="events")
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_table("events")
    op.drop_table("courses")
    op.drop_table("bot_users")
    op.drop_index("ix_bookings_user_id_created_at", table_name="bookings")
    op.drop_index(
        "ix_bookings_referral_code",
        table_name="bookings",
        postgresql_where="referral_code IS NOT NULL",
    )
    op.drop_index("ix_bookings_created_at", table_name="bookings")
    op.drop_index("ix_bookings_course_id_course_stream", table_name="bookings")
    op.drop_table("bookings")
    op.drop_index("ix_audit_log_occurred_at", table_name="audit_log")
    op.drop_index("ix_audit_log_action_occurred_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("uq_api_tokens_token_hash", table_name="api_tokens")
    op.drop_table("api_tokens")
