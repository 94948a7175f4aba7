"""`coursedesk db seed | verify | rebuild-summaries | capture | setup | schema`: data tooling."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from time import perf_counter
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from coursedesk.analytics.folding import rebuild_summaries, set_capture
from coursedesk.analytics.wal_capture import capture_state
from coursedesk.cli.common import (
    capture_from_the_wal,
    console,
    err_console,
    fail,
    print_json,
    tool_engine,
)
from coursedesk.cli.db import app
from coursedesk.db import migrations
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.inspect import SchemaInfo, TableInfo, read_schema
from coursedesk.db.seed import (
    DEFAULT_USERS,
    MAX_USERS,
    SeedResult,
    default_anchor,
    seed_database,
    source_tables_empty,
)
from coursedesk.db.verify import VerifyReport, verify
from coursedesk.db.verify_sql import Status
from coursedesk.errors import InvalidInput

UsersOption = Annotated[
    int,
    typer.Option("--users", min=0, max=MAX_USERS, help="How many bot users to generate"),
]
SeedOption = Annotated[
    int, typer.Option("--seed", help="Random seed: the same seed gives the same rows")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]
# Where a seeding's time went; the hook after the load is the analytics summary rebuild.
_PHASE_LABELS = {
    "load": "generate and COPY",
    "indexes": "indexes",
    "hooks": "analytics summaries",
    "analyze": "ANALYZE",
}
_MARKS = {Status.ok: "[green]✓[/]", Status.warning: "[yellow]![/]", Status.problem: "[red]✗[/]"}


def _anchor(value: str | None) -> datetime:
    if value is None:
        return default_anchor()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--anchor: {value!r} is not an ISO 8601 date or time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run_seed(plan: GenerationPlan, *, append: bool, quiet: bool) -> SeedResult:
    """Seed with a progress bar on stderr, when stderr is a terminal and not told to be quiet."""
    if quiet or not err_console.is_terminal:
        return seed_database(tool_engine(), plan, append=append)
    columns = (
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("users, {task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console) as progress:
        task = progress.add_task("loading", total=plan.users, rows=0)

        def show(phase: str, users: int, rows: int) -> None:
            progress.update(task, description=phase, completed=users, rows=rows)

        return seed_database(tool_engine(), plan, append=append, on_progress=show)


def _print_seed(result: SeedResult) -> None:
    table = Table(title=f"{result.users:,} users seeded")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}")
    table.add_row("[bold]total[/]", f"[bold]{result.total_rows:,}[/]")
    console.print(table)
    phases = ", ".join(
        f"{label} {result.phase_seconds[phase]:.2f} s"
        for phase, label in _PHASE_LABELS.items()
        if phase in result.phase_seconds
    )
    console.print(
        f"{result.seconds:.2f} s, {result.rows_per_second:,.0f} rows/s ({phases})",
        highlight=False,
    )


@app.command()
def seed(
    users: UsersOption = DEFAULT_USERS,
    seed_value: SeedOption = 1,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor", help="Time the history ends (ISO 8601, UTC if no offset); default: now"
        ),
    ] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Add to source tables that already hold rows")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate realistic bot data and bulk-load it (refused on non-empty tables without --append).

    The rows are a function of --users, --seed and --anchor; the anchor defaults to the
    current hour, so one seed gives the same rows within the hour and the same history,
    moved in time, after it.
    """
    plan = GenerationPlan(users=users, seed=seed_value, anchor=_anchor(anchor))
    result = _run_seed(plan, append=append, quiet=quiet or as_json)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_seed(result)


def _print_report(report: VerifyReport) -> None:
    table = Table(show_header=True, header_style="bold")
    table.add_column("", width=1)
    table.add_column("check")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        table.add_row(_MARKS[check.status], check.name, check.detail)
    console.print(table)


def _report_and_exit(report: VerifyReport, *, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report)
    if not report.ok:
        fail(f"verification found {len(report.problems)} problem(s)")
    if not as_json:
        warnings = f" ({len(report.warnings)} warning(s))" if report.warnings else ""
        console.print(f"[green]✓[/] database verified{warnings}")


@app.command("verify")
def verify_command(as_json: JsonOption = False) -> None:
    """Check structure, triggers, sequences, migrations and data; exit 1 on a problem."""
    _report_and_exit(verify(tool_engine()), as_json=as_json)


@app.command("rebuild-summaries")
def rebuild_summaries_command() -> None:
    """Recompute every analytics summary from the source tables, while the bot writes on.

    What the bot commits during the rebuild is folded on top of it afterwards.
    """
    started = perf_counter()
    rebuild_summaries(tool_engine())
    console.print(f"[green]✓[/] analytics summaries rebuilt in {perf_counter() - started:.1f} s")


class CaptureChoice(StrEnum):
    triggers = "triggers"
    wal = "wal"


@app.command("capture")
def capture_command(
    mode: Annotated[
        CaptureChoice | None,
        typer.Argument(help="triggers, or wal (needs wal_level = logical); none: show it"),
    ] = None,
) -> None:
    """Show or switch how the analytics capture reads the bot's changes.

    `wal` reads them from a logical replication slot, so the bot's statements run no
    trigger of coursedesk's; `triggers` appends them from triggers on its tables. A
    switch rebuilds every summary once, while the bot writes on.
    """
    engine = tool_engine()
    if mode is None:
        with engine.connect() as connection:
            state = capture_state(connection)
        console.print(f"the analytics capture reads the bot's changes from: {state.mode}")
        for problem in state.problems:
            err_console.print(f"[yellow]![/] {problem}")
        if state.mode == "triggers" and state.wal_refused is None:
            console.print(
                "the server allows reading them from the WAL: `coursedesk db capture wal` "
                "takes coursedesk's triggers off the bot's tables"
            )
        elif state.mode == "triggers":
            console.print(f"reading them from the WAL is not possible here: {state.wal_refused}")
        return
    started = perf_counter()
    if not set_capture(engine, mode.value):
        console.print(f"the analytics capture already reads from {mode.value}")
        return
    console.print(
        f"[green]✓[/] the analytics capture reads from {mode.value}; summaries rebuilt in "
        f"{perf_counter() - started:.1f} s"
    )


@app.command()
def setup(users: UsersOption = DEFAULT_USERS, seed_value: SeedOption = 1) -> None:
    """Upgrade to head, then on a new database (no rows in the bot's tables) read the
    bot's changes from the WAL where the server allows it and seed; then verify."""
    status = migrations.upgrade(tool_engine())
    console.print(f"[green]✓[/] migrated to {status.head}")
    with tool_engine().connect() as connection:
        empty = source_tables_empty(connection)
    if empty:
        capture_from_the_wal(tool_engine())
        plan = GenerationPlan(users=users, seed=seed_value, anchor=default_anchor())
        _print_seed(_run_seed(plan, append=False, quiet=False))
    else:
        console.print("source tables already hold rows: seeding skipped")
    _report_and_exit(verify(tool_engine()), as_json=False)


def _print_table(info: TableInfo) -> None:
    rows = "?" if info.row_estimate is None else f"~{info.row_estimate:,} rows"
    table = Table(title=f"[bold]{info.name}[/] ({info.kind}, {rows})", title_justify="left")
    table.add_column("column")
    table.add_column("type")
    table.add_column("null")
    table.add_column("default", overflow="fold")
    for column in info.columns:
        key = " [dim](pk)[/]" if column.name in info.primary_key else ""
        table.add_row(
            column.name + key, column.type, "yes" if column.nullable else "", column.default or ""
        )
    console.print(table)
    for foreign_key in info.foreign_keys:
        console.print(
            f"  foreign key {foreign_key.name}: ({', '.join(foreign_key.columns)}) → "
            f"{foreign_key.referred_table} ({', '.join(foreign_key.referred_columns)}) "
            f"on delete {foreign_key.on_delete.lower()}",
            highlight=False,
        )
    for index in info.indexes:
        console.print(f"  index {index.definition}", highlight=False, markup=False)


@app.command()
def schema(as_json: JsonOption = False) -> None:
    """The schema as GET /api/db-schema answers it: tables, keys, indexes, row estimates."""
    with tool_engine().connect() as connection:
        info: SchemaInfo = read_schema(connection)
    if as_json:
        print_json(info.model_dump(mode="json"))
        return
    for table in info.tables:
        _print_table(table)
