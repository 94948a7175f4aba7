"""Sections 2 and 3 of bot_writes.py: mixed bot transactions, and an open one held meanwhile."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from bot_workload import (
    CONFIRM_BOOKING,
    NEW_USERS,
    Data,
    connect,
    console,
    insert_booking,
    insert_event,
    ms,
    percentile,
    server_time,
    unfolded_since,
    wait_drained,
)
from rich.table import Table

MIXED_SESSIONS = 16
OPEN_SECONDS = 5.0
B_INSERTS = 100


# -- 2. mixed bot transactions -------------------------------------------------------------


@dataclass
class Tally:
    commits: Counter[str] = field(default_factory=Counter)
    deadlocks: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)


async def bot_session(
    connection: psycopg.AsyncConnection[Any],
    number: int,
    deadline: float,
    data: Data,
    tally: Tally,
) -> None:
    """Transactions of the bot for users of this session's own: (a) a booking then an
    event, (b) an event then a booking in the course and stream every session books, (c)
    a pending booking of its own confirmed, then an event."""
    rng = random.Random(number)
    shared = data.streams[0]
    pending: list[tuple[int, int]] = []
    next_user = NEW_USERS + 100_000_000 + number * 1_000_000
    while time.perf_counter() < deadline:
        kind = rng.choices("abc", weights=(4, 4, 3))[0] if pending else rng.choice("ab")
        taken = pending.pop(rng.randrange(len(pending))) if kind == "c" else None
        started = time.perf_counter()
        try:
            async with connection.transaction():
                if kind == "a":
                    user = next_user
                    booking = await insert_booking(connection, data, user, rng.choice(data.streams))
                    await insert_event(connection, user, "booking_created", rng)
                elif kind == "b":
                    user = next_user
                    await insert_event(connection, user, "course_view", rng)
                    booking = await insert_booking(connection, data, user, shared, ("FRIEND10", 10))
                else:
                    assert taken is not None
                    booking, user = taken
                    await connection.execute(CONFIRM_BOOKING, (booking,))
                    await insert_event(connection, user, "button_click", rng)
        except psycopg.Error as exc:
            if exc.sqlstate == "40P01":
                tally.deadlocks += 1
            else:
                tally.errors[f"{exc.sqlstate}: {str(exc).splitlines()[0]}"] += 1
            if taken is not None:
                pending.append(taken)
            continue
        tally.commits[kind] += 1
        tally.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        if kind != "c":
            next_user += 1
            pending.append((booking, user))


async def mixed_transactions(data: Data, seconds: float) -> Tally:
    tally = Tally()
    connections = [await connect(data.url) for _ in range(MIXED_SESSIONS)]
    try:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(bot_session(c, n, deadline, data, tally) for n, c in enumerate(connections))
        )
    finally:
        for connection in connections:
            await connection.close()
    return tally


def report_mixed(data: Data, tally: Tally, seconds: float) -> None:
    names = {
        "a": "(a) booking, then event",
        "b": "(b) event, then booking in the shared course and stream",
        "c": "(c) pending booking confirmed, then event",
    }
    table = Table(title=f"2. mixed bot transactions, {MIXED_SESSIONS} sessions, {seconds:g} s")
    for column in ("transaction", "commits", "commits/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "transaction" else "right")
    for kind, name in names.items():
        latencies = tally.latencies.get(kind, [])
        table.add_row(
            name,
            f"{tally.commits[kind]:,}",
            f"{tally.commits[kind] / seconds:,.0f}",
            ms(percentile(latencies, 0.5)),
            ms(percentile(latencies, 0.99)),
            ms(max(latencies, default=float("nan"))),
        )
    console.print(table)
    errors = sum(tally.errors.values())
    console.print(
        f"commits {sum(tally.commits.values()):,}, deadlocks (40P01) {tally.deadlocks}, "
        f"other errors {errors}"
        + "".join(f"\n  {count} × {message}" for message, count in tally.errors.items())
    )
    data.goal(
        "mixed transactions: 0 deadlocks, 0 errors",
        f"{tally.deadlocks} deadlocks, {errors} errors in {sum(tally.commits.values()):,} commits",
        tally.deadlocks == 0 and errors == 0,
    )
    if tally.deadlocks or errors:
        data.fail(f"mixed transactions: {tally.deadlocks} deadlocks, {errors} other errors")


async def timed(label: str, work: Awaitable[Any], steps: list[tuple[str, float, str]]) -> None:
    started = time.perf_counter()
    try:
        await work
    except psycopg.Error as exc:
        steps.append((label, time.perf_counter() - started, f"{exc.sqlstate}: {exc}".strip()))
        raise
    steps.append((label, time.perf_counter() - started, "ok"))


async def two_sessions(data: Data) -> None:
    """The interleaving that deadlocked under the counter triggers: S1 writes for a new
    user U1, S2 confirms U2's pending booking, S1 books U1 into U2's course and stream,
    S2 logs an event for U2. Steps 3 and 4 are issued without waiting on each other, as
    two bot processes would; a statement blocked for more than a second shows as such."""
    rng = random.Random(2)
    u1, u2 = NEW_USERS + 200_000_001, NEW_USERS + 200_000_002
    stream = data.streams[0]
    steps: list[tuple[str, float, str]] = []
    async with await connect(data.url) as s1, await connect(data.url) as s2:
        u2_booking = await insert_booking(s2, data, u2, stream)
        await s1.execute("BEGIN")
        await s2.execute("BEGIN")
        try:
            await timed("S1: INSERT event for U1", insert_event(s1, u1, "start", rng), steps)
            await timed(
                "S2: UPDATE U2's booking to confirmed",
                s2.execute(CONFIRM_BOOKING, (u2_booking,)),
                steps,
            )
            third = asyncio.create_task(
                timed(
                    f"S1: INSERT booking for U1 in {stream[0]}/{stream[1]}",
                    insert_booking(s1, data, u1, stream),
                    steps,
                )
            )
            await asyncio.wait([third], timeout=1.0)
            fourth = asyncio.create_task(
                timed("S2: INSERT event for U2", insert_event(s2, u2, "button_click", rng), steps)
            )
            outcomes = await asyncio.gather(third, fourth, return_exceptions=True)
            for label, session, outcome in (("S1", s1, outcomes[0]), ("S2", s2, outcomes[1])):
                await timed(
                    f"{label}: {'COMMIT' if outcome is None else 'ROLLBACK'}",
                    session.execute("COMMIT" if outcome is None else "ROLLBACK"),
                    steps,
                )
        except psycopg.Error:
            await s1.execute("ROLLBACK")
            await s2.execute("ROLLBACK")
    table = Table(title="2b. two sessions interleaved (the old triggers' deadlock)")
    for column in ("step", "ms", "outcome"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for label, seconds, outcome in steps:
        table.add_row(label, ms(seconds), outcome)
    console.print(table)
    errors = [step for step in steps if step[2] != "ok"]
    slowest = max(seconds for _, seconds, _ in steps)
    data.goal(
        "two-session interleaving: no error, no wait",
        f"{len(errors)} errors, slowest statement {ms(slowest)} ms",
        not errors and slowest < 1.0,
    )
    if errors:
        data.fail(f"two-session interleaving: {errors}")


# -- 3. an open transaction ----------------------------------------------------------------


async def open_transaction(data: Data) -> None:
    """Session A inserts one event and keeps its transaction open for OPEN_SECONDS; B
    inserts B_INSERTS events for other users meanwhile, one every 20 ms, each under a
    2 s statement_timeout; then, A still open, the folder is given until A commits to
    fold B's rows past A's uncommitted one."""
    rng = random.Random(3)
    latencies: list[float] = []
    errors: list[str] = []
    folded_after: float | None = None
    async with (
        await connect(data.url) as a,
        await connect(data.url, "-c statement_timeout=2s") as b,
        await connect(data.url) as watcher,
    ):
        await wait_drained(watcher)
        await a.execute("BEGIN")
        await insert_event(a, NEW_USERS + 300_000_000, "start", rng)
        opened = time.perf_counter()
        for _ in range(B_INSERTS):
            started = time.perf_counter()
            try:
                await insert_event(b, rng.choice(data.users), "button_click", rng)
            except psycopg.Error as exc:
                errors.append(f"{exc.sqlstate}: {str(exc).splitlines()[0]}")
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)
        last_insert = time.perf_counter()
        since = await server_time(watcher)
        while time.perf_counter() - opened < OPEN_SECONDS:
            if folded_after is None and not await unfolded_since(watcher, since):
                folded_after = time.perf_counter() - last_insert
            await asyncio.sleep(0.05)
        await a.execute("COMMIT")
        await wait_drained(watcher)
    table = Table(
        title=f"3. A holds one captured insert open {OPEN_SECONDS:g} s; "
        f"B inserts {B_INSERTS} events meanwhile"
    )
    for column in ("B statements", "errors", "p50 ms", "p99 ms", "max ms", "B's rows folded"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(latencies)),
        str(len(errors)),
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.99)),
        ms(max(latencies)),
        "not while A was open"
        if folded_after is None
        else f"{folded_after:.2f} s after B's last, A still open",
    )
    console.print(table)
    slowest = max(latencies)
    data.goal(
        "no wait behind an open transaction",
        f"B p50 {ms(percentile(latencies, 0.5))} ms, max {ms(slowest)} ms, {len(errors)} errors",
        not errors and slowest < 0.1,
    )
    if errors:
        data.fail(f"B waited behind A's open transaction: {errors[:3]}")
