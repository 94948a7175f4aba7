"""Browser fixtures: headless Chromium on the real app, signed-in pages, and their console."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from browser_tab import (
    DESKTOP,
    PASSWORD,
    STAFF_NAMES,
    WAIT_MS,
    ZOYA,
    Console,
    OpenTab,
    Tab,
)
from live_server import LiveServer
from playwright.async_api import async_playwright, expect
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_user
from coursedesk.analytics.folding import fold_pending
from coursedesk.config import Settings
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.engine import Database
from coursedesk.db.seed import default_anchor, seed_database

expect.set_options(timeout=WAIT_MS)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEEDED_USERS = 200


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _chromium()
    if path is None:
        pytest.skip(
            "no Chromium on this machine: install Debian's `chromium` package "
            "(apt-get install chromium) to run the browser tests"
        )
    return path


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
def school(sync_engine: Engine) -> Engine:
    """A school's worth of generated students, and Zoya, whom the tests look for."""
    seed_database(sync_engine, GenerationPlan(users=SEEDED_USERS, seed=11, anchor=default_anchor()))
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, username, first_name, course_id, course_stream, "
                "confirmed) VALUES (:user, 'zoya_k', 'Zoya', 1, 'PY-19', 1)"
            ),
            {"user": ZOYA},
        )
        connection.execute(
            text("INSERT INTO events (user_id, event_type) VALUES (:user, 'start')"),
            {"user": ZOYA},
        )
    fold_pending(sync_engine)
    return sync_engine


@pytest.fixture
async def staff(database: Database) -> dict[Role, str]:
    """One staff user per role, by name; all share PASSWORD."""
    async with database.transaction() as session:
        for role, name in STAFF_NAMES.items():
            await create_user(session, name, PASSWORD, role, created_by="tests")
    return STAFF_NAMES


@pytest.fixture
def live_app(settings: Settings, school: Engine, staff: dict[Role, str]) -> Iterator[str]:
    """The app serving the school on 127.0.0.1; answers its base URL."""
    with LiveServer(settings) as server:
        yield server.base_url


@pytest.fixture
async def open_tab(browser: Any, live_app: str) -> AsyncIterator[OpenTab]:
    """A new browser tab (own cookies) on the live app; its console must stay clean."""
    contexts: list[Any] = []
    consoles: list[Console] = []

    async def open_new(viewport: dict[str, int] = DESKTOP) -> Tab:
        context = await browser.new_context(viewport=viewport, base_url=live_app)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        console = Console()
        consoles.append(console)

        async def keep_local(route: Any) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                await route.continue_()
            else:
                console.foreign_requests.append(route.request.url)
                await route.abort()

        await context.route("**/*", keep_local)
        page = await context.new_page()
        page.on(
            "console",
            lambda message: (
                console.errors.append(f"{message.text} at {message.location}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: console.errors.append(f"page error: {error}"))
        return Tab(page, console, live_app)

    yield open_new
    for context in contexts:
        await context.close()
    for console in consoles:
        assert console.errors == [], "the browser console showed errors"
        assert console.foreign_requests == [], "a page asked another host for something"
