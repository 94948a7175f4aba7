"""The analytics capture may read the bot's changes from the WAL instead of triggers.

Revision ID: 0016_wal_capture
Revises: 0015_broadcast_drafts
Create Date: 2026-12-11 10:00:00.000000

- analytics_fold_state.capture: `triggers` (as before, and the default) or `wal`, set by
  `coursedesk db capture` (analytics/wal_capture.py);
- wal_snapshot: the snapshot of the last batch or rebuild, whose transactions are
  counted, so a transaction the slot gives again is not folded twice;
- wal_read_at: everything committed before it is folded (the freshness of the figures
  when the capture reads the WAL);
- wal_slot_ready: written once the slot exists, cleared before it is dropped or made, so
  that only a rebuild whose snapshot was taken after the slot was made is recorded;
- the analytics install files applied again: analytics_fold() also folds the changes a
  batch read from the WAL into the temporary table fold_pulled.

Rolling back refuses while the capture reads the WAL: `coursedesk db capture triggers`
first puts the triggers back.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from coursedesk.analytics.install import apply_install_scripts, run_script

revision: str = "0016_wal_capture"
down_revision: str | None = "0015_broadcast_drafts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREVIOUS_FUNCTIONS = Path(__file__).with_name("0016_wal_capture_previous.sql")


def upgrade() -> None:
    op.add_column(
        "analytics_fold_state",
        sa.Column("capture", sa.Text(), server_default="triggers", nullable=False),
    )
    op.create_check_constraint(
        "capture_mode", "analytics_fold_state", "capture IN ('triggers', 'wal')"
    )
    op.add_column("analytics_fold_state", sa.Column("wal_snapshot", sa.Text(), nullable=True))
    op.add_column(
        "analytics_fold_state",
        sa.Column("wal_read_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
    )
    op.add_column(
        "analytics_fold_state",
        sa.Column("wal_slot_ready", sa.Boolean(), server_default="false", nullable=False),
    )
    apply_install_scripts(op.get_bind())


def downgrade() -> None:
    mode = op.get_bind().execute(sa.text("SELECT capture FROM analytics_fold_state")).scalar()
    if mode == "wal":
        raise RuntimeError(
            "the analytics capture reads the WAL: run `coursedesk db capture triggers` "
            "before rolling back past 0016"
        )
    run_script(op.get_bind(), PREVIOUS_FUNCTIONS.read_text(encoding="utf-8"))
    op.drop_column("analytics_fold_state", "wal_slot_ready")
    op.drop_column("analytics_fold_state", "wal_read_at")
    op.drop_column("analytics_fold_state", "wal_snapshot")
    op.drop_constraint(
        op.f("ck_analytics_fold_state_capture_mode"), "analytics_fold_state", type_="check"
    )
    op.drop_column("analytics_fold_state", "capture")
