"""Broadcast fixtures: a stand-in Bot API on 127.0.0.1 and workers to run against it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from broadcast_helpers import (
    BOT_TOKEN,
    PROCESS_IN_FLIGHT,
    TEST_RATE,
    RunWorker,
    StartProcess,
    WorkerHandle,
    fast_backoff,
)

from coursedesk.broadcasts.sender import SenderOptions
from coursedesk.broadcasts.worker import run_worker
from coursedesk.config import Settings
from coursedesk.telegram.standin import BotApiStandin, StandinThread


@pytest.fixture(scope="session")
def standin_server() -> Iterator[StandinThread]:
    """One stand-in Bot API on 127.0.0.1 for the session, on the real clock."""
    with StandinThread(BotApiStandin(BOT_TOKEN)) as server:
        yield server


@pytest.fixture
def standin(standin_server: StandinThread) -> BotApiStandin:
    """The served stand-in with no faults, messages or calls yet."""
    standin_server.standin.reset()
    return standin_server.standin


@pytest.fixture
def settings(settings: Settings, standin_server: StandinThread) -> Settings:
    """The test settings, sending to the stand-in."""
    return settings.model_copy(
        update={
            "telegram_bot_token": BOT_TOKEN,
            "telegram_api_base_url": standin_server.base_url,
            "broadcast_rate": TEST_RATE,
        }
    )


@pytest.fixture
async def start_worker(settings: Settings) -> AsyncIterator[RunWorker]:
    """Start an in-process worker (stopped at the end of the test if still running)."""
    handles: list[WorkerHandle] = []

    async def start(**options: Any) -> WorkerHandle:
        chosen = {
            "rate": settings.broadcast_rate,
            "lease_seconds": 3.0,
            "poll_seconds": 0.5,
            "backoff": fast_backoff,
        } | options
        handle = WorkerHandle()
        handle.task = asyncio.create_task(
            run_worker(settings, stop_event=handle.stop, options=SenderOptions(**chosen))
        )
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        if handle.task is not None and not handle.task.done():
            await handle.stopped()


@pytest.fixture
def start_process(
    database_url: str, standin_server: StandinThread, tmp_path: Path
) -> Iterator[StartProcess]:
    """Start `python -m coursedesk worker` processes; any still running are killed after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(rate: float, lease: float = 3.0) -> subprocess.Popen[bytes]:
        environment = os.environ | {
            "DATABASE_URL": database_url,
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_BASE_URL": standin_server.base_url,
            "BROADCAST_RATE": str(rate),
            "COURSEDESK_HOME": str(tmp_path / "home"),
        }
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "coursedesk", "worker"),
                *("--lease", str(lease), "--in-flight", str(PROCESS_IN_FLIGHT)),
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)
