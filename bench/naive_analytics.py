"""The original design's SQL (naive_analytics.sql): run, timed, held against a route's answer."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from coursedesk.analytics.sql_files import parse_named_blocks

STATEMENTS_FILE = Path(__file__).with_name("naive_analytics.sql")
# A paginated answer's "total" sits beside its items; the naive SQL gives it on every row.
TOTAL = "total"

Row = dict[str, Any]


@cache
def _statements() -> dict[str, str]:
    return parse_named_blocks(STATEMENTS_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class NaiveQuery:
    """One statement of naive_analytics.sql with the parameters that match a route's call."""

    name: str
    parameters: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class NaiveRun:
    rows: list[Row]
    seconds: list[float]

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.seconds)


def run_naive(url: str, query: NaiveQuery, repeat: int) -> NaiveRun:
    """Run the statement `repeat` times on a connection of its own; the rows of the first run."""
    statement = _statements()[query.name]
    seconds: list[float] = []
    rows: list[Row] = []
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as connection:
        for attempt in range(repeat):
            started = time.perf_counter()
            fetched = connection.execute(statement, query.parameters).fetchall()
            seconds.append(time.perf_counter() - started)
            if attempt == 0:
                rows = [{key: _as_json(value) for key, value in row.items()} for row in fetched]
    return NaiveRun(rows=rows, seconds=seconds)


def _as_json(value: object) -> object:
    """A database value as the API's JSON spells it."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def disagreement(answer: Any, naive_rows: list[Row]) -> str | None:
    """Why the route's JSON answer differs from the naive rows, or None when they agree.

    Route items are compared on the naive statement's columns only (a users page carries
    more than the search statement selects); an object answer counts as one row.
    """
    items: list[Row] = answer.get("items", [answer])
    expected = [{k: v for k, v in row.items() if k != TOTAL} for row in naive_rows]
    columns = list(expected[0]) if expected else []
    got = [{column: item.get(column) for column in columns} for item in items]
    if len(got) != len(expected):
        return f"{len(got)} items from the route, {len(expected)} rows from the naive SQL"
    for index, (route_row, naive_row) in enumerate(zip(got, expected, strict=True)):
        if route_row != naive_row:
            return f"item {index}: route {route_row} ≠ naive {naive_row}"
    if TOTAL in answer and naive_rows and answer[TOTAL] != naive_rows[0][TOTAL]:
        return f"total: route {answer[TOTAL]} ≠ naive {naive_rows[0][TOTAL]}"
    return None
