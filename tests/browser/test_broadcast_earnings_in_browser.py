"""A broadcast's outcome beside its control group, as a browser shows it."""

from __future__ import annotations

import pytest
from browser_tab import OpenTab
from playwright.async_api import expect
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role

pytestmark = pytest.mark.browser

SENT_AT = "timestamptz '2025-03-03 09:00:00+00'"


def _broadcast_with_a_control_group(engine: Engine) -> int:
    """400 delivered (users 8,000,001 on), 100 held back; 80 and 4 of them booked the next
    day, and one in ten of each group attended a lesson two days on."""
    with engine.begin() as connection:
        message_id = connection.execute(
            text(
                "INSERT INTO message_history (message_text, status, recipient_type, "
                "recipient_group, audience, holdout_percent, started_at, sent_at) VALUES "
                "('Spring offer', 'sent', 'group', 'all', '{\"type\": \"all\"}', 20, "
                f"{SENT_AT}, {SENT_AT}) RETURNING id"
            )
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO message_recipients (message_id, user_id, delivery_status, sent_at) "
                f"SELECT :m, 8000000 + g, CASE WHEN g > 400 THEN 'holdout' ELSE 'sent' END, "
                f"CASE WHEN g > 400 THEN NULL ELSE {SENT_AT} END "
                "FROM generate_series(1, 500) AS g"
            ),
            {"m": message_id},
        )
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, course_id, confirmed, created_at) "
                f"SELECT 8000000 + g, 1, 2, {SENT_AT} + interval '1 day' "
                "FROM generate_series(1, 500) AS g WHERE g <= 80 OR g BETWEEN 401 AND 404"
            )
        )
        connection.execute(
            text(
                "INSERT INTO events (user_id, event_type, created_at) "
                f"SELECT 8000000 + g, 'lesson_attended', {SENT_AT} + interval '2 days' "
                "FROM generate_series(10, 500, 10) AS g"
            )
        )
    return int(message_id)


async def test_the_outcome_card_and_its_window(open_tab: OpenTab, school: Engine) -> None:
    message_id = _broadcast_with_a_control_group(school)
    tab = await open_tab()
    await tab.sign_in(Role.viewer)
    page = tab.page
    await tab.open(f"/broadcasts/{message_id}")
    card = page.locator("#earnings")
    await expect(card.get_by_role("heading", name="Outcome")).to_be_visible()
    booked = card.locator('tr[data-figure-row="booked"]')
    await expect(booked.locator('[data-group="sent"]')).to_have_text("80 20.0 %")
    await expect(booked.locator('[data-group="holdout"]')).to_have_text("4 4.0 %")
    await expect(booked.locator("[data-verdict]")).to_contain_text("Higher than the control")
    attended = card.locator('tr[data-figure-row="attended"]')
    await expect(attended.locator("[data-verdict]")).to_contain_text("noise")
    await expect(page.locator('#broadcast [data-figure="holdout"]')).to_have_text("100")
    await tab.screenshot("broadcast-outcome")

    await card.get_by_label("Days after sending").select_option("1")
    await card.get_by_role("button", name="Show").click()
    await page.wait_for_load_state("networkidle")
    assert "window_days=1" in page.url
    await expect(booked.locator('[data-group="sent"]')).to_have_text("0 0.0 %")
    await expect(card.locator("a[download]")).to_have_attribute(
        "href", f"/api/messages/{message_id}/outcome.csv?window_days=1"
    )
    assert tab.console.errors == [] and tab.console.foreign_requests == []
