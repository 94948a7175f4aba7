"""`coursedesk worker`: the broadcast sender and scheduler; run as many as you like."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Annotated

import typer
import uvloop

from coursedesk.broadcasts.sender import SenderOptions
from coursedesk.broadcasts.worker import run_worker
from coursedesk.cli.common import fail, settings


def worker(
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=0.001,
            max=10_000,
            help="Messages per second for all workers together (default: BROADCAST_RATE)",
        ),
    ] = None,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=1,
            max=3600,
            help="Seconds a dead worker's claimed recipients wait before others take them",
        ),
    ] = 20.0,
    in_flight: Annotated[
        int | None,
        typer.Option(
            "--in-flight",
            min=1,
            max=4096,
            help="Messages sent but not yet recorded, at most (bounds repeats after a crash)",
        ),
    ] = None,
) -> None:
    """Send broadcasts, start scheduled ones and run deletions, until SIGTERM or Ctrl-C."""
    current = settings()
    if current.telegram_bot_token is None:
        fail("TELEGRAM_BOT_TOKEN: not set, so the worker has nothing to send with", code=2)
    logging.getLogger("coursedesk").setLevel(logging.INFO)
    options = SenderOptions(
        rate=rate or current.broadcast_rate, lease_seconds=lease, in_flight=in_flight
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        await run_worker(current, stop_event=stop, options=options)

    # Everything imported so far lives as long as the process: frozen, the garbage
    # collector stops walking it on every full pass, which cut the CPU a message costs by
    # about a third. uvloop's event loop cuts it further (docs/benchmarks.md).
    gc.freeze()
    uvloop.run(run())
