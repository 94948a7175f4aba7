"""The control group of a broadcast: holdout_percent, holdout recipients and their count.

Revision ID: 0014_broadcast_holdout
Revises: 0013_tracked_links
Create Date: 2026-12-10 09:00:00.000000

- message_history.holdout_percent (0–50): the share of the audience drawn at random when
  the broadcast is created and never sent, the control group its outcome is measured
  against (docs/reference.md §8).
- message_recipients.delivery_status may be `holdout`; message_history.holdout_count
  counts those rows, kept by the tally function (broadcasts/sql/recipient_tally.sql,
  applied here), like every delivery figure.
- ix_events_outcome: the events a broadcast's outcome counts (lesson_attended,
  bot_blocked) by time, with their user: a partial index, so the bot's other events
  (some 98 % of them) neither enter it nor pay for it, and the outcome reads the span of
  its windows from the index alone instead of every event of the span.
- ix_bot_users_blocked_at: the users blocked now, by when, so that the blocks of a span
  are read without a pass over every user the webhook has seen; partial, and on
  columns a profile update leaves alone, so the webhook's updates stay HOT.
- idx_message_recipients_status (message_id, delivery_status, user_id) carries sent_at
  and id as well, so that a group's recipients, with their send times, are read from
  the index alone. It replaces the index of 0005 rather than adding one: a send already
  rewrites this index's entry (delivery_status changes), so no write gains an index.

A downgrade turns holdout recipients into `cancelled` (neither was ever sent), counted as
such, before the old function and check come back.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from coursedesk.analytics.install import run_script
from coursedesk.broadcasts.install import RECIPIENT_TALLY_FUNCTION

revision: str = "0014_broadcast_holdout"
down_revision: str | None = "0013_tracked_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREVIOUS_TALLY_FUNCTION = Path(__file__).with_name("0014_broadcast_holdout_previous.sql")
STATUS_CHECK = "ck_message_recipients_delivery_status_known"
STATUS_INDEX = "idx_message_recipients_status"
STATUS_INDEX_COLUMNS = ["message_id", "delivery_status", "user_id"]
STATUSES = ("pending", "sent", "failed", "cancelled", "deleted")
OUTCOME_EVENTS = "event_type IN ('lesson_attended', 'bot_blocked')"


def _statuses(statuses: Sequence[str]) -> str:
    return f"delivery_status IN ({', '.join(repr(s) for s in statuses)})"


def upgrade() -> None:
    op.add_column(
        "message_history",
        sa.Column("holdout_percent", sa.SmallInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "message_history",
        sa.Column("holdout_count", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_message_history_holdout_percent_range"),
        "message_history",
        "holdout_percent BETWEEN 0 AND 50",
    )
    op.drop_constraint(op.f(STATUS_CHECK), "message_recipients", type_="check")
    op.create_check_constraint(
        op.f(STATUS_CHECK), "message_recipients", _statuses((*STATUSES, "holdout"))
    )
    run_script(op.get_bind(), RECIPIENT_TALLY_FUNCTION.read_text(encoding="utf-8"))
    op.create_index(
        "ix_events_outcome",
        "events",
        ["created_at"],
        postgresql_include=["user_id", "event_type"],
        postgresql_where=sa.text(OUTCOME_EVENTS),
    )
    op.create_index(
        "ix_bot_users_blocked_at",
        "bot_users",
        ["blocked_at"],
        postgresql_include=["user_id"],
        postgresql_where=sa.text("is_blocked"),
    )
    op.drop_index(STATUS_INDEX, table_name="message_recipients")
    op.create_index(
        STATUS_INDEX,
        "message_recipients",
        STATUS_INDEX_COLUMNS,
        postgresql_include=["sent_at", "id"],
    )


def downgrade() -> None:
    op.drop_index(STATUS_INDEX, table_name="message_recipients")
    op.create_index(STATUS_INDEX, "message_recipients", STATUS_INDEX_COLUMNS)
    op.drop_index("ix_bot_users_blocked_at", table_name="bot_users")
    op.drop_index("ix_events_outcome", table_name="events")
    op.execute(
        "UPDATE message_recipients SET delivery_status = 'cancelled', updated_at = now() "
        "WHERE delivery_status = 'holdout'"
    )
    run_script(op.get_bind(), PREVIOUS_TALLY_FUNCTION.read_text(encoding="utf-8"))
    op.drop_constraint(op.f(STATUS_CHECK), "message_recipients", type_="check")
    op.create_check_constraint(op.f(STATUS_CHECK), "message_recipients", _statuses(STATUSES))
    op.drop_constraint(
        op.f("ck_message_history_holdout_percent_range"), "message_history", type_="check"
    )
    op.drop_column("message_history", "holdout_count")
    op.drop_column("message_history", "holdout_percent")
