"""Broadcast benchmarks: rate kept, pipeline throughput, 1M-recipient audience, worker memory.

    python bench/broadcast_bench.py [--users 1000000] [--rate 50] [--throughput-messages 20000]

Runs against DATABASE_URL's server (or the embedded PostgreSQL) in a database of its own,
dropped at the end, with a stand-in Bot API in its own process on 127.0.0.1 and real
`coursedesk worker` processes, and prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, LiteralString

import psycopg
from bench_support import scratch_database, server_admin_url

from coursedesk.broadcasts.audiences import AllUsers
from coursedesk.broadcasts.service import create_broadcast
from coursedesk.config import load_settings
from coursedesk.db.engine import Database, create_app_engine, libpq_url
from coursedesk.web.threaded import free_port

TOKEN = "777:bench-token"


def serve_standin(port: int) -> None:
    """The stand-in with no access log: the benchmark measures the sender, not logging."""
    import uvicorn

    from coursedesk.telegram.standin import BotApiStandin, create_standin_app

    uvicorn.run(
        create_standin_app(BotApiStandin(TOKEN)),
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


class Standin:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-standin", str(self.port)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.control("faults")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def control(self, what: str, body: dict[str, object] | None = None) -> dict[str, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/_control/{what}",
            data=data,
            method="POST" if data is not None or what == "reset" else "GET",
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            result: dict[str, object] = json.load(answer)
            return result

    def send_times(self) -> list[float]:
        calls = self.control("log")["calls"]
        assert isinstance(calls, list)
        return sorted(float(c["at"]) for c in calls if c["method"] == "sendMessage")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def add_users(url: str, first: int, last: int) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO events (user_id, event_type) "
            "SELECT g, 'start' FROM generate_series(%s::bigint, %s) AS g",
            (first, last),
        )


def execute(url: str, statement: LiteralString, *parameters: object) -> Any:
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        row = connection.execute(statement, parameters).fetchone()
        return None if row is None else row[0]


async def create_to_all(url: str) -> tuple[int, float]:
    settings = load_settings(database_url=url)
    database = Database(create_app_engine(url, settings))
    try:
        started = time.perf_counter()
        async with database.transaction() as session:
            created = await create_broadcast(
                session, text="Benchmark", audience=AllUsers(type="all"), actor="bench"
            )
        return created.message_id, time.perf_counter() - started
    finally:
        await database.dispose()


WORKER_LOGS: dict[int, str] = {}
"""Each worker's log file, by process id."""


def start_workers(
    url: str, standin: Standin, rate: float, count: int
) -> list[subprocess.Popen[bytes]]:
    """`count` worker processes, each logging to a file of its own (named if it fails)."""
    environment = os.environ | {
        "DATABASE_URL": url,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": standin.base_url,
        "BROADCAST_RATE": str(rate),
    }
    workers = []
    for _ in range(count):
        with tempfile.NamedTemporaryFile(
            prefix="broadcast-bench-worker-", suffix=".log", delete=False
        ) as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "coursedesk", "worker"],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        WORKER_LOGS[worker.pid] = log.name
        workers.append(worker)
    return workers


def check_running(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is not None:
            raise RuntimeError(
                f"worker {worker.pid} exited with code {worker.returncode}; "
                f"its log: {WORKER_LOGS[worker.pid]}"
            )


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """Stop the workers; the log of one that stopped cleanly is of no more use."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        if worker.wait(60) == 0:
            Path(WORKER_LOGS.pop(worker.pid)).unlink(missing_ok=True)


def wait_until_sent(
    url: str, message_id: int, limit: float, workers: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + limit
    while execute(url, "SELECT status FROM message_history WHERE id = %s", message_id) != "sent":
        check_running(workers)
        if time.monotonic() > deadline:
            raise RuntimeError(f"broadcast {message_id} was not sent within {limit:.0f} s")
        time.sleep(0.2)


def rate_figures(times: list[float]) -> dict[str, float]:
    """Sustained rate over the run, and the most sends in a calendar second / any 1 s window."""
    per_second = Counter(int(t) for t in times)
    window = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    full_seconds = [
        n for second, n in per_second.items() if second not in (min(per_second), max(per_second))
    ]
    return {
        "sustained": (len(times) - 1) / (times[-1] - times[0]),
        "median_second": sorted(full_seconds)[len(full_seconds) // 2] if full_seconds else 0,
        "max_second": max(per_second.values()),
        "max_window": window,
    }


def run_broadcast(url: str, standin: Standin, rate: float, workers: int) -> dict[str, float]:
    standin.control("reset")
    message_id, _ = asyncio.run(create_to_all(url))
    running = start_workers(url, standin, rate, workers)
    try:
        wait_until_sent(url, message_id, 600, running)
    finally:
        stop_workers(running)
    execute(url, "DELETE FROM message_history WHERE id = %s RETURNING id", message_id)
    return rate_figures(standin.send_times())


def sent_so_far(url: str, message_id: int) -> int:
    return int(
        execute(
            url,
            "SELECT successful_deliveries + failed_deliveries FROM message_history WHERE id = %s",
            message_id,
        )
    )


def load_average() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def watch_memory(
    url: str, message_id: int, worker: subprocess.Popen[bytes], limit: float | None
) -> tuple[list[float], int, float]:
    """The worker's RSS every half second until the broadcast is sent (or `limit` s pass):
    the samples, how many messages went out, and in how many seconds."""
    samples: list[float] = []
    started = time.monotonic()
    while limit is None or time.monotonic() - started < limit:
        time.sleep(0.5)
        check_running([worker])
        samples.append(rss_megabytes(worker.pid))
        if execute(url, "SELECT status FROM message_history WHERE id = %s", message_id) == "sent":
            break
    return samples, sent_so_far(url, message_id), time.monotonic() - started


def rss_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-standin", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--rate-messages", type=int, default=500)
    parser.add_argument("--throughput-messages", type=int, default=20_000)
    parser.add_argument(
        "--rss-seconds",
        type=float,
        help="watch the worker's memory this long (default: until the whole broadcast is sent)",
    )
    arguments = parser.parse_args()
    if arguments.serve_standin:
        serve_standin(arguments.serve_standin)
        return

    admin_url = server_admin_url()
    results: list[tuple[str, str, str, str]] = []
    standin = Standin()
    try:
        with scratch_database(admin_url, "broadcast_bench") as url:
            add_users(url, 1, arguments.rate_messages)
            for workers in (1, 3):
                figures = run_broadcast(url, standin, arguments.rate, workers)
                share = 100 * figures["sustained"] / arguments.rate
                results.append(
                    (
                        f"rate kept, {workers} worker(s), {arguments.rate_messages} messages",
                        f"{figures['sustained']:.2f}/s = {share:.1f} % of {arguments.rate:g}",
                        f"busiest second {figures['max_second']:.0f}, "
                        f"busiest 1 s window {figures['max_window']:.0f}, "
                        f"median second {figures['median_second']:.0f}",
                        load_average(),
                    )
                )
            add_users(url, arguments.rate_messages + 1, arguments.throughput_messages)
            throughput_messages = arguments.throughput_messages
            for workers in (1, 3):
                figures = run_broadcast(url, standin, 10_000, workers)
                results.append(
                    (
                        f"throughput, {workers} worker(s), {throughput_messages} messages",
                        f"{figures['sustained']:.0f} msg/s",
                        "stand-in unthrottled, BROADCAST_RATE 10000",
                        load_average(),
                    )
                )
            standin.control("reset")
            started = time.perf_counter()
            add_users(url, arguments.throughput_messages + 1, arguments.users)
            loading = time.perf_counter() - started
            message_id, creating = asyncio.run(create_to_all(url))
            total = execute(
                url, "SELECT total_recipients FROM message_history WHERE id = %s", message_id
            )
            results.append(
                (
                    f"audience of {total:,} recipients created",
                    f"{creating:.1f} s",
                    f"one INSERT … SELECT (loading the users took {loading:.0f} s)",
                    load_average(),
                )
            )
            [worker] = start_workers(url, standin, 10_000, 1)
            try:
                samples, sent, seconds = watch_memory(
                    url, message_id, worker, arguments.rss_seconds
                )
            finally:
                stop_workers([worker])
            tenth = samples[len(samples) // 10]
            results.append(
                (
                    f"worker RSS sending the {total:,}-recipient broadcast",
                    f"peak {max(samples):.0f} MB",
                    f"{samples[0]:.0f} MB at start, {tenth:.0f} MB a tenth of the way, "
                    f"{samples[-1]:.0f} MB at the end; {sent:,} sent in {seconds:.0f} s",
                    load_average(),
                )
            )
    finally:
        standin.stop()
    width = max(len(name) for name, _, _, _ in results)
    for name, figure, note, load in results:
        print(f"{name:<{width}}  {figure:<32}  {load:<9}  {note}")  # noqa: T201


if __name__ == "__main__":
    main()
