"""A broadcast written, previewed, confirmed and watched to delivery on the stand-in Bot API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from browser_tab import ZOYA, OpenTab, Tab
from playwright.async_api import expect

from coursedesk.accounts.roles import Role
from coursedesk.broadcasts.sender import SenderOptions
from coursedesk.broadcasts.worker import run_worker
from coursedesk.config import Settings
from coursedesk.telegram.standin import BotApiStandin, StandinThread

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
    live_count = page.locator("#recipient-count [data-recipients]")
    await expect(live_count).to_have_text(re.compile(r"^[1-9][0-9,]*$"))
    await expect(page.locator("#recipient-problem")).to_be_hidden()

    await compose(tab, "users")
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
