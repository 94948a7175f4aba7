"""Telegram fixtures: a stand-in Bot API served over HTTP on 127.0.0.1, and a client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from coursedesk.telegram.client import TelegramClient
from coursedesk.telegram.standin import BotApiStandin, StandinThread

FROZEN_TIME = 1_750_000_000.0


@pytest.fixture(scope="session")
def bot_token() -> str:
    return "123456:stand-in-test-token"


@pytest.fixture(scope="session")
def standin_server(bot_token: str) -> Iterator[StandinThread]:
    """One stand-in server for the session; `standin` clears it for each test.

    Its clock stands still, so every call of a test falls in the same second of the
    rate limit, however slow the machine.
    """
    with StandinThread(BotApiStandin(bot_token, clock=lambda: FROZEN_TIME)) as server:
        yield server


@pytest.fixture
def standin(standin_server: StandinThread) -> BotApiStandin:
    """The served stand-in, with no faults, messages or calls yet."""
    standin_server.standin.reset()
    return standin_server.standin


@pytest.fixture
def api_base_url(standin_server: StandinThread, standin: BotApiStandin) -> str:
    return standin_server.base_url


@pytest.fixture
async def telegram_client(bot_token: str, api_base_url: str) -> AsyncIterator[TelegramClient]:
    async with TelegramClient(bot_token, api_base_url, pool_size=4, timeout=5.0) as client:
        yield client


@pytest.fixture
def http(api_base_url: str) -> Iterator[httpx.Client]:
    """A plain HTTP client of the served stand-in, for calls made by hand."""
    with httpx.Client(base_url=api_base_url, timeout=10) as client:
        yield client
