"""The composer in a browser: a photo by file input and by drag and drop, a link button,
a variable from the menu, the preview as a student, confirmed and delivered."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from browser_tab import PHONE, ZOYA, OpenTab, Tab
from playwright.async_api import expect
from test_broadcast_in_browser import (  # noqa: F401 - fixtures used by name
    DELIVERED_WITHIN_MS,
    PUBLIC_BASE_URL,
    settings,
    standin_server,
    worker,
)

from coursedesk.accounts.roles import Role
from coursedesk.telegram.standin import StandinThread

pytestmark = pytest.mark.browser

TIMETABLE = "/broadcasts?stream=timetable"
"""The button's link, on the live app itself (no machine here reaches another host)."""


def png(width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> bytes:
    """A real PNG of a vertical gradient, for the browser to draw."""
    rows = bytearray()
    for y in range(height):
        share = y / max(height - 1, 1)
        pixel = bytes(round(a + (b - a) * share) for a, b in zip(top, bottom, strict=True))
        rows += b"\x00" + pixel * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


POSTER = png(640, 360, (53, 89, 224), (120, 200, 170))
SECOND = png(320, 320, (230, 140, 60), (250, 220, 120))


async def _drop(tab: Tab, content: bytes, name: str) -> None:
    """Drop a file on the drop zone as a person dragging it from their desktop would."""
    await tab.page.evaluate(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            const zone = document.getElementById("drop-zone");
            for (const type of ["dragenter", "dragover", "drop"]) {
                const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
                zone.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        [base64.b64encode(content).decode(), name],
    )


async def _compose(tab: Tab) -> None:
    """A photo, a link button, `{{first_name}}`, Zoya as the audience and the preview."""
    page = tab.page
    await tab.open("/broadcasts/new")
    text = page.get_by_label("Text", exact=True)
    await text.fill("Hi ")
    await page.locator("#variables-menu summary").click()
    await page.locator('[data-variable="first_name"]').click()
    await text.press("End")
    await text.type(", the spring stream starts on Monday. See the timetable:")
    assert await text.input_value() == (
        "Hi {{first_name}}, the spring stream starts on Monday. See the timetable:"
    )
    await page.locator("#media-file").set_input_files(
        {"name": "poster.png", "mimeType": "image/png", "buffer": POSTER}
    )
    await expect(page.locator('#media-list li[data-kind="photo"]')).to_have_count(1)
    await page.locator("#add-button-row").click()
    await page.locator('#button-rows input[name="button_text"]').fill("Timetable")
    await page.locator('#button-rows input[name="button_value"]').fill(tab.base_url + TIMETABLE)
    await page.locator('input[name="audience_type"][value="users"]').check()
    await page.locator("#user-ids").fill(str(ZOYA))
    await expect(page.locator("#recipient-count [data-recipients]")).to_have_text("1")
    await page.locator("#preview-search").fill("zoya")
    await page.locator("#preview-suggestions button").first.click()
    bubble = page.locator("#preview .bubble")
    await expect(bubble.locator(".bubble-text")).to_contain_text("Hi Zoya, the spring stream")
    await expect(page.locator("#preview [data-preview-as]")).to_have_text(
        f"As Zoya ({ZOYA}) sees it"
    )
    await expect(bubble.locator("img")).to_have_count(1)
    await expect(page.locator("#preview .bubble-button")).to_have_text("Timetable")


async def test_a_photo_a_button_and_a_name_are_composed_previewed_and_delivered(
    open_tab: OpenTab,
    standin_server: StandinThread,  # noqa: F811 - the fixture imported above
    worker: None,  # noqa: F811
) -> None:
    standin = standin_server.standin
    tab = await open_tab()
    await tab.sign_in(Role.operator)
    page = tab.page
    await _compose(tab)

    # A second photo dropped on the zone makes an album, which cannot carry the button.
    await _drop(tab, SECOND, "second.png")
    await expect(page.locator("#media-list li[data-media-id]")).to_have_count(2)
    await expect(page.locator("#buttons-problem")).to_contain_text("no buttons under an album")
    await expect(page.locator("#preview .bubble img")).to_have_count(2)
    await page.get_by_role("button", name="Remove second.png").click()
    await expect(page.locator("#media-list li[data-media-id]")).to_have_count(1)
    await expect(page.locator("#buttons-problem")).to_be_hidden()
    await expect(page.locator("#preview .bubble img")).to_have_count(1)
    # The browser must really have drawn the photo the server serves back.
    await expect(page.locator("#preview .bubble img")).to_have_js_property("naturalWidth", 640)

    await page.locator('input[name="pin"]').check()
    await page.evaluate("window.scrollTo(0, 0)")
    await tab.screenshot("composer-content", full_page=False)

    await page.get_by_role("button", name="Review and send…").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator("#confirm-count [data-recipients]")).to_have_text("1")
    await expect(page.locator(".bubble-text")).to_contain_text("Hi Zoya")
    assert standin.received() == [], "nothing is sent before the confirmation"
    await tab.screenshot("composer-content-confirm")
    await page.locator("#confirm-send").click()
    await page.wait_for_load_state("networkidle")
    await expect(page.locator('[data-field="status"] .badge')).to_have_text(
        "Sent", timeout=DELIVERED_WITHIN_MS
    )
    [received] = standin.received(ZOYA)
    assert received.kind == "photo"
    assert received.text == ("Hi Zoya, the spring stream starts on Monday. See the timetable:")
    assert [file.kind for file in received.files] == ["photo"]
    assert received.files[0].size == len(POSTER)
    [[button]] = received.buttons
    assert button.text == "Timetable" and button.url is not None
    assert button.url.startswith(f"{PUBLIC_BASE_URL}/r/"), "sent through the click counter"
    await expect(page.locator("#duplicate")).to_be_visible()

    # Zoya taps the button: the app counts the click and leads her on to the link.
    await tab.open(button.url.removeprefix(PUBLIC_BASE_URL))
    assert page.url == tab.base_url + TIMETABLE
    await page.go_back()
    await page.reload()
    clicks = page.locator('[data-link-clicks="0"] td')
    await expect(clicks).to_have_text([tab.base_url + TIMETABLE, "1", "1"])
    await expect(page.get_by_text("1 recipient clicked a link")).to_be_visible()
    await tab.screenshot("broadcast-with-photo")


async def test_the_composer_at_phone_width(open_tab: OpenTab) -> None:
    tab = await open_tab(PHONE)
    await tab.sign_in(Role.operator)
    await _compose(tab)
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the composer scrolls sideways on a phone"
    await tab.screenshot("composer-phone")
