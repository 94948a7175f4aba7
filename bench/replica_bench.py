"""Reads from a real hot standby: what the lag probe costs a request, and the dashboard
from the replica against the primary.

    python bench/replica_bench.py [--users 100000] [--repeat 200]

Starts a primary and a hot standby of its own from the embedded server's binaries
(`initdb`, `pg_basebackup -R`; coursedesk/db/local_servers.py), migrates and seeds the
primary with `--users` users, waits for the standby to replay it all, and serves the
real app in a process of its own (cache off) twice: with DATABASE_URL alone, then with
DATABASE_REPLICA_URL too. Each time it times `/api/me` (no figure read: what routing
adds to any request) and every dashboard route, the routes taking turns, and reads
`/api/health` to show where reads went. Last, it times the probe itself, which runs once
a second per process in the background rather than in any request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import time

import httpx
import psycopg
from analytics_bench import _admin_token, console, look_up, served_app, time_routes, vacuum
from analytics_probes import dashboard_probes
from bench_support import migrate, seed
from rich.table import Table

from coursedesk.config import load_settings
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.engine import create_app_engine
from coursedesk.db.local_servers import (
    embedded_binaries,
    scratch_root,
    start_primary,
    start_standby,
)
from coursedesk.db.replica import ReplicaRouter
from coursedesk.db.seed import default_anchor


def wait_replayed(primary_url: str, standby_url: str, limit: float = 600) -> float:
    """Seconds until the standby has replayed all the primary has flushed."""
    started = time.monotonic()
    with psycopg.connect(primary_url, autocommit=True) as primary:
        row = primary.execute("SELECT pg_current_wal_flush_lsn()").fetchone()
    assert row is not None
    target = row[0]
    with psycopg.connect(standby_url, autocommit=True) as standby:
        while True:
            done = standby.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(target),)
            ).fetchone()
            if done and done[0]:
                return time.monotonic() - started
            if time.monotonic() - started > limit:
                raise RuntimeError("the standby did not catch up")
            time.sleep(0.2)


async def probe_cost(primary_url: str, standby_url: str, probes: int = 200) -> list[float]:
    """Seconds per probe, measured as the background task runs it."""
    settings = load_settings(database_url=primary_url)
    primary = create_app_engine(primary_url, settings)
    standby = create_app_engine(standby_url, settings, read_only=True)
    router = ReplicaRouter(primary, standby, settings.replica_max_lag_seconds)
    try:
        seconds = []
        for _ in range(probes):
            started = time.perf_counter()
            await router.probe()
            seconds.append(time.perf_counter() - started)
        return seconds
    finally:
        await primary.dispose()
        await standby.dispose()


def ms(values: list[float], share: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per route")
    arguments = parser.parse_args()
    load_before = os.getloadavg()
    root = scratch_root()
    primary = start_primary(embedded_binaries(), root)
    standby = None
    try:
        migrate(primary.url)
        console.print(f"seeding {arguments.users:,} users on the primary …")
        seed(primary.url, GenerationPlan(users=arguments.users, seed=1, anchor=default_anchor()))
        vacuum(primary.url)
        standby = start_standby(primary, root)
        console.print(f"standby replayed it all in {wait_replayed(primary.url, standby.url):.1f} s")
        token = asyncio.run(_admin_token(primary.url))
        timezone = load_settings().app_timezone
        results: dict[str, dict[str, list[float]]] = {}
        routed: dict[str, str] = {}
        for name, replica_url in (("primary", None), ("replica", standby.url)):
            with (
                served_app(primary.url, replica_url) as base_url,
                httpx.Client(
                    base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=600
                ) as client,
            ):
                probes = dashboard_probes(look_up(client, primary.url, timezone))
                results[name] = time_routes(client, probes, arguments.repeat)
                replica = client.get("/api/health").json().get("replica")
                routed[name] = "primary (no replica)" if replica is None else replica["reads"]
        probe_seconds = asyncio.run(probe_cost(primary.url, standby.url))
    finally:
        for server in (standby, primary):
            if server is not None:
                server.stop("fast")
        shutil.rmtree(root, ignore_errors=True)

    table = Table(title=f"dashboard routes, {arguments.users:,} users, p50 / p95 ms")
    for column in ("route", "primary alone", "with the replica", "replica / primary p50"):
        table.add_column(column, justify="left" if column == "route" else "right")
    for path, primary_samples in results["primary"].items():
        replica_samples = results["replica"][path]
        ratio = statistics.median(replica_samples) / statistics.median(primary_samples)
        table.add_row(
            path,
            f"{ms(primary_samples, 0.5)} / {ms(primary_samples, 0.95)}",
            f"{ms(replica_samples, 0.5)} / {ms(replica_samples, 0.95)}",
            f"{ratio:.2f}",
        )
    console.print(table)
    console.print(f"reads went to: {routed}")
    console.print(
        f"one probe (primary's WAL position, then the standby's): p50 {ms(probe_seconds, 0.5)} "
        f"ms, p95 {ms(probe_seconds, 0.95)} ms, once a second per process, in no request"
    )
    console.print(
        f"machine: {os.cpu_count()} cores; load average {load_before} before, "
        f"{os.getloadavg()} after; {arguments.repeat} requests per route"
    )


if __name__ == "__main__":
    main()
