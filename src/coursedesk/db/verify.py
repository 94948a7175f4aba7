"""`db verify`: the live database checked against the models, the migrations and itself.

Structure is compared with the models' metadata (tables, columns, indexes,
constraints); then triggers, id sequences, migrations and the data are checked. A
*problem* is something wrong that the app relies on (exit 1); a *warning* is worth a
look but breaks nothing. Every data check runs in a savepoint, so a missing table turns
into a reported problem instead of stopping the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial

from sqlalchemy import (
    CheckConstraint,
    Connection,
    Engine,
    ForeignKeyConstraint,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from coursedesk.analytics.drift import SUMMARY_TABLES, find_drift
from coursedesk.analytics.install import stored_capture_mode
from coursedesk.analytics.wal_capture import CaptureLost, existing_slot, wal_capture_problems
from coursedesk.db import migrations
from coursedesk.db.inspect import (
    ColumnInfo,
    ConstraintInfo,
    SchemaInfo,
    read_constraints,
    read_schema,
)
from coursedesk.db.registry import metadata
from coursedesk.db.verify_sql import (
    DATA_CHECKS,
    SEQUENCES_SQL,
    TRIGGERS_SQL,
    DataCheck,
    Status,
)

# The trigger functions the migrations attach, and the tables each must be on.
EXPECTED_TRIGGER_FUNCTIONS = {
    "audit_source_change": ("bookings", "events", "free_lesson_registrations", "courses"),
    "message_recipients_tally": ("message_recipients",),
    "analytics_capture_insert": ("bookings", "events", "free_lesson_registrations"),
    "analytics_capture_update": ("bookings", "events", "free_lesson_registrations"),
    "analytics_capture_delete": ("bookings", "events", "free_lesson_registrations"),
    "analytics_capture_truncate": ("bookings", "events", "free_lesson_registrations"),
}
# Spellings SQLAlchemy renders differently from PostgreSQL's format_type().
_TYPE_ALIASES = {
    "varchar": "character varying",
    "char": "character",
    "timestamp": "timestamp without time zone",
    "time": "time without time zone",
    "float": "double precision",
}
_LISTED = 8


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    checks: list[Check]

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if check.status is Status.problem]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.status is Status.warning]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "problems": len(self.problems),
            "warnings": len(self.warnings),
            "checks": [asdict(check) for check in self.checks],
        }


def verify(engine: Engine) -> VerifyReport:
    with engine.connect() as connection:
        schema = read_schema(connection)
        constraints = read_constraints(connection)
        checks = [
            *_guarded(connection, "migrations", _migration_checks),
            *structure_checks(metadata(), schema, constraints, connection.dialect),
            *_trigger_checks(connection),
            *_sequence_checks(connection),
            *_data_checks(connection),
        ]
    checks += _summary_checks(engine)
    return VerifyReport(checks)


def _summary_checks(engine: Engine) -> list[Check]:
    """Every analytics summary against the source tables (analytics/drift.py)."""
    name = "analytics summaries"
    try:
        drifts = find_drift(engine)
    except DBAPIError as exc:
        message = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        return [Check(name, Status.problem, f"could not check: {message}")]
    except CaptureLost as exc:
        return [Check(name, Status.problem, f"could not check: {exc}")]
    if not drifts:
        return [
            Check(name, Status.ok, f"all {len(SUMMARY_TABLES)} summaries match the source tables")
        ]
    return [Check(name, Status.problem, drift.describe()) for drift in drifts]


def _listing(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def _summary(name: str, problems: list[str], ok_detail: str) -> Iterator[Check]:
    if not problems:
        yield Check(name, Status.ok, ok_detail)
    for problem in problems:
        yield Check(name, Status.problem, problem)


def _guarded(
    connection: Connection, name: str, checks: Callable[[Connection], Iterator[Check]]
) -> list[Check]:
    """Run `checks` in a savepoint: a query that fails becomes a problem named `name`."""
    savepoint = connection.begin_nested()
    try:
        found = list(checks(connection))
    except DBAPIError as exc:
        savepoint.rollback()
        message = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        return [Check(name, Status.problem, f"could not check: {message}")]
    savepoint.commit()
    return found


def _migration_checks(connection: Connection) -> Iterator[Check]:
    status = migrations.status(connection)
    if not status.current_known:
        # Nothing this code knows was applied, so no checksum can be compared either.
        yield Check(
            "migrations", Status.problem, str(migrations.UnknownRevision(str(status.current)))
        )
        return
    if status.is_current:
        yield Check("migrations", Status.ok, f"at head {status.head}")
    else:
        yield Check(
            "migrations",
            Status.problem,
            f"at {status.current or 'no revision'}; pending: {', '.join(status.pending)}",
        )
    changed = migrations.validate(connection)
    yield from _summary(
        "migration checksums",
        [f"{item.filename} ({item.revision}): {item.problem}" for item in changed],
        f"{len(status.applied)} applied migration(s) match their files",
    )


def normalise_type(rendered: str) -> str:
    name = rendered.lower().replace(", ", ",")
    base, _, rest = name.partition("(")
    return _TYPE_ALIASES.get(base, base) + (f"({rest}" if rest else "")


def _expected_type(table: Table, column: str, dialect: Dialect) -> str:
    return normalise_type(str(table.c[column].type.compile(dialect=dialect)))


def structure_checks(
    expected: MetaData,
    schema: SchemaInfo,
    constraints: dict[str, list[ConstraintInfo]],
    dialect: Dialect,
) -> Iterator[Check]:
    """The schema compared with the models: what is missing or differs is a problem."""
    tables: list[str] = []
    columns: list[str] = []
    indexes: list[str] = []
    keys: list[str] = []
    expected_index_count = expected_key_count = 0
    for table in expected.tables.values():
        actual = schema.table(table.name)
        if actual is None:
            tables.append(f"table {table.name} is missing")
            continue
        columns += _column_problems(
            table, {column.name: column for column in actual.columns}, dialect
        )
        actual_indexes = {index.name: index for index in actual.indexes}
        for index in table.indexes:
            expected_index_count += 1
            found = actual_indexes.get(str(index.name))
            if found is None:
                indexes.append(f"index {index.name} on {table.name} is missing")
            elif not found.valid:
                indexes.append(f"index {index.name} on {table.name} is invalid (rebuild it)")
            elif found.unique != bool(index.unique):
                indexes.append(
                    f"index {index.name} on {table.name} should be unique={index.unique}"
                )
        actual_keys = {key.name: key for key in constraints.get(table.name, [])}
        for constraint in table.constraints:
            # A table mapped without a primary key still carries an empty one.
            if isinstance(constraint, PrimaryKeyConstraint) and not constraint.columns:
                continue
            if isinstance(constraint, CheckConstraint | UniqueConstraint | ForeignKeyConstraint):
                expected_key_count += 1
            found_key = actual_keys.get(str(constraint.name))
            if found_key is None:
                keys.append(f"constraint {constraint.name} on {table.name} is missing")
            elif not found_key.validated:
                keys.append(f"constraint {constraint.name} on {table.name} is not validated")
    extra = sorted({table.name for table in schema.tables} - set(expected.tables))
    yield from _summary(
        "tables",
        tables,
        f"{len(expected.tables)} expected tables present"
        + (f"; also present: {_listing(extra)}" if extra else ""),
    )
    yield from _summary("columns", columns, "every expected column has its type and nullability")
    yield from _summary("indexes", indexes, f"{expected_index_count} expected indexes present")
    yield from _summary(
        "constraints",
        keys,
        f"primary keys and {expected_key_count} check, unique and foreign-key constraints "
        "present and validated",
    )


def _column_problems(
    table: Table, actual: dict[str, ColumnInfo], dialect: Dialect
) -> Iterator[str]:
    for column in table.columns:
        found = actual.get(column.name)
        if found is None:
            yield f"column {table.name}.{column.name} is missing"
            continue
        wanted = _expected_type(table, column.name, dialect)
        if normalise_type(found.type) != wanted:
            yield f"column {table.name}.{column.name} is {found.type}, expected {wanted}"
        if found.nullable != column.nullable:
            yield (
                f"column {table.name}.{column.name} should be "
                f"{'nullable' if column.nullable else 'NOT NULL'}"
            )


def _trigger_checks(connection: Connection) -> Iterator[Check]:
    triggers = connection.execute(TRIGGERS_SQL).all()
    disabled = [f"{row.table_name}.{row.name}" for row in triggers if row.enabled == "D"]
    yield from _summary(
        "disabled triggers",
        [f"trigger {name} is disabled" for name in disabled],
        f"all {len(triggers)} triggers enabled",
    )
    attached = {(row.function, row.table_name) for row in triggers}
    mode = stored_capture_mode(connection)
    reads_wal = mode == "wal"
    missing = [
        f"no {function}() trigger on {table}"
        for function, tables in EXPECTED_TRIGGER_FUNCTIONS.items()
        for table in tables
        if (function, table) not in attached
        and not (reads_wal and function.startswith("analytics_capture_"))
    ]
    if reads_wal:
        missing += [
            f"{function}() trigger on {table}, although the capture reads the WAL"
            for function, table in sorted(attached)
            if function.startswith("analytics_capture_")
        ]
        missing += wal_capture_problems(connection)
    elif mode == "triggers" and (slot := existing_slot(connection)):
        missing.append(f"replication slot {slot} is left while the capture uses triggers")
    yield from _summary(
        "audit, tally and capture triggers",
        missing,
        "audit, delivery-tally triggers in place; the analytics capture "
        + ("reads the WAL (slot and publication in place)" if reads_wal else "triggers too"),
    )


def _sequence_checks(connection: Connection) -> Iterator[Check]:
    """A sequence behind its column's largest value makes the bot's next INSERT fail."""
    behind = []
    sequences = connection.execute(SEQUENCES_SQL).all()
    for row in sequences:
        highest = connection.scalar(
            text(f'SELECT max("{row.column_name}") FROM "{row.table_name}"')
        )
        if highest is not None and row.next_value <= highest:
            behind.append(
                f"{row.sequence_name} would hand out {row.next_value}, but "
                f"{row.table_name}.{row.column_name} already reaches {highest}"
            )
    yield from _summary("id sequences", behind, f"{len(sequences)} sequences ahead of their rows")


def _data_checks(connection: Connection) -> Iterator[Check]:
    for data_check in DATA_CHECKS:
        yield from _guarded(connection, data_check.name, partial(_count, data_check))


def _count(data_check: DataCheck, connection: Connection) -> Iterator[Check]:
    found = connection.scalar(data_check.sql) or 0
    if found:
        yield Check(data_check.name, data_check.severity, data_check.found.format(n=found))
    else:
        yield Check(data_check.name, Status.ok, data_check.ok_detail)
