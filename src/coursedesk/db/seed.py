"""`db seed`: generated users bulk-loaded into the source tables with COPY.

Seeding adds rows. It refuses when bookings, events or free_lesson_registrations
already hold rows, unless asked to append; appended rows take ids after the highest
existing id (and the sequence's last value), so nothing collides. The same seed draws
the same users, so appending the same seed twice adds more activity for the same people.
The three tables are locked against writes (reads go on) for the load, which is one
transaction: a failure leaves no partial data behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects.postgresql import insert

from coursedesk.analytics.folding import LOCK as FOLD_LOCK
from coursedesk.analytics.folding import restart_capture
from coursedesk.analytics.install import CAPTURED_TABLES
from coursedesk.analytics.wal_capture import capture_mode, drop_slot
from coursedesk.db.datagen.copydata import COPY_HEADER, COPY_TRAILER, EVENT_COLUMNS
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.datagen.producer import copy_batches
from coursedesk.db.datagen.rows import named_courses
from coursedesk.errors import Conflict, InvalidInput
from coursedesk.sources.models import Course

DEFAULT_USERS = 2_000
MAX_USERS = 1_000_000
SOURCE_TABLES = tuple(CAPTURED_TABLES)
# Sorting in memory keeps an index build off the disk; this is per build, not per server.
_INDEX_BUILD_MEMORY = "256MB"

LoadHook = Callable[[Connection], None]
ProgressCallback = Callable[[str, int, int], None]
"""Called with (phase, users loaded so far, rows loaded so far) after each batch and as
each later phase begins: loading, indexing, finishing (the after-hook), analysing."""


@dataclass(frozen=True)
class LoadHooks:
    """Steps run inside the load's transaction just before the first COPY and after the last.

    They are the place to switch per-statement summary maintenance off for the load
    and to rebuild the summaries once at its end.
    """

    before: LoadHook | None = None
    after: LoadHook | None = None
    after_commit: Callable[[Engine], None] | None = None
    """Run once the load has committed, outside its transaction."""


# Triggers that fire on INSERT (tgtype bit 2) and are enabled (tgenabled 'O').
_INSERT_TRIGGERS_SQL = text(
    """
    SELECT c.relname AS table_name, t.tgname AS name
    FROM pg_trigger AS t
    JOIN pg_class AS c ON c.oid = t.tgrelid
    WHERE NOT t.tgisinternal
      AND t.tgenabled = 'O'
      AND (t.tgtype & 4) <> 0
      AND c.relnamespace = current_schema()::regnamespace
      AND c.relname = ANY(:tables)
    ORDER BY c.relname, t.tgname
    """
)


# The indexes of the given tables, with the constraint each one backs (primary key,
# unique), leaving out those a foreign key depends on; primary keys come first so that
# they are rebuilt first.
_LOAD_INDEXES_SQL = text(
    """
    SELECT table_class.relname AS table_name,
           index_class.relname AS index_name,
           pg_get_indexdef(i.indexrelid) AS index_definition,
           con.conname AS constraint_name,
           pg_get_constraintdef(con.oid) AS constraint_definition
    FROM pg_index AS i
    JOIN pg_class AS index_class ON index_class.oid = i.indexrelid
    JOIN pg_class AS table_class ON table_class.oid = i.indrelid
    LEFT JOIN pg_constraint AS con
        ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype <> 'f'
    WHERE table_class.relnamespace = current_schema()::regnamespace
      AND table_class.relname = ANY(:tables)
      AND NOT EXISTS (
          SELECT 1 FROM pg_constraint AS fk
          WHERE fk.contype = 'f' AND fk.conindid = i.indexrelid
      )
    ORDER BY i.indisprimary DESC, table_class.relname, index_class.relname
    """
)


# The load holds the source tables against writers, so the rebuild, under the fold lock,
# sees every change row there will be until the load commits (analytics/sql/install/).
SUMMARY_REBUILD_SQL = "SELECT analytics_rebuild()"


def deferred_insert_triggers(rebuild_sql: str) -> LoadHooks:
    """Hooks that keep the change capture out of the load and count it once, at its end.

    With the capture triggers: they (and any other INSERT trigger) are switched off for
    the load and back on after it, then `rebuild_sql` runs once (a summary rebuild, for
    instance) under the fold lock, all inside the load's transaction, so no one ever
    sees the tables loaded but the summaries stale. With the capture reading the WAL,
    decoding the load row by row would cost more than the load: its slot is dropped
    before it, and made again with a rebuild once the load has committed.
    """
    switched_off: list[tuple[str, str]] = []
    reads_wal = False

    def before(connection: Connection) -> None:
        nonlocal reads_wal
        reads_wal = capture_mode(connection) == "wal"
        if reads_wal:  # at once, on a connection of its own: the load commits later
            with connection.engine.connect() as side:
                drop_slot(side)
        rows = connection.execute(_INSERT_TRIGGERS_SQL, {"tables": list(SOURCE_TABLES)})
        for row in rows.all():
            connection.execute(text(f'ALTER TABLE "{row.table_name}" DISABLE TRIGGER "{row.name}"'))
            switched_off.append((row.table_name, row.name))

    def after(connection: Connection) -> None:
        for table, trigger in switched_off:
            connection.execute(text(f'ALTER TABLE "{table}" ENABLE TRIGGER "{trigger}"'))
        if not reads_wal:
            connection.execute(FOLD_LOCK)
            connection.execute(text(rebuild_sql))

    def after_commit(engine: Engine) -> None:
        if reads_wal:
            with engine.connect() as connection:
                restart_capture(connection)

    return LoadHooks(before=before, after=after, after_commit=after_commit)


@dataclass(frozen=True)
class SeedResult:
    """What a seeding loaded, and where its time went."""

    users: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    copy_seconds: dict[str, float] = field(default_factory=dict)
    """Time spent in each table's COPY statements (the batches' generation overlaps it)."""
    phase_seconds: dict[str, float] = field(default_factory=dict)
    """load (generate and COPY), indexes, hooks, analyze."""

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "users": self.users,
            "rows": self.rows,
            "total_rows": self.total_rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
            "copy_seconds": {table: round(value, 3) for table, value in self.copy_seconds.items()},
            "phase_seconds": {
                phase: round(value, 3) for phase, value in self.phase_seconds.items()
            },
        }


@dataclass
class _Stopwatch:
    phases: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=perf_counter)

    def lap(self, phase: str) -> None:
        now = perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now


def default_anchor() -> datetime:
    """The current hour (UTC): one seed gives the same rows for an hour, then moves on."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def check_users(users: int) -> int:
    if not 0 <= users <= MAX_USERS:
        raise InvalidInput(f"the number of users must be between 0 and {MAX_USERS}, not {users}")
    return users


def source_tables_empty(connection: Connection) -> bool:
    return len(_empty_tables(connection)) == len(SOURCE_TABLES)


def seed_database(
    engine: Engine,
    plan: GenerationPlan,
    *,
    append: bool = False,
    hooks: LoadHooks | None = None,
    on_progress: ProgressCallback | None = None,
) -> SeedResult:
    """Generate the plan's rows and load them in one transaction, then ANALYZE.

    By default the analytics summaries are not kept row by row during the load but
    rebuilt once at its end, in the same transaction.
    """
    check_users(plan.users)
    hooks = hooks or deferred_insert_triggers(SUMMARY_REBUILD_SQL)
    started = perf_counter()
    watch = _Stopwatch()
    with engine.begin() as connection:
        _require_schema(connection)
        # A load of a million users runs index builds longer than any request may take.
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(
            text(f"LOCK TABLE {', '.join(SOURCE_TABLES)} IN SHARE ROW EXCLUSIVE MODE")
        )
        empty = _empty_tables(connection)
        if not append and len(empty) < len(SOURCE_TABLES):
            raise Conflict(
                "the source tables already hold rows; seed an empty database, "
                "or pass --append to add to them"
            )
        first_ids = {table: _next_free_id(connection, table) for table in SOURCE_TABLES}
        courses = _write_courses(connection)
        if hooks.before:
            hooks.before(connection)
        rebuilt = _set_indexes_aside(connection, empty)
        watch.lap("prepare")
        rows, copy_seconds = load_source_rows(_psycopg(connection), plan, first_ids, on_progress)
        watch.lap("load")
        loaded = sum(rows.values())

        def report(phase: str) -> None:
            if on_progress:
                on_progress(phase, plan.users, loaded)

        report("indexing")
        _rebuild_indexes(connection, rebuilt)
        watch.lap("indexes")
        if hooks.after:
            report("finishing")
            hooks.after(connection)
            watch.lap("hooks")
        for table in SOURCE_TABLES:
            if rows[table]:
                _advance_sequence(connection, table, first_ids[table] + rows[table] - 1)
    watch.lap("commit")
    if hooks.after_commit:
        hooks.after_commit(engine)
        watch.lap("hooks")
    report("analysing")
    analyze(engine)
    watch.lap("analyze")
    return SeedResult(
        users=plan.users,
        rows={"courses": courses, **rows},
        seconds=perf_counter() - started,
        copy_seconds=copy_seconds,
        phase_seconds=watch.phases,
    )


def load_source_rows(
    connection: psycopg.Connection[Any],
    plan: GenerationPlan,
    first_ids: dict[str, int],
    on_progress: ProgressCallback | None = None,
) -> tuple[dict[str, int], dict[str, float]]:
    """COPY the plan's rows, with ids counting up from `first_ids`.

    Events, nine rows in ten, stream through one COPY as the batches are generated, so
    the server never waits for a statement to start or end; bookings and registrations
    are held back and loaded by one COPY each afterwards. (One statement per table also
    fires a statement-level trigger once, not once a batch.) Answers the rows loaded
    into each table and the seconds each table's COPY took, the events' including the
    generation it streamed along with.
    """
    rows = dict.fromkeys(SOURCE_TABLES, 0)
    seconds = dict.fromkeys(SOURCE_TABLES, 0.0)
    held: dict[str, list[bytes]] = {"bookings": [], "free_lesson_registrations": []}
    columns: dict[str, str] = {}
    users = 0
    with connection.cursor() as cursor:
        started = perf_counter()
        with cursor.copy(_copy_statement("events", EVENT_COLUMNS)) as copy:
            copy.write(COPY_HEADER)
            for batch in copy_batches(plan, first_ids):
                for part in batch.tables:
                    if part.table == "events":
                        copy.write(part.body)
                    else:
                        held[part.table].append(part.body)
                        columns[part.table] = part.columns
                    rows[part.table] += part.rows
                users += batch.users
                if on_progress:
                    on_progress("loading", users, sum(rows.values()))
            copy.write(COPY_TRAILER)
        seconds["events"] = perf_counter() - started
        for table, bodies in held.items():
            if not bodies:
                continue
            started = perf_counter()
            with cursor.copy(_copy_statement(table, columns[table])) as copy:
                copy.write(COPY_HEADER)
                for body in bodies:
                    copy.write(body)
                copy.write(COPY_TRAILER)
            seconds[table] = perf_counter() - started
    return rows, seconds


def _copy_statement(table: str, columns: str) -> str:
    return f"COPY {table} ({columns}) FROM STDIN (FORMAT binary)"


def analyze(engine: Engine) -> None:
    """Fresh planner statistics, so the first queries after seeding plan well."""
    with engine.begin() as connection:
        connection.execute(text(f"ANALYZE courses, {', '.join(SOURCE_TABLES)}"))


def _require_schema(connection: Connection) -> None:
    missing = [
        table
        for table in ("courses", *SOURCE_TABLES)
        if connection.scalar(text("SELECT to_regclass(:table)"), {"table": table}) is None
    ]
    if missing:
        raise Conflict(
            f"tables missing: {', '.join(missing)}; "
            "run `coursedesk db upgrade` (or `coursedesk db setup`) first"
        )


def _empty_tables(connection: Connection) -> list[str]:
    return [
        table
        for table in SOURCE_TABLES
        if not connection.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {table})"))
    ]


def _set_indexes_aside(connection: Connection, tables: list[str]) -> list[str]:
    """Drop the indexes of `tables` (primary keys included); answer how to build them again.

    Building an index once over loaded rows is several times faster than updating it
    row by row (PostgreSQL's own advice for bulk loads), but only when the table starts
    empty: rebuilding a large index to add a few rows would cost more. An index that a
    foreign key relies on is kept. All of it happens inside the load's transaction.
    """
    if not tables:
        return []
    rebuild = []
    for index in connection.execute(_LOAD_INDEXES_SQL, {"tables": tables}):
        table = f'"{index.table_name}"'
        if index.constraint_name is None:
            connection.execute(text(f'DROP INDEX "{index.index_name}"'))
            rebuild.append(index.index_definition)
        else:
            constraint = f'"{index.constraint_name}"'
            connection.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}"))
            rebuild.append(
                f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {index.constraint_definition}"
            )
    return rebuild


def _rebuild_indexes(connection: Connection, definitions: list[str]) -> None:
    if not definitions:
        return
    connection.execute(text(f"SET LOCAL maintenance_work_mem = '{_INDEX_BUILD_MEMORY}'"))
    for statement in definitions:
        connection.execute(text(statement))


def _psycopg(connection: Connection) -> psycopg.Connection[Any]:
    return cast("psycopg.Connection[Any]", connection.connection.driver_connection)


def _next_free_id(connection: Connection, table: str) -> int:
    """One past both the highest id and the sequence's last value, so neither collides."""
    highest = connection.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}")) or 0
    last_value = connection.scalar(
        text(
            "SELECT coalesce(last_value, 0) FROM pg_sequences "
            "WHERE schemaname = current_schema() "
            "AND sequencename = split_part(pg_get_serial_sequence(:table, 'id'), '.', 2)"
        ),
        {"table": table},
    )
    return max(int(highest), int(last_value or 0)) + 1


def _advance_sequence(connection: Connection, table: str, last_id: int) -> None:
    """Point the id sequence past the loaded rows, so the bot's next INSERT gets a new id."""
    connection.execute(
        text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :last_id)"),
        {"table": table, "last_id": last_id},
    )


def _write_courses(connection: Connection) -> int:
    """Names for the known courses; one course is left unnamed on purpose."""
    statement = insert(Course).values(named_courses()).on_conflict_do_nothing().returning(Course.id)
    return len(connection.execute(statement).all())
