"""The fold does less per row: an updated row is subtracted, and new names wait in a list.

Revision ID: 0017_fold_throughput
Revises: 0016_wal_capture
Create Date: 2026-12-12 09:00:00.000000

- The analytics install files applied again: analytics_fold() recomputes a user from the
  source tables only where the old version of a row may have decided their first or last
  time seen, their name or their stream (analytics/sql/install/3_fold.sql); any other
  old version, such as a pending booking's before it was confirmed, is subtracted like a
  count; analytics_read_taken() reads a change row's values by key instead of as three
  records.
- The three GIN indexes of user_names take new entries into a pending list of at most
  1 MB (fastupdate), merged into the index a list at a time, by the insert that finds it
  full or by autovacuum. Only the fold writes user_names, so it is the fold that pays for
  the merge, and a search reads at most that much unmerged.
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

from coursedesk.analytics.install import apply_install_scripts, run_script

revision: str = "0017_fold_throughput"
down_revision: str | None = "0016_wal_capture"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREVIOUS_FUNCTIONS = Path(__file__).with_name("0017_fold_throughput_previous.sql")
NAME_INDEXES = (
    "ix_user_names_username_trgm",
    "ix_user_names_first_name_trgm",
    "ix_user_names_name_grams",
)
PENDING_LIST_KB = 1024


def upgrade() -> None:
    apply_install_scripts(op.get_bind())
    for index in NAME_INDEXES:
        op.execute(
            f"ALTER INDEX {index} SET (fastupdate = on, gin_pending_list_limit = {PENDING_LIST_KB})"
        )


def downgrade() -> None:
    for index in NAME_INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        op.execute(f"ALTER INDEX {index} RESET (gin_pending_list_limit)")
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")
    run_script(op.get_bind(), PREVIOUS_FUNCTIONS.read_text(encoding="utf-8"))
