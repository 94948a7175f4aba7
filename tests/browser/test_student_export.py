"""The students page's CSV export, in a real headless Chromium: it downloads what the list
shows after a live search, in a file Excel reads as UTF-8."""

from __future__ import annotations

import csv
import io

import pytest
from browser_tab import ZOYA, OpenTab
from playwright.async_api import expect

from coursedesk.accounts.roles import Role

pytestmark = pytest.mark.browser


async def test_the_export_follows_the_live_search(open_tab: OpenTab) -> None:
    tab = await open_tab()
    await tab.sign_in(Role.viewer)
    await tab.open("/users")
    page = tab.page
    await page.locator('input[type="search"]').fill("zoya")
    await expect(page.locator("#results tbody tr")).to_have_count(1)
    await expect(page.locator("#export-csv")).to_have_attribute(
        "href", "/api/users?format=csv&search=zoya"
    )

    async with page.expect_download() as started:
        await page.get_by_role("link", name="Export CSV").click()
    download = await started.value
    content = (await download.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == [str(ZOYA)]
