"""Section 1 of bot_writes.py: one-row inserts, capture installed against plain, and in-server."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from bot_workload import (
    EVENT_TYPES,
    NO_TIMEOUT,
    Data,
    connect,
    console,
    event_details,
    met,
    ms,
    percentile,
    wait_drained,
)
from psycopg import sql
from psycopg.types.json import Jsonb
from rich.table import Table

from coursedesk.analytics.folding import fold_pending
from coursedesk.config import load_settings
from coursedesk.db.engine import create_tool_engine

SESSION_COUNTS = (8, 16, 32)
INSERT_RATIO_GOAL = 0.9
# The bot's statement into a table named at run time (events or the plain copy).
INSERT_INTO: LiteralString = "INSERT INTO {} (user_id, event_type, details) VALUES (%s, %s, %s)"


@dataclass
class Pass:
    table: str
    sessions: int
    inserts: int
    seconds: float
    latencies: list[float]
    client_cpu: float  # this process's CPU seconds per wall second

    @property
    def rate(self) -> float:
        return self.inserts / self.seconds


async def insert_pass(
    connections: Sequence[psycopg.AsyncConnection[Any]],
    table: str,
    seconds: float,
    users: list[int],
) -> Pass:
    statement = sql.SQL(INSERT_INTO).format(sql.Identifier(table))
    started = time.perf_counter()
    deadline = started + seconds

    async def session(connection: psycopg.AsyncConnection[Any], number: int) -> list[float]:
        rng = random.Random(f"{table}:{number}:{started}")
        latencies = []
        while (before := time.perf_counter()) < deadline:
            event_type = rng.choice(EVENT_TYPES)
            await connection.execute(
                statement, (rng.choice(users), event_type, Jsonb(event_details(rng, event_type)))
            )
            latencies.append(time.perf_counter() - before)
        return latencies

    cpu = time.process_time()
    results = await asyncio.gather(*(session(c, n) for n, c in enumerate(connections)))
    elapsed = time.perf_counter() - started
    latencies = [latency for result in results for latency in result]
    return Pass(
        table,
        len(connections),
        len(latencies),
        elapsed,
        latencies,
        (time.process_time() - cpu) / elapsed,
    )


async def checkpoint(connection: psycopg.AsyncConnection[Any]) -> None:
    """A CHECKPOINT before each pass, so no pass pays for another's dirty pages or
    full-page images; skipped where the role may not."""
    with suppress(psycopg.errors.InsufficientPrivilege):
        await connection.execute("CHECKPOINT")


async def measure_inserts(
    data: Data,
    seconds: float,
    folder_per_pass: Callable[[], AbstractContextManager[None]] | None = None,
) -> list[tuple[Pass, Pass, Pass, Pass]]:
    """Installed and plain passes, alternating, each after a CHECKPOINT with everything
    folded. Without `folder_per_pass` no folder runs during any pass (what is captured is
    folded between passes): the two tables differ only in what the capture costs a bot
    statement. With it, a folder runs around each installed pass, and none around a plain
    one, which so runs as the bot would without coursedesk: the folder's own CPU (and
    with the capture reading the WAL, its decoding) counts against coursedesk."""
    engine = create_tool_engine(data.url, load_settings(database_url=data.url))
    async with await connect(data.url, NO_TIMEOUT) as admin:
        await admin.execute("DROP TABLE IF EXISTS events_plain")
        await admin.execute("CREATE TABLE events_plain (LIKE events INCLUDING ALL)")
        connections = [await connect(data.url) for _ in range(max(SESSION_COUNTS))]
        drains: list[float] = []

        async def run_pass(table: str, count: int, length: float) -> Pass:
            folds = folder_per_pass is not None and table == "events"
            with folder_per_pass() if folder_per_pass and folds else nullcontext():
                if folds:  # the folder first catches up on the passes before
                    drains.append(await wait_drained(admin))
                else:
                    await asyncio.to_thread(fold_pending, engine)
                await checkpoint(admin)
                done = await insert_pass(connections[:count], table, length, data.users)
                if folds:
                    drains.append(await wait_drained(admin))
            return done

        try:
            # Warm-up: connections, prepared statements, the folder's first batch.
            for table in ("events", "events_plain"):
                await run_pass(table, max(SESSION_COUNTS), 1.0)
            results = []
            for count in SESSION_COUNTS:
                passes = [
                    await run_pass(table, count, seconds)
                    for table in ("events", "events_plain", "events_plain", "events")
                ]
                results.append((passes[0], passes[1], passes[2], passes[3]))
            await asyncio.to_thread(fold_pending, engine)
        finally:
            for connection in connections:
                await connection.close()
            engine.dispose()
    if drains:
        console.print(f"(the folder had folded each installed pass {max(drains):.2f} s after it)")
    return results


def report_inserts(
    data: Data, results: list[tuple[Pass, Pass, Pass, Pass]], seconds: float, *, whole: bool
) -> None:
    """Section 1 (`whole` False: the goal) or 1c (True: reported beside it)."""
    title = (
        "1c. the same with a folder running around the installed passes"
        if whole
        else "1. one-row autocommit INSERT INTO events, no folder during the passes"
    )
    table = Table(title=f"{title}, two {seconds:g} s passes each")
    for column in (
        "sessions",
        "installed ins/s",
        "plain ins/s",
        "installed / plain",
        f"goal ≥ {INSERT_RATIO_GOAL}",
        "installed p50 / p99 ms",
        "plain p50 / p99 ms",
        "client CPU",
    ):
        table.add_column(column, justify="right")
    passes = []
    for first, plain_1, plain_2, second in results:
        installed = (first.inserts + second.inserts) / (first.seconds + second.seconds)
        plain = (plain_1.inserts + plain_2.inserts) / (plain_1.seconds + plain_2.seconds)
        ratio = installed / plain
        installed_latencies = first.latencies + second.latencies
        plain_latencies = plain_1.latencies + plain_2.latencies
        cpu = max(p.client_cpu for p in (first, plain_1, plain_2, second))
        table.add_row(
            str(first.sessions),
            f"{installed:,.0f}",
            f"{plain:,.0f}",
            f"{ratio:.3f}",
            met(ratio >= INSERT_RATIO_GOAL),
            f"{ms(percentile(installed_latencies, 0.5))} / "
            f"{ms(percentile(installed_latencies, 0.99))}",
            f"{ms(percentile(plain_latencies, 0.5))} / {ms(percentile(plain_latencies, 0.99))}",
            f"≤ {cpu:.0%} of a core",
        )
        passes.append(
            f"{first.sessions} sessions "
            + " / ".join(f"{p.rate:,.0f}" for p in (first, plain_1, plain_2, second))
        )
        data.goal(
            f"inserts, {first.sessions} sessions: installed ≥ {INSERT_RATIO_GOAL}× plain"
            + (" (1c: the folder's CPU counted)" if whole else ""),
            f"{ratio:.3f}× ({installed:,.0f} vs {plain:,.0f}/s)",
            ratio >= INSERT_RATIO_GOAL,
        )
    console.print(table)
    console.print(
        "inserts/s per pass, in the order run (installed, plain, plain, installed): "
        + "; ".join(passes)
    )
    console.print(
        "A folder (analytics/folding.py's Folder, in a process of its own) ran during each "
        "installed pass and folded it; none ran during a plain pass."
        if whole
        else "No folder ran during a pass; what each installed pass captured was folded "
        "before the next."
    )


SERVER_LOOP: LiteralString = """
DO $$
BEGIN
    FOR i IN 1..{count} LOOP
        INSERT INTO {table} (user_id, event_type, details)
        VALUES (9100000000 + i % 5000, 'button_click', '{{"button": "faq", "chat": 7}}');
        COMMIT;
    END LOOP;
END
$$
"""


async def measure_server_side(data: Data, count: int = 20_000) -> None:
    """The same insert-and-commit run by the server alone, without a client, one session,
    synchronous_commit off: the capture's CPU cost per statement, on its own."""
    timings: dict[str, list[float]] = {"events": [], "events_plain": []}
    async with await connect(data.url, f"{NO_TIMEOUT} -c synchronous_commit=off") as connection:
        for table in ("events", "events_plain", "events_plain", "events"):
            await checkpoint(connection)
            loop = SERVER_LOOP.format(count=count, table=table)
            started = time.perf_counter()
            await connection.execute(loop.encode())
            timings[table].append(time.perf_counter() - started)
        await connection.execute("DROP TABLE events_plain")
        await wait_drained(connection)
    table = Table(title=f"1b. the server alone: {count:,} INSERT + COMMIT in a DO block, 1 session")
    for column in ("table", "µs per insert + commit (run 1, 2)", "inserts/s"):
        table.add_column(column, justify="right")
    per = {name: sum(t) / len(t) / count for name, t in timings.items()}
    for name, runs in timings.items():
        table.add_row(
            "events (capture installed)" if name == "events" else "events_plain",
            f"{per[name] * 1e6:.1f} ({', '.join(f'{t / count * 1e6:.1f}' for t in runs)})",
            f"{1 / per[name]:,.0f}",
        )
    console.print(table)
    console.print(
        f"the capture trigger's own cost: {(per['events'] - per['events_plain']) * 1e6:.1f} µs "
        f"per statement; the server alone inserts into events at "
        f"{per['events_plain'] / per['events']:.3f}× the plain rate "
        "(synchronous_commit off, so no commit waits for the disk)"
    )
