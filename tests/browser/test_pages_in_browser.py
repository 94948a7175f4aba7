"""The pages in a real headless Chromium: signing in, the dashboard, students, roles."""

from __future__ import annotations

import re

import pytest
from browser_tab import PHONE, ZOYA, OpenTab
from playwright.async_api import expect
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role

pytestmark = pytest.mark.browser

CHART_BLOCKS = ("growth", "activity", "funnel")


async def test_signing_in_with_a_wrong_then_the_right_password(open_tab: OpenTab) -> None:
    tab = await open_tab()
    await tab.sign_in(Role.operator, password="not the password")
    assert tab.page.url.endswith("/login")
    assert await tab.page.get_by_role("alert").inner_text() == "Wrong username or password."
    # The refused sign-in is answered 401, which the browser reports as a failed load.
    assert len(tab.console.take("status of 401")) == 1
    await tab.screenshot("login-refused")

    await tab.sign_in(Role.operator)
    assert tab.page.url == tab.base_url + "/"
    header = await tab.page.locator(".topbar .who").inner_text()
    assert "olga" in header and "operator" in header.lower()


async def test_the_dashboard_matches_the_api_and_draws_its_charts(open_tab: OpenTab) -> None:
    tab = await open_tab()
    await tab.sign_in(Role.viewer)
    page = tab.page
    for block in CHART_BLOCKS:
        await page.locator(f"#block-{block} .main-svg").first.wait_for()
    api = await (await page.request.get(tab.base_url + "/api/stats")).json()
    for name, value in api.items():
        shown = await page.locator(f'[data-figure="{name}"]').inner_text()
        assert int(shown.replace(",", "")) == value, name
    assert api["total_users"] > 200
    for block in ("courses", "streams", "top-events", "recent-bookings", "recent-events"):
        await page.locator(f"#block-{block} table").wait_for()
    await tab.screenshot("dashboard")
    await tab.screenshot("dashboard-top", full_page=False)

    await page.get_by_role("link", name="7 days").click()
    await page.wait_for_load_state("networkidle")
    assert page.url.endswith("/?days=7")
    await page.locator("#block-activity .main-svg").first.wait_for()
    days_drawn = await page.evaluate(
        "document.querySelector('#block-activity .chart').data[0].x.length"
    )
    assert days_drawn == 7


async def test_search_finds_a_student_whose_stream_change_sticks(
    open_tab: OpenTab, school: Engine
) -> None:
    tab = await open_tab()
    await tab.sign_in(Role.operator)
    await tab.open("/users")
    page = tab.page
    await page.locator('input[type="search"]').fill("zoya")
    found = page.locator("#results tbody tr")
    await expect(found).to_have_count(1)
    assert "zoya" in page.url
    assert "Zoya" in await found.first.inner_text()
    await found.first.get_by_role("link").click()
    await page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/users/{ZOYA}")
    assert await page.locator('[data-field="status"]').inner_text() == "Pending"

    with school.connect() as connection:
        other_stream = connection.scalar(
            text(
                "SELECT course_stream FROM bookings WHERE course_id = 1 "
                "AND course_stream <> 'PY-19' ORDER BY course_stream LIMIT 1"
            )
        )
    await page.get_by_label("Change stream").select_option(other_stream)
    await page.get_by_role("button", name="Save stream").click()
    await page.wait_for_load_state("networkidle")
    assert "is now in stream" in await page.locator(".flash").inner_text()
    await page.reload()
    await page.wait_for_load_state("networkidle")
    assert await page.locator('[data-field="course_stream"]').inner_text() == other_stream
    await tab.screenshot("student")

    await page.get_by_role("button", name="Edit").first.click()
    dialog = page.locator("[popover]:popover-open")
    await dialog.get_by_label("Status").select_option("Confirmed")
    await tab.screenshot("student-booking-edit", full_page=False)
    await dialog.get_by_role("button", name="Save booking").click()
    await page.wait_for_load_state("networkidle")
    assert "saved" in await page.locator(".flash").inner_text()
    assert await page.locator('[data-field="status"]').inner_text() == "Confirmed"

    await page.get_by_role("button", name="Edit").first.click()
    await dialog.get_by_label("Referral code").fill("NEWCODE")
    await dialog.get_by_label("Discount, %").fill("12.345")
    # Past the browser's own step check, as a pasted value or an older browser gets.
    async with page.expect_navigation():
        await dialog.locator("form").evaluate("form => form.submit()")
    await page.wait_for_load_state("networkidle")
    await expect(dialog.get_by_role("alert")).to_contain_text("no more than 2 decimal places")
    await expect(dialog.get_by_label("Referral code")).to_have_value("NEWCODE")
    await expect(dialog.get_by_label("Discount, %")).to_have_value("12.345")
    assert len(tab.console.take("status of 400")) == 1


async def test_a_viewer_cannot_reach_the_composer(open_tab: OpenTab) -> None:
    tab = await open_tab()
    await tab.sign_in(Role.viewer)
    await tab.open("/broadcasts")
    assert await tab.page.get_by_role("link", name="New broadcast").count() == 0
    response = await tab.open("/broadcasts/new")
    assert response.status == 403
    assert await tab.page.get_by_role("heading", name="Not allowed").is_visible()
    assert len(tab.console.take("status of 403")) == 1
    await tab.open(f"/users/{ZOYA}")
    assert await tab.page.get_by_role("button", name="Save stream").count() == 0
    await tab.open("/system")
    assert await tab.page.get_by_role("heading", name="Audit log").count() == 0
    assert await tab.page.get_by_role("heading", name="Run SQL").count() == 0


async def test_every_page_is_clean_on_a_desktop_and_a_phone(
    open_tab: OpenTab, school: Engine
) -> None:
    with school.connect() as connection:
        busiest = connection.scalar(
            text(
                "SELECT user_id FROM user_summaries "
                "ORDER BY bookings_count DESC, free_lessons_count DESC, events_count DESC, user_id "
                "LIMIT 1"
            )
        )
    for viewport, suffix in ((None, ""), (PHONE, "-phone")):
        tab = await (open_tab(PHONE) if viewport else open_tab())
        await tab.sign_in(Role.admin)
        for name, path in (
            ("dashboard", "/"),
            ("students", "/users"),
            ("student-page", f"/users/{busiest}"),
            ("broadcasts", "/broadcasts"),
            ("composer", "/broadcasts/new"),
            ("system", "/system"),
        ):
            response = await tab.open(path)
            assert response.status == 200, path
            if name == "dashboard":
                await tab.page.locator("#block-growth .main-svg").first.wait_for()
            overflow = await tab.page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, f"{path} is wider than the screen by {overflow}px"
            await tab.screenshot(f"{name}{suffix}")
            if name == "system" and viewport is None:
                form = tab.page.locator("#sql-form")
                await form.get_by_label("SQL").fill("UPDATE courses SET name = name")
                await form.get_by_label("What it is for").fill("a dry run from the browser")
                await form.get_by_role("button", name="Run").click()
                await expect(tab.page.locator("#sql-result")).to_contain_text(
                    "dry run: 1 statement(s) ran and were rolled back"
                )
            title = await tab.page.title()
            assert re.search(r"· coursedesk$", title), title
