"""The bot's writes: what coursedesk's change capture and fold cost the bot, and how far
behind the summaries fall.

    python bench/bot_writes.py [--users 10000] [--seconds 5] [--database-url URL]
                               [--capture triggers|wal]

With `--capture triggers` (the default) coursedesk's row-level capture triggers on
bookings, events and free_lesson_registrations append each changed row, as jsonb, to
analytics_changes; with `--capture wal` no trigger runs and each batch of the fold reads
the same changes from a logical replication slot (analytics/wal_capture.py; the server
needs wal_level = logical). A folder (analytics/folding.py) turns them into the summaries
every second. On a database migrated to head and seeded with `--users` users, with a
real `Folder` running in a process of its own (as `serve` and `worker` run one) except
where said:

1. one-row autocommit `INSERT INTO events` from 8, 16 and 32 sessions, into events
   (capture installed) and into events_plain (`LIKE events INCLUDING ALL`: the same
   indexes, no trigger, not published), `--seconds` per pass, two passes each in the
   order installed, plain, plain, installed (so a drift in the machine's speed favours
   neither); every pass starts after a CHECKPOINT with everything folded, and no folder
   runs during a pass: what the capture costs a bot statement. Then the same
   insert-and-commit run inside the server alone (a DO block, no client), to show the
   capture's own cost per statement;
2. mixed bot transactions (booking + event, event + booking in one shared course and
   stream, confirming a pending booking) from 16 sessions, counting deadlocks and errors,
   and the two-session interleaving that deadlocked under the old counter triggers;
3. an open transaction holding one captured insert for 5 s while another session
   inserts: whether it waits, and whether the folder folds past the open transaction;
1c. section 1 again with a folder running around each installed pass: a plain pass
   runs with no process of coursedesk's at all, as the bot would without it, and the
   folder's own CPU (with `--capture wal`, its decoding too) counts against coursedesk;
4. the fold: rows per second `fold_pending()` folds from a backlog written with the
   folder stopped (`--fold-rows` rows mixed as `db seed` mixes them, then bookings
   alone, then confirmations), then the lag (age of the oldest unfolded change) under a
   paced load of `--rate` statements a second for 2 × `--seconds`, and last
   `find_drift()`, which must find every summary exact.

The bot's sessions are psycopg 3 AsyncConnections on one uvloop event loop in this
process; on two cores that client shares the CPU with the server, and its CPU share is
printed. Without --database-url the database is a scratch one on DATABASE_URL's server
(or an embedded PostgreSQL in a temporary directory), dropped at the end; with it, the
database is migrated (and seeded if empty) and keeps the rows written, events_plain
apart. Exits 1 when a correctness check fails (errors, deadlocks, a wait that hit its
timeout, a folder error, drift); a speed goal missed is printed as "not met".

Section 1 is in bot_inserts.py, 2 and 3 in bot_transactions.py, 4 in bot_fold.py, and
what they share (the bot's statements and sessions, the folder process) in
bot_workload.py; this script sets up the database, runs them and prints the goals.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import uvloop
from bench_support import migrate, scratch_database, seed, server_admin_url
from bot_fold import check_drift, fold_throughput, lag_under_load, report_lag
from bot_inserts import measure_inserts, measure_server_side, report_inserts
from bot_transactions import mixed_transactions, open_transaction, report_mixed, two_sessions
from bot_workload import Data, console, folded_rows, folder_running, look_up, query, run_folder
from rich.table import Table
from sqlalchemy.engine import make_url

from coursedesk.analytics.folding import set_capture
from coursedesk.config import load_settings
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.embedded import ensure_database, server_url
from coursedesk.db.engine import create_tool_engine, libpq_url
from coursedesk.db.seed import default_anchor, source_tables_empty

# -- the run -------------------------------------------------------------------------------


@contextmanager
def bench_database(arguments: argparse.Namespace) -> Iterator[str]:
    """The database given (migrated, seeded when empty, kept), or a scratch one seeded now
    and dropped afterwards."""
    plan = GenerationPlan(users=arguments.users, seed=1, anchor=default_anchor())
    if arguments.database_url:
        url = libpq_url(arguments.database_url)
        ensure_database(server_url(url, "postgres"), make_url(url).database or "")
        migrate(url)
        engine = create_tool_engine(url, load_settings(database_url=url))
        try:
            with engine.connect() as connection:
                empty = source_tables_empty(connection)
        finally:
            engine.dispose()
        if empty:
            result = seed(url, plan)
            console.print(f"seeded {result.total_rows:,} rows in {result.seconds:.1f} s")
        else:
            console.print("reusing the rows already in the database (--users not applied)")
        try:
            yield url
        finally:
            query(url, "DROP TABLE IF EXISTS events_plain")
        return
    with scratch_database(server_admin_url(), "bot_writes_bench") as url:
        result = seed(url, plan)
        console.print(f"seeded {result.total_rows:,} rows in {result.seconds:.1f} s")
        yield url


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def describe_server(url: str) -> str:
    """The server's version and the settings that bear on commit-heavy writes."""
    names = (
        "server_version",
        "wal_level",
        "fsync",
        "synchronous_commit",
        "shared_buffers",
        "max_wal_size",
    )
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT array_agg(current_setting(name) ORDER BY place) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS names(name, place)",
            (list(names),),
        ).fetchone()
    values = dict(zip(names, row[0] if row else [], strict=False))
    settings = ", ".join(f"{name} {values.get(name)}" for name in names[1:])
    return f"PostgreSQL {values.get('server_version')} ({settings})"


def run(arguments: argparse.Namespace) -> Data:
    seconds = arguments.seconds
    with bench_database(arguments) as url:
        engine = create_tool_engine(url, load_settings(database_url=url))
        try:
            set_capture(engine, arguments.capture)
        finally:
            engine.dispose()
        data = look_up(url)
        console.print(
            f"{describe_server(url)}; {len(data.users):,} users with a summary; "
            f"shared stream {data.streams[0][0]}/{data.streams[0][1]}"
        )
        if not arguments.fold_only:
            measure_bot_statements(data, url, seconds)
        fold_throughput(data, arguments.fold_rows)
        with folder_running(data):
            lag = uvloop.run(lag_under_load(data, arguments.rate, 2 * seconds))
            report_lag(data, lag, arguments.rate)
        check_drift(data)
    return data


def measure_bot_statements(data: Data, url: str, seconds: float) -> None:
    """Section 1 with no folder during the passes, 1b to 3 with one running throughout,
    then 1c with one running around the installed passes."""
    results = uvloop.run(measure_inserts(data, seconds))
    report_inserts(data, results, seconds, whole=False)
    before = folded_rows(url)
    with folder_running(data):
        uvloop.run(measure_server_side(data))
        console.print(f"load average now {load_average()}")
        tally = uvloop.run(mixed_transactions(data, seconds))
        report_mixed(data, tally, seconds)
        uvloop.run(two_sessions(data))
        uvloop.run(open_transaction(data))
        console.print(
            f"the folder folded {folded_rows(url) - before:,} change rows during 1–3; "
            f"load average now {load_average()}"
        )
    results = uvloop.run(measure_inserts(data, seconds, lambda: folder_running(data)))
    report_inserts(data, results, seconds, whole=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each pass")
    parser.add_argument("--rate", type=float, default=2_000, help="statements/s in 4b")
    parser.add_argument("--fold-rows", type=int, default=200_000, help="backlog size in 4a")
    parser.add_argument("--database-url", help="use (and keep) this database")
    parser.add_argument("--fold-only", action="store_true", help="section 4 and drift alone")
    parser.add_argument(
        "--capture",
        choices=("triggers", "wal"),
        default="triggers",
        help="how the capture reads the bot's changes (`coursedesk db capture`)",
    )
    arguments = parser.parse_args()
    if arguments.fold:
        run_folder(arguments.fold)
        return

    load_before = load_average()
    console.print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}; load average {load_before}; "
        f"--users {arguments.users:,} --seconds {arguments.seconds:g} --rate {arguments.rate:g} "
        f"--fold-rows {arguments.fold_rows:,} --capture {arguments.capture}"
    )
    data = run(arguments)
    table = Table(title="goals")
    for column in ("goal", "measured", ""):
        table.add_column(column)
    for row in data.goals:
        table.add_row(*row)
    console.print(table)
    console.print(f"load average before {load_before}, after {load_average()}")
    if data.failures:
        console.print("[bold red]correctness checks failed:[/]")
        for failure in data.failures:
            console.print(f"  {failure}")
        sys.exit(1)
    console.print("correctness checks passed: no deadlock, no error, no wait timed out, no drift")


if __name__ == "__main__":
    main()
