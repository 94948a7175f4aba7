"""The scripts of POST /api/db-migrate run as a role of their own, coursedesk_scripts.

Revision ID: 0009_script_role
Revises: 0008_user_names
Create Date: 2026-12-06 09:30:00.000000

The scripts ran as the app's own database user, often a superuser, so a script could do
anything that user could: run programs and read files on the server, end other sessions,
create roles, forge the audit. The role made here may log in only while the app opens a
script's connection (system/script_role.py) and holds only what a data fix needs:

- the rows of the bot's tables and of bot_users: read, add, change, delete (never
  TRUNCATE, which would skip the audit and capture triggers);
- every other table of the app: read, but for the credentials and the bookkeeping, which
  it may not even read (PRIVATE_TABLES); analytics_changes, where the capture triggers
  it fires append its changes, is write-only;
- the bot's sequences: draw the next value, not set it;
- a schema `scripts` of its own, where it may create tables, views and functions (for
  a copy of rows before a fix, say); it owns and changes nothing else.

The audit trigger of the bot's tables and the function recording an applied script
(audit/sql/, system/sql/) now run with their owner's rights, so that the role needs no
right on audit_log, and read the actor from script_runs, which the role cannot write.

Creating the role needs a user with CREATEROLE (or a superuser); an existing role of the
name is kept as it is, and the app refuses to run scripts if it has any right beyond
these. Roles belong to the server, not the database, so a downgrade takes away what the
role holds in this database and leaves the role itself.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from coursedesk.analytics.install import run_script
from coursedesk.audit.install import SOURCE_CHANGE_FUNCTION
from coursedesk.system.install import SCRIPT_RUNS_FUNCTION

revision: str = "0009_script_role"
down_revision: str | None = "0008_user_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "coursedesk_scripts"
SCRIPTS_SCHEMA = "scripts"
WRITABLE_TABLES = ("bookings", "events", "free_lesson_registrations", "courses", "bot_users")
PRIVATE_TABLES = (
    "alembic_version",
    "analytics_changes",
    "api_tokens",
    "broadcast_sender_state",
    "login_attempts",
    "migration_checksums",
    "script_runs",
    "staff_users",
    "web_sessions",
)
FUNCTIONS = (SOURCE_CHANGE_FUNCTION, SCRIPT_RUNS_FUNCTION)
PREVIOUS_AUDIT_FUNCTION = Path(__file__).with_name("0009_script_role_previous.sql")

CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
            NOREPLICATION NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made at the same moment for another database of the server
END
$$
"""

# The sequences that fill the key of a table the role may add rows to.
WRITABLE_SEQUENCES = sa.text(
    """
    SELECT quote_ident(s.relname)
    FROM pg_class AS s
    JOIN pg_depend AS d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class AS t ON t.oid = d.refobjid
    WHERE s.relkind = 'S' AND t.relnamespace = current_schema()::regnamespace
      AND t.relname = ANY(:tables)
    ORDER BY 1
    """
)


def _app_schema() -> str:
    bind = op.get_bind()
    schema = bind.scalar(sa.text("SELECT quote_ident(current_schema())"))
    assert schema, "the migration runs with a schema to create in"
    return str(schema)


def upgrade() -> None:
    schema = _app_schema()
    op.execute(CREATE_ROLE)
    op.create_table(
        "script_runs",
        sa.Column("backend_pid", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("recorded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "started_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("backend_pid", name=op.f("pk_script_runs")),
    )
    op.execute(f"GRANT USAGE ON SCHEMA {schema} TO {ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {ROLE}")
    op.execute(f"REVOKE ALL ON {', '.join(PRIVATE_TABLES)} FROM {ROLE}")
    op.execute(f"GRANT INSERT, UPDATE, DELETE ON {', '.join(WRITABLE_TABLES)} TO {ROLE}")
    op.execute(f"GRANT INSERT ON analytics_changes TO {ROLE}")
    sequences = op.get_bind().scalars(WRITABLE_SEQUENCES, {"tables": list(WRITABLE_TABLES)})
    for sequence in sequences:
        op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {ROLE}")
    op.execute(f"CREATE SCHEMA {SCRIPTS_SCHEMA}")
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA {SCRIPTS_SCHEMA} TO {ROLE}")
    for path in FUNCTIONS:
        run_script(op.get_bind(), path.read_text(encoding="utf-8"))


def downgrade() -> None:
    schema = _app_schema()
    run_script(op.get_bind(), PREVIOUS_AUDIT_FUNCTION.read_text(encoding="utf-8"))
    op.execute("DROP FUNCTION record_script_run(jsonb)")
    op.drop_table("script_runs")
    op.execute(f"DROP SCHEMA {SCRIPTS_SCHEMA} CASCADE")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA {schema} FROM {ROLE}")
