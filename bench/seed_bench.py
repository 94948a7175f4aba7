"""Seeding speed: a fresh database seeded at a chosen scale, timed per table and phase.

    python bench/seed_bench.py --users 100000
    python bench/seed_bench.py --users 100000 --summaries triggers
    python bench/seed_bench.py --users 100000 --revision 0001_initial

With DATABASE_URL the database is created on that server (and dropped afterwards);
without it an embedded PostgreSQL is started in a temporary directory. By default the
summaries are made as `db seed` makes them: the source tables' INSERT triggers are off
for the load and analytics_rebuild() runs once after it. `--summaries triggers` leaves
the triggers on instead, which is what the same rows written by the bot would cost.
"""

from __future__ import annotations

import argparse

from bench_support import scratch_database, seed, server_admin_url
from rich.console import Console
from rich.table import Table

from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.seed import (
    SUMMARY_REBUILD_SQL,
    LoadHooks,
    SeedResult,
    default_anchor,
    deferred_insert_triggers,
)

console = Console()


def _report(result: SeedResult) -> None:
    table = Table(title=f"seeding {result.users:,} users")
    for column in ("table", "rows", "COPY s", "rows/s"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, rows in result.rows.items():
        seconds = result.copy_seconds.get(name)
        rate = f"{rows / seconds:,.0f}" if seconds else ""
        table.add_row(name, f"{rows:,}", f"{seconds:.2f}" if seconds else "", rate)
    table.add_row(
        "[bold]overall[/]",
        f"[bold]{result.total_rows:,}[/]",
        f"[bold]{result.seconds:.2f}[/]",
        f"[bold]{result.rows_per_second:,.0f}[/]",
    )
    console.print(table)
    phases = ", ".join(f"{phase} {value:.2f} s" for phase, value in result.phase_seconds.items())
    console.print(f"phases: {phases}", highlight=False)
    load = result.phase_seconds.get("load")
    if load:
        console.print(
            f"generate + COPY alone: {result.total_rows / load:,.0f} rows/s", highlight=False
        )
    console.print("(the events COPY streams while the rows are generated)", highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--summaries",
        choices=("rebuild", "triggers"),
        default="rebuild",
        help="one rebuild after the load (as db seed does) or the triggers row by row",
    )
    parser.add_argument(
        "--revision", default="head", help="migrate to this revision first (summaries: head only)"
    )
    arguments = parser.parse_args()

    hooks = LoadHooks()
    if arguments.summaries == "rebuild" and arguments.revision == "head":
        hooks = deferred_insert_triggers(SUMMARY_REBUILD_SQL)
    plan = GenerationPlan(users=arguments.users, seed=arguments.seed, anchor=default_anchor())
    with scratch_database(server_admin_url(), "coursedesk_bench", arguments.revision) as url:
        _report(seed(url, plan, hooks))


if __name__ == "__main__":
    main()
