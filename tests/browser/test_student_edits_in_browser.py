"""A student's stream and bookings edited in a real Chromium: the stream picker, the
question before a stream is removed, with and without scripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from browser_tab import WAIT_MS, ZOYA, Console, OpenTab, Tab
from playwright.async_api import expect
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role

pytestmark = pytest.mark.browser


def _stream_of_zoya(school: Engine) -> str | None:
    with school.connect() as connection:
        stream: str | None = connection.scalar(
            text("SELECT course_stream FROM bookings WHERE user_id = :user"), {"user": ZOYA}
        )
        return stream


async def test_a_stream_is_picked_made_and_removed_after_a_question(
    open_tab: OpenTab, school: Engine
) -> None:
    tab = await open_tab()
    await tab.sign_in(Role.operator)
    await tab.open(f"/users/{ZOYA}")
    page = tab.page
    form = page.locator("#stream-form")
    new_name = form.get_by_label("Name of the new stream")
    await expect(new_name).to_be_hidden()
    await form.get_by_label("Change stream").select_option("New stream…")
    await expect(new_name).to_be_visible()

    await new_name.fill(" py-19 ")
    await form.get_by_role("button", name="Save stream").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator(".flash")).to_contain_text('already has stream "PY-19"')
    await expect(new_name).to_have_value(" py-19 ")
    assert len(tab.console.take("status of 400")) == 1
    await tab.screenshot("student-stream-refused", full_page=False)

    await new_name.fill("PY-99")
    await form.get_by_role("button", name="Save stream").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator(".flash")).to_contain_text("is now in stream PY-99")
    assert _stream_of_zoya(school) == "PY-99"

    await form.get_by_label("Change stream").select_option("No stream")
    await form.get_by_role("button", name="Save stream").click()
    await page.wait_for_load_state("networkidle")
    question = page.locator("#question")
    await expect(question).to_contain_text("leaves stream PY-99 and is in no stream")
    assert _stream_of_zoya(school) == "PY-99", "nothing is removed before the answer"
    await tab.screenshot("student-stream-question", full_page=False)
    await question.get_by_role("button", name="Remove the stream").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator(".flash")).to_contain_text("is now in no stream")
    assert _stream_of_zoya(school) is None


@pytest.fixture
async def tab_without_scripts(browser: Any, live_app: str) -> AsyncIterator[Tab]:
    context = await browser.new_context(base_url=live_app, java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    yield Tab(await context.new_page(), Console(), live_app)
    await context.close()


async def test_the_picker_and_the_question_need_no_script(
    tab_without_scripts: Tab, school: Engine
) -> None:
    tab = tab_without_scripts
    await tab.sign_in(Role.operator)
    await tab.open(f"/users/{ZOYA}")
    page = tab.page
    form = page.locator("#stream-form")
    new_name = form.get_by_label("Name of the new stream")
    await expect(new_name).to_be_hidden()
    await form.get_by_label("Change stream").select_option("New stream…")
    await expect(new_name).to_be_visible()

    await form.get_by_label("Change stream").select_option("No stream")
    await form.get_by_role("button", name="Save stream").click()
    await page.wait_for_load_state("networkidle")
    await page.locator("#question").get_by_role("button", name="Remove the stream").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator(".flash")).to_contain_text("is now in no stream")
    assert _stream_of_zoya(school) is None


async def test_two_tabs_on_one_booking_the_second_save_shows_both_values(
    open_tab: OpenTab, school: Engine
) -> None:
    first, second = await open_tab(), await open_tab()
    await first.sign_in(Role.operator)
    await second.sign_in(Role.admin)
    dialogs = []
    for tab in (first, second):
        await tab.open(f"/users/{ZOYA}")
        await tab.page.get_by_role("button", name="Edit").first.click()
        dialogs.append(tab.page.locator("[popover]:popover-open"))
    mine, theirs = dialogs

    await theirs.get_by_label("Referral code").fill("SECOND-TAB")
    await theirs.get_by_role("button", name="Save booking").click()
    await second.page.wait_for_load_state("networkidle")
    await expect(second.page.locator(".flash")).to_contain_text("saved")

    await mine.get_by_label("Referral code").fill("FIRST-TAB")
    await mine.get_by_label("Status").select_option("Confirmed")
    await mine.get_by_role("button", name="Save booking").click()
    await first.page.wait_for_load_state("networkidle")
    page = first.page
    await expect(page.locator(".flash")).to_contain_text("someone changed it after you opened it")
    question = page.locator("#question")
    rows = question.locator("tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="Referral code")).to_contain_text("SECOND-TAB")
    await expect(rows.filter(has_text="Referral code")).to_contain_text("FIRST-TAB")
    await expect(rows.filter(has_text="Status")).to_contain_text("Pending")
    assert len(first.console.take("status of 409")) == 1
    await first.screenshot("student-stale-edit", full_page=False)

    await question.get_by_role("button", name="Edit again").click()
    dialog = page.locator("[popover]:popover-open")
    await expect(dialog.get_by_label("Referral code")).to_have_value("FIRST-TAB")
    await first.screenshot("student-stale-edit-again", full_page=False)
    await dialog.get_by_role("button", name="Save booking").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator(".flash")).to_contain_text("saved")
    with school.connect() as connection:
        saved = connection.execute(
            text("SELECT referral_code, confirmed FROM bookings WHERE user_id = :user"),
            {"user": ZOYA},
        ).one()
    assert tuple(saved) == ("FIRST-TAB", 2)
    await second.page.reload()
    await second.page.wait_for_load_state("networkidle")
    await expect(second.page.locator('[data-field="status"]')).to_have_text("Confirmed")
