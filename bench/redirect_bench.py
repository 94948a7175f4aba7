"""How fast a tracked link answers: `GET /r/{token}` against the real app over HTTP.

    python bench/redirect_bench.py [--recipients 100000] [--requests 5000]
        [--concurrency 1,8,32]

A scratch database (on DATABASE_URL's server, or an embedded one) gets one sent broadcast
with three tracked links and --recipients recipients; the app is served by uvicorn in a
process of its own, as `coursedesk serve` runs it. Each round sends --requests GETs over
keep-alive connections, --concurrency at a time, each to a token of a random recipient
and link: the first click on a token inserts its row, a repeat updates it. Latency is
measured at the client, per request, from send to the 302's last byte. A last round asks
for forged tokens (404, no query). Afterwards the clicks recorded must add up to the
302s answered, exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import psycopg
from bench_support import scratch_database, server_admin_url
from rich.console import Console
from rich.table import Table

from coursedesk.broadcasts.link_tokens import LinkSigner
from coursedesk.config import load_settings
from coursedesk.web.threaded import free_port

console = Console(highlight=False, width=120)
LINKS = ("https://school.example/book", "https://school.example/faq", "https://school.example/")


def arrange(url: str, recipients: int) -> tuple[int, LinkSigner]:
    """One sent, tracked broadcast with `recipients` recipients; its id and the signer."""
    with psycopg.connect(url, autocommit=True) as connection:
        message_id = connection.execute(
            "INSERT INTO message_history (message_text, recipient_type, recipient_group, "
            "audience, status, track_links, started_at, sent_at) VALUES ('See the links', "
            "'group', 'all', '{\"type\": \"all\"}', 'sent', true, now(), now()) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        connection.execute(
            "INSERT INTO message_recipients (message_id, user_id, delivery_status, sent_at) "
            "SELECT %s, g, 'sent', now() FROM generate_series(1, %s) AS g",
            (message_id, recipients),
        )
        for position, link in enumerate(LINKS):
            connection.execute(
                "INSERT INTO broadcast_links (message_id, position, url) VALUES (%s, %s, %s)",
                (message_id, position, link),
            )
        connection.execute("VACUUM (ANALYZE)")
        key = connection.execute("SELECT secret FROM link_token_keys").fetchone()[0]  # type: ignore[index]
    return message_id, LinkSigner(bytes(key))


def recipient_ids(url: str, message_id: int) -> list[int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id FROM message_recipients WHERE message_id = %s", (message_id,)
        ).fetchall()
    return [row[0] for row in rows]


def serve(port: int) -> None:
    """The app as `coursedesk serve` runs it, without the access log."""
    import uvicorn

    from coursedesk.web.app import create_app

    uvicorn.run(
        create_app(load_settings()),
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
    )


@contextmanager
def served_app(url: str) -> Iterator[str]:
    port = free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REDIS_URL", "DATABASE_REPLICA_URL")
    } | {
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANALYTICS_FOLD_SECONDS": "0",
    }
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=environment)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not come up at {base_url}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        process.wait(30)


async def run_round(
    base_url: str, paths: Sequence[str], concurrency: int, expected: int
) -> tuple[list[float], float]:
    """Each path requested once, `concurrency` at a time: the latencies and the wall time."""
    latencies: list[float] = []
    queue = iter(paths)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        for path in queue:
            started = time.perf_counter()
            answer = await client.get(path)
            latencies.append(time.perf_counter() - started)
            if answer.status_code != expected:
                raise RuntimeError(f"GET {path} answered {answer.status_code}, not {expected}")

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve)
        return
    rounds = [int(part) for part in arguments.concurrency.split(",")]
    rng = random.Random(7)
    with scratch_database(server_admin_url(), "redirect_bench") as url:
        message_id, signer = arrange(url, arguments.recipients)
        ids = recipient_ids(url, message_id)
        console.print(
            f"{len(ids):,} recipients, {len(LINKS)} links; {arguments.requests:,} requests a "
            f"round on {os.cpu_count()} cores"
        )
        table = Table("round", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "requests/s")
        answered = 0
        with served_app(url) as base_url:
            warm = [f"/r/{signer.token(ids[0], 0)}"] * 200
            asyncio.run(run_round(base_url, warm, 4, 302))
            answered += len(warm)
            for concurrency in rounds:
                paths = [
                    f"/r/{signer.token(rng.choice(ids), rng.randrange(len(LINKS)))}"
                    for _ in range(arguments.requests)
                ]
                latencies, wall = asyncio.run(run_round(base_url, paths, concurrency, 302))
                answered += len(paths)
                table.add_row(
                    f"302, {concurrency} at a time",
                    f"{len(paths):,}",
                    milliseconds(statistics.median(latencies)),
                    milliseconds(percentile(latencies, 0.95)),
                    milliseconds(percentile(latencies, 0.99)),
                    milliseconds(max(latencies)),
                    f"{len(paths) / wall:,.0f}",
                )
            forged = [f"/r/{secrets.token_urlsafe(18)}" for _ in range(arguments.requests)]
            latencies, wall = asyncio.run(run_round(base_url, forged, rounds[-1], 404))
            table.add_row(
                f"404 forged, {rounds[-1]} at a time",
                f"{len(forged):,}",
                milliseconds(statistics.median(latencies)),
                milliseconds(percentile(latencies, 0.95)),
                milliseconds(percentile(latencies, 0.99)),
                milliseconds(max(latencies)),
                f"{len(forged) / wall:,.0f}",
            )
        console.print(table)
        with psycopg.connect(url) as connection:
            recorded, rows = connection.execute(
                "SELECT coalesce(sum(clicks), 0), count(*) FROM broadcast_clicks"
            ).fetchone()  # type: ignore[misc]
        console.print(f"clicks recorded {recorded:,} in {rows:,} rows; 302s answered {answered:,}")
        if recorded != answered:
            raise SystemExit("the clicks recorded do not add up to the redirects answered")


if __name__ == "__main__":
    main()
