"""Named SQL statements kept in `sql/*.sql`, each block opened by `-- name: <name>`."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import TextClause, text

SQL_DIRECTORY = Path(__file__).parent / "sql"
_NAME_LINE = re.compile(r"^-- name: (?P<name>[a-z_]+)\s*$", re.MULTILINE)


def parse_named_blocks(source: str) -> dict[str, str]:
    """Split a file into its named statements; text before the first name is ignored."""
    marks = list(_NAME_LINE.finditer(source))
    blocks: dict[str, str] = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(source)
        name = mark.group("name")
        if name in blocks:
            raise ValueError(f"SQL statement {name!r} is defined twice")
        blocks[name] = source[mark.end() : end].strip()
    return blocks


@cache
def _statements() -> dict[str, str]:
    statements: dict[str, str] = {}
    for path in sorted(SQL_DIRECTORY.glob("*.sql")):
        for name, statement in parse_named_blocks(path.read_text(encoding="utf-8")).items():
            if name in statements:
                raise ValueError(f"SQL statement {name!r} is defined in two files")
            statements[name] = statement
    return statements


@cache
def named_sql(name: str) -> TextClause:
    """The statement called `name`, ready to execute with bound parameters."""
    return text(_statements()[name])
