"""Media broadcast benchmarks: a photo, one 50 MB video and an album of ten 50 MB videos.

    python bench/media_bench.py [--recipients 3000] [--rate 200] [--video-mb 50]

Each broadcast goes to every recipient through a stand-in Bot API in its own process,
sent by 1 and then 3 real `coursedesk worker` processes. The stand-in answers 429 past
`--rate` sends in any one second (and injects nothing else), so a 429 means the workers
together went over their shared rate. For each run it prints the sends per second, the
busiest second, the 429s, when the first send (the one that uploads) was answered,
counted from the workers' start (their start-up included), how many times each file was
uploaded (1 is right) and each worker's peak resident memory (VmHWM). Runs in a
database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from pathlib import Path

from bench_support import scratch_database, server_admin_url
from broadcast_bench import (
    Standin,
    add_users,
    check_running,
    execute,
    load_average,
    serve_standin,
    start_workers,
    stop_workers,
)

from coursedesk.analytics.folding import fold_pending
from coursedesk.broadcasts.audiences import AllUsers
from coursedesk.broadcasts.composition import ContentRequest, MediaChoice
from coursedesk.broadcasts.media import CHUNK_BYTES, MediaWriter
from coursedesk.broadcasts.service import create_broadcast
from coursedesk.config import load_settings
from coursedesk.db.engine import Database, create_app_engine, create_tool_engine

JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
MP4_START = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00"
SEND_METHODS = {"sendPhoto", "sendVideo", "sendMediaGroup"}


async def store_file(url: str, start: bytes, size: int, filename: str) -> int:
    """A file of `size` random bytes after `start`, written as POST /api/media writes it."""
    settings = load_settings(database_url=url)
    database = Database(create_app_engine(url, settings))
    try:
        async with database.transaction() as session:
            writer = MediaWriter(session, filename=filename, declared_type=None, actor="bench")
            await writer.write(start)
            left = size - len(start)
            while left > 0:
                piece = min(CHUNK_BYTES, left)
                await writer.write(os.urandom(piece))
                left -= piece
            stored = await writer.finish()
        return stored.media_id
    finally:
        await database.dispose()


async def create_media_broadcast(url: str, media_ids: list[int]) -> int:
    settings = load_settings(database_url=url)
    database = Database(create_app_engine(url, settings))
    try:
        async with database.transaction() as session:
            created = await create_broadcast(
                session,
                text="Benchmark",
                audience=AllUsers(type="all"),
                actor="bench",
                content=ContentRequest(media=[MediaChoice(media_id=m) for m in media_ids]),
            )
        return created.message_id
    finally:
        await database.dispose()


def add_recipients(url: str, count: int) -> None:
    """`count` users, folded into the summaries the audiences are read from."""
    add_users(url, 1, count)
    engine = create_tool_engine(url, load_settings(database_url=url))
    try:
        fold_pending(engine)
    finally:
        engine.dispose()


def peak_rss_megabytes(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(
    url: str, standin: Standin, media_ids: list[int], rate: float, workers: int
) -> dict[str, object]:
    standin.control("reset")
    standin.control("faults", {"rate_limit_per_second": max(1, int(rate))})
    message_id = asyncio.run(create_media_broadcast(url, media_ids))
    launched = time.time()
    running = start_workers(url, standin, rate, workers)
    started = time.monotonic()
    try:
        while (
            execute(url, "SELECT status FROM message_history WHERE id = %s", message_id) != "sent"
        ):
            check_running(running)
            if time.monotonic() - started > 900:
                raise RuntimeError(f"broadcast {message_id} was not sent within 900 s")
            time.sleep(0.2)
        peaks = [peak_rss_megabytes(worker.pid) for worker in running]
    finally:
        stop_workers(running)
    log = standin.control("log")
    calls = [c for c in log["calls"] if c["method"] in SEND_METHODS]  # type: ignore[union-attr]
    delivered = sorted(float(c["at"]) for c in calls if c["status"] == 200)
    refused = sum(1 for c in calls if c["status"] == 429)
    uploads: Counter[str] = Counter(
        f["file_unique_id"]
        for m in log["messages"]  # type: ignore[union-attr]
        for f in m["files"]
        if f["uploaded"]
    )
    per_second = Counter(int(t) for t in delivered)
    execute(url, "DELETE FROM message_history WHERE id = %s RETURNING id", message_id)
    return {
        "sent": len(delivered),
        "first": delivered[0] - launched,
        "per_second": (len(delivered) - 1) / (delivered[-1] - delivered[0]),
        "busiest": max(per_second.values()),
        "refused": refused,
        "uploads": sorted(uploads.values()),
        "files": len(media_ids),
        "peaks": peaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-standin", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--recipients", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--video-mb", type=int, default=50)
    arguments = parser.parse_args()
    if arguments.serve_standin:
        serve_standin(arguments.serve_standin)
        return

    video_size = arguments.video_mb * 1024 * 1024
    lines: list[str] = []
    standin = Standin()
    try:
        with scratch_database(server_admin_url(), "media_bench") as url:
            add_recipients(url, arguments.recipients)
            photo = asyncio.run(store_file(url, JPEG_START, 300 * 1024, "poster.jpg"))
            videos = [
                asyncio.run(store_file(url, MP4_START, video_size, f"lesson-{n}.mp4"))
                for n in range(10)
            ]
            broadcasts = (
                ("photo, 300 KB", [photo]),
                (f"video, {arguments.video_mb} MB", videos[:1]),
                (f"album, 10 videos of {arguments.video_mb} MB", videos),
            )
            for name, media_ids in broadcasts:
                for workers in (1, 3):
                    figures = run(url, standin, media_ids, arguments.rate, workers)
                    uploads = figures["uploads"]
                    peaks = ", ".join(f"{p:.0f}" for p in figures["peaks"])  # type: ignore[attr-defined]
                    lines.append(
                        f"{name:<30} {workers} worker(s)  {figures['sent']} sends, "
                        f"the first (the upload) {figures['first']:.1f} s after start, "
                        f"{figures['per_second']:.1f}/s of {arguments.rate:g} "
                        f"(busiest second {figures['busiest']}), 429s: {figures['refused']}, "
                        f"uploads per file {uploads} of {figures['files']} files, "
                        f"peak RSS MB per worker: {peaks}  ({load_average()})"
                    )
                    print(lines[-1], flush=True)  # noqa: T201
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
