"""`coursedesk db …`: migrations and data tooling."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from coursedesk.cli.common import console, fail, print_json, tool_engine
from coursedesk.db import migrations

app = typer.Typer(
    help="Migrations, seeding, verification and schema inspection.", no_args_is_help=True
)


def _print_status(status: migrations.MigrationStatus) -> None:
    table = Table(show_header=False, box=None)
    current = status.current or "(none)"
    pending = ", ".join(status.pending) or "(none)"
    if not status.current_known:
        current, pending = f"{status.current} (unknown to this code)", "(unknown)"
    table.add_row("current", current)
    table.add_row("head", status.head)
    table.add_row("pending", pending)
    console.print(table)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    _print_status(migrations.upgrade(tool_engine(), revision))


# A relative revision such as -1 is an argument, not an unknown option.
@app.command(context_settings={"ignore_unknown_options": True})
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or 0002")],
    force: Annotated[
        bool, typer.Option("--force", help="Allow going to base, which drops everything")
    ] = False,
) -> None:
    """Roll migrations back to REVISION (to base, dropping every table, only with --force)."""
    _print_status(migrations.downgrade(tool_engine(), revision, to_base=force))


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Current revision, head and pending migrations."""
    current = migrations.status(tool_engine())
    if as_json:
        print_json(current.as_dict())
    else:
        _print_status(current)
    if not current.current_known:
        fail(str(migrations.UnknownRevision(str(current.current))))


@app.command()
def validate() -> None:
    """Fail (exit 1) if an applied migration file was edited after it was applied."""
    problems = migrations.validate(tool_engine())
    if problems:
        for problem in problems:
            console.print(f"[red]✗[/] {problem.revision} ({problem.filename}): {problem.problem}")
        fail(f"{len(problems)} applied migration(s) do not match their checksum")
    console.print("[green]✓[/] every applied migration matches its checksum")


@app.command()
def reset(
    force: Annotated[bool, typer.Option("--force", help="Really drop everything")] = False,
) -> None:
    """Drop and recreate the schema, then migrate to head (refused without --force)."""
    if not force:
        fail("reset drops every table and row; run again with --force to do it", code=2)
    _print_status(migrations.reset(tool_engine()))
