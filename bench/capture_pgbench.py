"""What each capture costs a one-row bot insert, measured by pgbench rather than Python.

    python bench/capture_pgbench.py [--users 10000] [--seconds 5] [--repeat 3]

bot_writes.py's own client takes most of a core at these rates, which hides a cost of a
few µs a statement. Here pgbench (the binaries of the embedded server's package; `-M
prepared -j 2`) inserts one event a statement into events (captured) and into
events_plain (`LIKE events INCLUDING ALL`), at 8, 16 and 32 clients, in the order
captured, plain, plain, captured, `--repeat` times, for each capture in turn
(`coursedesk db capture triggers`, then `wal`). No folder runs during a pass; what a
captured pass captured is folded before the next one. Printed: each pass's tps and the
ratio captured ÷ plain of each round.

The database is a scratch one on DATABASE_URL's server (or on an embedded PostgreSQL in
a temporary directory), seeded with `--users` users and dropped at the end. The capture
from the WAL needs wal_level = logical; where the server lacks it, that half is skipped
with the reason.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path

from bench_support import scratch_database, seed, server_admin_url
from rich.console import Console

from coursedesk.analytics.folding import fold_pending, set_capture
from coursedesk.analytics.wal_capture import CaptureMode
from coursedesk.config import load_settings
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.engine import create_tool_engine
from coursedesk.db.local_servers import embedded_binaries
from coursedesk.db.seed import default_anchor
from coursedesk.errors import Conflict

CLIENTS = (8, 16, 32)
CAPTURES: tuple[CaptureMode, ...] = ("triggers", "wal")
INSERT = (
    "\\set user random(1, {users})\n"
    "INSERT INTO {table} (user_id, event_type, details)"
    " VALUES (:user, 'button_click', '{{\"button\": \"faq\"}}');\n"
)
console = Console()


def pgbench(url: str, script: Path, clients: int, seconds: int) -> float:
    """Transactions a second of one pgbench run."""
    done = subprocess.run(
        [
            str(embedded_binaries() / "pgbench"),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-f",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"tps = ([0-9.]+)", done.stdout)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps: {done.stdout}{done.stderr}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    console.print(
        f"machine: {os.cpu_count()} cores; load average "
        + " ".join(f"{value:.2f}" for value in os.getloadavg())
    )
    with scratch_database(server_admin_url(), "capture_pgbench") as url:
        seed(url, GenerationPlan(users=arguments.users, seed=1, anchor=default_anchor()))
        engine = create_tool_engine(url, load_settings(database_url=url))
        scripts = Path(tempfile.mkdtemp(prefix="capture-pgbench-"))
        scripts.chmod(0o755)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("CREATE TABLE events_plain (LIKE events INCLUDING ALL)")
            for table in ("events", "events_plain"):
                script = scripts / f"{table}.sql"
                script.write_text(INSERT.format(users=arguments.users, table=table))
                script.chmod(0o644)
            for capture in CAPTURES:
                try:
                    set_capture(engine, capture)
                except Conflict as refused:
                    console.print(f"{capture}: skipped, {refused}")
                    continue
                for clients in CLIENTS:
                    ratios = []
                    for _ in range(arguments.repeat):
                        rates = []
                        for table in ("events", "events_plain", "events_plain", "events"):
                            fold_pending(engine)
                            rates.append(
                                pgbench(url, scripts / f"{table}.sql", clients, arguments.seconds)
                            )
                        ratios.append((rates[0] + rates[3]) / (rates[1] + rates[2]))
                        console.print(
                            f"{capture}, {clients} clients: "
                            + " / ".join(f"{rate:,.0f}" for rate in rates)
                            + f" tps (captured, plain, plain, captured): {ratios[-1]:.3f}"
                        )
                    console.print(
                        f"[bold]{capture}, {clients} clients: captured ÷ plain "
                        + ", ".join(f"{ratio:.3f}" for ratio in ratios)
                        + "[/]"
                    )
        finally:
            engine.dispose()
            for child in scripts.iterdir():
                child.unlink()
            scripts.rmdir()


if __name__ == "__main__":
    main()
