"""The app's own queries, timed by SQLAlchemy's cursor events: figures per statement shape.

Memory is bounded: at most MAX_STATEMENTS shapes (the least recently run is dropped to
make room), the last P95_WINDOW durations of each for its p95, and the last
RECENT_RUNS runs to find the slowest recent ones.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from coursedesk.monitoring.pools import PoolFigures
from coursedesk.monitoring.statements import normalize
from coursedesk.web.schemas import Timestamp

MAX_STATEMENTS = 200
P95_WINDOW = 500
RECENT_RUNS = 1000
SLOWEST_SHOWN = 20
_STARTED = "coursedesk.query_started"


class StatementFigures(BaseModel):
    database: str
    statement_id: str
    statement: str
    count: int
    total_ms: float
    mean_ms: float
    p95_ms: float
    max_ms: float


class SlowQuery(BaseModel):
    database: str
    statement_id: str
    statement: str
    duration_ms: float
    at: Timestamp


class QueryReport(BaseModel):
    """What `GET /api/system/queries` answers."""

    since: Timestamp
    statements_tracked: int
    statements_dropped: int
    queries: list[StatementFigures]
    slowest: list[SlowQuery]
    pools: list[PoolFigures]


def statement_id(database: str, statement: str) -> str:
    """A short stable name for a statement shape, fit for a metric label."""
    return hashlib.blake2b(f"{database}\n{statement}".encode(), digest_size=6).hexdigest()


class _Tally:
    __slots__ = ("count", "durations", "longest", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.longest = 0.0
        self.durations: deque[float] = deque(maxlen=P95_WINDOW)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.longest = max(self.longest, seconds)
        self.durations.append(seconds)

    def p95(self) -> float:
        ordered = sorted(self.durations)
        return ordered[math.ceil(0.95 * len(ordered)) - 1] if ordered else 0.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class QueryMonitor:
    """Times every statement the watched engines run, in this process."""

    def __init__(self) -> None:
        self.since = datetime.now(UTC)
        self._tallies: OrderedDict[tuple[str, str], _Tally] = OrderedDict()
        self._recent: deque[tuple[float, float, str, str]] = deque(maxlen=RECENT_RUNS)
        self._dropped = 0

    def watch(self, database: str, engine: AsyncEngine) -> Callable[[], None]:
        """Time the statements of `engine` under `database`; answers how to stop."""
        target = engine.sync_engine

        def started(connection: Connection, *_: Any) -> None:
            connection.info[_STARTED] = time.perf_counter()

        def finished(connection: Connection, _: Any, statement: str, *__: Any) -> None:
            began = connection.info.pop(_STARTED, None)
            if began is not None:
                self.record(database, statement, time.perf_counter() - began)

        event.listen(target, "before_cursor_execute", started)
        event.listen(target, "after_cursor_execute", finished)

        def stop() -> None:
            event.remove(target, "before_cursor_execute", started)
            event.remove(target, "after_cursor_execute", finished)

        return stop

    def record(self, database: str, statement: str, seconds: float) -> None:
        key = (database, normalize(statement))
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
            if len(self._tallies) > MAX_STATEMENTS:
                self._tallies.popitem(last=False)
                self._dropped += 1
        else:
            self._tallies.move_to_end(key)
        tally.add(seconds)
        self._recent.append((seconds, time.time(), database, key[1]))

    def statements(self) -> list[StatementFigures]:
        """Every tracked shape, the most total time first."""
        figures = [
            StatementFigures(
                database=database,
                statement_id=statement_id(database, statement),
                statement=statement,
                count=tally.count,
                total_ms=_ms(tally.total),
                mean_ms=_ms(tally.total / tally.count),
                p95_ms=_ms(tally.p95()),
                max_ms=_ms(tally.longest),
            )
            for (database, statement), tally in self._tallies.items()
        ]
        return sorted(figures, key=lambda figure: figure.total_ms, reverse=True)

    def slowest(self, limit: int = SLOWEST_SHOWN) -> list[SlowQuery]:
        """The slowest of the last RECENT_RUNS runs, slowest first."""
        return [
            SlowQuery(
                database=database,
                statement_id=statement_id(database, statement),
                statement=statement,
                duration_ms=_ms(seconds),
                at=datetime.fromtimestamp(at, UTC),
            )
            for seconds, at, database, statement in heapq.nlargest(limit, self._recent)
        ]

    def report(self, pools: list[PoolFigures]) -> QueryReport:
        return QueryReport(
            since=self.since,
            statements_tracked=len(self._tallies),
            statements_dropped=self._dropped,
            queries=self.statements(),
            slowest=self.slowest(),
            pools=pools,
        )
