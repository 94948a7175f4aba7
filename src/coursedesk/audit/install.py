"""The audit domain's database function, as the file of `sql/` that a migration applies.

The file holds the living definition (CREATE OR REPLACE); a change to it comes with a
new migration that applies it again.
"""

from __future__ import annotations

from pathlib import Path

SOURCE_CHANGE_FUNCTION = Path(__file__).parent / "sql" / "source_change.sql"
