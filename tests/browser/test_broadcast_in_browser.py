"""A broadcast written, previewed, confirmed and watched to delivery on the stand-in Bot API."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from browser_tab import ZOYA, OpenTab, Tab
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import expect
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.broadcasts.sender import SenderOptions
from coursedesk.broadcasts.worker import run_worker
from coursedesk.config import Settings
from coursedesk.telegram.standin import BotApiStandin, StandinThread

PUBLIC_BASE_URL = "https://school.example/go"
"""Where students reach the app: the tests open its /r/ links on the live server."""
pytestmark = pytest.mark.browser

BOT_TOKEN = "616161:browser-test-token"
# Slow enough that a broadcast to the whole school is seen sending for a few seconds.
WORKER_RATE = 40.0
DELIVERED_WITHIN_MS = 45_000
MESSAGE = "<b>Spring stream</b> starts on Monday.\nSee you there!"


@pytest.fixture(scope="module")
def standin_server() -> Iterator[StandinThread]:
    with StandinThread(BotApiStandin(BOT_TOKEN)) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, standin_server: StandinThread) -> Settings:
    """The test settings, with the stand-in as Telegram."""
    standin_server.standin.reset()
    return settings.model_copy(
        update={
            "telegram_bot_token": BOT_TOKEN,
            "telegram_api_base_url": standin_server.base_url,
            "broadcast_rate": WORKER_RATE,
            "public_base_url": PUBLIC_BASE_URL,
        }
    )


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    """One in-process worker sending through the stand-in, stopped after the test."""
    stop = asyncio.Event()
    options = SenderOptions(rate=WORKER_RATE, lease_seconds=3.0, poll_seconds=0.5)
    task = asyncio.create_task(run_worker(settings, stop_event=stop, options=options))
    yield
    stop.set()
    await asyncio.wait_for(task, 30)


async def compose(tab: Tab, audience: str) -> None:
    page = tab.page
    await tab.open("/broadcasts/new")
    await page.get_by_label("Text", exact=True).fill(MESSAGE)
    await page.locator('input[name="parse_mode"][value="HTML"]').check()
    await expect(page.locator("#preview .bubble b")).to_have_text("Spring stream")
    await page.locator(f'input[name="audience_type"][value="{audience}"]').check()


async def test_a_broadcast_is_composed_confirmed_and_delivered(
    open_tab: OpenTab, standin_server: StandinThread, worker: None
) -> None:
    standin = standin_server.standin
    tab = await open_tab()
    await tab.sign_in(Role.operator)
    page = tab.page

    await tab.open("/broadcasts/new")
    assert await page.get_by_label("Text", exact=True).input_value() == ""
    # Nobody is chosen to begin with: a broadcast to everyone is a choice, not a default.
    assert await page.locator('input[name="audience_type"]:checked').count() == 0
    live_count = page.locator("#recipient-count [data-recipients]")
    await expect(live_count).to_have_text("—")
    await expect(page.locator("#recipient-problem")).to_have_text("Choose who receives it.")

    await compose(tab, "all")
    await expect(live_count).to_have_text(re.compile(r"^[1-9][0-9,]*$"))
    await expect(page.locator("#recipient-problem")).to_be_hidden()
    await page.locator('input[name="audience_type"][value="users"]').check()
    await page.locator("#student-search").fill("zoya")
    await page.locator("#student-suggestions button").first.click()
    await expect(page.locator("#chosen-students .chip")).to_have_text(["Zoya×"])
    await expect(live_count).to_have_text("1")
    await tab.screenshot("composer")
    await page.get_by_role("button", name="Review and send…").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator("#confirm-count [data-recipients]")).to_have_text("1")
    assert standin.received() == [], "nothing is sent before the confirmation"
    await page.locator("#confirm-send").click()
    await page.wait_for_load_state("networkidle")
    badge = page.locator('[data-field="status"] .badge')
    await expect(badge).to_have_text("Sent", timeout=DELIVERED_WITHIN_MS)
    [received] = standin.received(ZOYA)
    assert received.text == MESSAGE and received.parse_mode == "HTML"
    assert await page.locator('#broadcast [data-figure="delivered"]').inner_text() == "1"

    await compose(tab, "all")
    await page.get_by_role("button", name="Review and send…").click()
    await page.wait_for_load_state("networkidle")
    everyone = int(
        (await page.locator("#confirm-count [data-recipients]").inner_text()).replace(",", "")
    )
    assert everyone > 200
    await tab.screenshot("composer-confirm")
    await page.locator("#confirm-send").click()
    await page.wait_for_load_state("networkidle")
    await expect(badge).to_have_text("Sending", timeout=DELIVERED_WITHIN_MS)
    # The figures move while the page stays: the page script follows the API.
    await expect(page.locator('#broadcast [data-figure="delivered"]')).not_to_have_text("0")
    await expect(page.locator("[data-pace]")).to_contain_text("messages a second")
    await tab.screenshot("broadcast-sending", full_page=False)
    await expect(badge).to_have_text("Sent", timeout=DELIVERED_WITHIN_MS)
    shown = await page.locator('#broadcast [data-figure="delivered"]').inner_text()
    assert int(shown.replace(",", "")) == everyone
    assert len({message.chat_id for message in standin.received()}) == everyone
    await tab.screenshot("broadcast")


def _broadcasts(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT id FROM message_history ORDER BY id")))


async def _until_waiting(engine: Engine, requests: int) -> None:
    """Until this many sends wait for a lock, to make their broadcast or to claim its key
    (the worker may be waiting too). Each look is on a connection of its own: one in a
    transaction sees the activity as it was when it first looked."""
    for _ in range(600):
        with engine.connect() as watcher:
            waiting = watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND query ~ '^INSERT INTO (message_history|broadcast_request_keys) '"
                )
            )
        if waiting == requests:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{requests} requests never waited together")


async def _to_zoya(tab: Tab, message: str) -> None:
    page = tab.page
    await tab.open("/broadcasts/new")
    await page.get_by_label("Text", exact=True).fill(message)
    await page.locator('input[name="audience_type"][value="users"]').check()
    await page.locator("#user-ids").fill(str(ZOYA))
    await expect(page.locator("#recipient-count [data-recipients]")).to_have_text("1")
    await page.get_by_role("button", name="Review and send…").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator("#confirm-send")).to_be_visible()


async def test_back_and_reload_after_a_send_or_a_double_click_send_once(
    open_tab: OpenTab, standin_server: StandinThread, worker: None, school: Engine
) -> None:
    standin = standin_server.standin
    tab = await open_tab()
    await tab.sign_in(Role.operator)
    page = tab.page
    sends: list[str] = []
    page.on(
        "request",
        lambda request: (
            sends.append(request.url)
            if request.method == "POST" and "action=send" in (request.post_data or "")
            else None
        ),
    )

    await _to_zoya(tab, "Back and reload")
    await page.locator("#confirm-send").click()
    await page.wait_for_load_state("networkidle")
    [made] = _broadcasts(school)
    assert page.url.endswith(f"/broadcasts/{made}")
    # Back leads to the confirm page, a POST's answer the browser did not keep; reload
    # posts its form again, and the page it gets has no Send button, only the broadcast.
    with contextlib.suppress(PlaywrightError):
        await page.go_back()
    await page.reload()
    await page.wait_for_load_state("networkidle")
    await expect(page.get_by_role("heading", name="Already sent", exact=True)).to_be_visible()
    await expect(page.locator("#confirm-send")).to_have_count(0)
    await tab.screenshot("composer-already-sent")
    await page.locator("#see-made").click()
    await page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/broadcasts/{made}")
    await expect(page.locator('[data-field="status"] .badge')).to_have_text(
        "Sent", timeout=DELIVERED_WITHIN_MS
    )
    assert _broadcasts(school) == [made]

    await _to_zoya(tab, "Double click")
    sends.clear()
    # Chromium folds two clicks in one instant into one submission; a second press does
    # post twice when the first is still at the server, as when the database is busy.
    # This lock keeps the first there, with its key claimed, until the second has come.
    # The presses are the mouse's own: the page is leaving, so no script may run on it.
    button = await page.locator("#confirm-send").bounding_box()
    assert button is not None
    x, y = button["x"] + button["width"] / 2, button["y"] + button["height"] / 2
    with school.connect() as blocker:
        blocker.execute(text("LOCK TABLE message_history IN SHARE MODE"))
        await page.mouse.click(x, y)
        await _until_waiting(school, 1)
        await page.mouse.click(x, y)
        await _until_waiting(school, 2)
        blocker.rollback()
    await page.wait_for_url(re.compile(r"/broadcasts/\d+$"))
    await page.wait_for_load_state("networkidle")
    [_, second] = _broadcasts(school)
    assert page.url.endswith(f"/broadcasts/{second}")
    assert len(sends) == 2, "Send was posted twice"
    await expect(page.locator(".flash")).to_contain_text(
        f"Broadcast #{second} was already sent from this form, so it was not sent again."
    )
    await tab.screenshot("broadcast-after-double-click", full_page=False)
    await expect(page.locator('[data-field="status"] .badge')).to_have_text(
        "Sent", timeout=DELIVERED_WITHIN_MS
    )
    assert [message.text for message in standin.received(ZOYA)] == [
        "Back and reload",
        "Double click",
    ]
