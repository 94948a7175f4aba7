"""The broadcasts domain's database function, as the file of `sql/` that a migration applies.

The file holds the living definition (CREATE OR REPLACE); a change to it comes with a
new migration that applies it again.
"""

from __future__ import annotations

from pathlib import Path

RECIPIENT_TALLY_FUNCTION = Path(__file__).parent / "sql" / "recipient_tally.sql"
