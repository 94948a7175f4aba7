"""Tracked links without a database: tokens, PUBLIC_BASE_URL, and each parse mode's links
found and rewritten with the text a chat shows left as it was."""

from __future__ import annotations

import base64
import re

import pytest

from coursedesk.broadcasts.link_tokens import MAC_BYTES, LinkSigner
from coursedesk.broadcasts.personalisation import parse_template, personal_text
from coursedesk.broadcasts.tracking import (
    links_to_track,
    tracked_text,
    tracking_chosen,
)
from coursedesk.config import load_settings
from coursedesk.errors import ConfigError, InvalidInput
from coursedesk.telegram.formatting import shown_text, validate_text
from coursedesk.telegram.markup.links import find_links

KEY = bytes(range(32))
BASE = "https://school.example/go"


def address(position: int) -> str:
    return f"{BASE}/r/T{position}"


def test_a_token_names_its_recipient_and_link_and_nothing_else() -> None:
    signer = LinkSigner(KEY)
    for recipient_id, position in (
        (1, 0),
        (127, 1),
        (128, 300),
        (2**31 - 1, 7),
        (2**63 - 1, 2**15 - 1),
    ):
        token = signer.token(recipient_id, position)
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,32}", token), token
        assert signer.verify(token) == (recipient_id, position)
    assert len(signer.token(1_000_000, 3)) <= 24
    token = signer.token(5001, 2)
    assert LinkSigner(bytes(32)).verify(token) is None, "another key's token"
    assert signer.verify(token[:-1]) is None, "truncated"
    assert signer.verify(token + "A") is None, "lengthened"
    assert signer.verify("") is None
    assert signer.verify("not a token!") is None
    assert signer.verify("A" * 65) is None
    data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    other_recipient = bytes([0x8A]) + data[1:]  # 5001 becomes 5002: same MAC, other payload
    forged = base64.urlsafe_b64encode(other_recipient).rstrip(b"=").decode()
    assert signer.verify(forged) is None
    flipped = bytearray(data)
    flipped[-1] ^= 1
    assert signer.verify(base64.urlsafe_b64encode(flipped).rstrip(b"=").decode()) is None
    assert len(data) - MAC_BYTES == 3  # two bytes of recipient id, one of position
    # A varint spelt in more bytes than it needs is another token, never issued.
    long_form = bytes([0x89, 0xA7, 0x00]) + bytes([0x02]) + data[-MAC_BYTES:]
    assert signer.verify(base64.urlsafe_b64encode(long_form).rstrip(b"=").decode()) is None
    with pytest.raises(ValueError):
        signer.token(0, 1)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://school.example", "https://school.example"),
        ("https://school.example/", "https://school.example"),
        ("http://127.0.0.1:8000/links/", "http://127.0.0.1:8000/links"),
        ("", None),
    ],
)
def test_public_base_url_is_kept_without_its_trailing_slash(given: str, kept: str | None) -> None:
    assert load_settings(public_base_url=given).public_base_url == kept


@pytest.mark.parametrize(
    "wrong",
    [
        "school.example",
        "ftp://school.example",
        "https://school.example/?from=bot",
        "https://school.example/#top",
        "https://",
        "https://user:secret@school.example",
        "https://school.example:0",
        "https://school example",
    ],
)
def test_a_wrong_public_base_url_fails_naming_the_variable(wrong: str) -> None:
    with pytest.raises(ConfigError, match=r"^PUBLIC_BASE_URL: "):
        load_settings(public_base_url=wrong)


def test_tracking_is_the_default_only_with_a_public_base_url() -> None:
    assert tracking_chosen(None, BASE) is True
    assert tracking_chosen(False, BASE) is False
    assert tracking_chosen(None, None) is False
    assert tracking_chosen(False, None) is False
    with pytest.raises(InvalidInput, match="PUBLIC_BASE_URL is not set"):
        tracking_chosen(True, None)


def _rewritten(text: str, parse_mode: str | None) -> tuple[str, str, list[str]]:
    template = parse_template(text, "text")
    links = links_to_track(template, parse_mode, [])
    tracked = tracked_text(template, parse_mode, {url: i for i, url in enumerate(links)})
    assert tracked is not None
    return tracked.fill({}, address), tracked.parse_mode, links


def test_html_links_and_written_out_addresses_are_rewritten() -> None:
    text = (
        '<b>Book</b> at <a href="https://school.example/book?a=1&amp;b=2">the page</a> or '
        "https://school.example/book?a=1&amp;b=2. Code: <code>https://no.example</code>, "
        '<a href="tg://user?id=1">me</a>, see https://school.example/faq (or not).'
    )
    sent, mode, links = _rewritten(text, "HTML")
    assert links == ["https://school.example/book?a=1&b=2", "https://school.example/faq"]
    assert mode == "HTML"
    assert sent == (
        f'<b>Book</b> at <a href="{BASE}/r/T0">the page</a> or '
        f'<a href="{BASE}/r/T0">https://school.example/book?a=1&amp;b=2</a>. Code: '
        '<code>https://no.example</code>, <a href="tg://user?id=1">me</a>, see '
        f'<a href="{BASE}/r/T1">https://school.example/faq</a> (or not).'
    )
    assert shown_text(sent, "HTML") == shown_text(text, "HTML")


def test_markdown_v2_links_and_written_out_addresses_are_rewritten() -> None:
    text = (
        r"*Book* [here](https://school.example/a\)b) or https://school\.example/faq\. "
        r"`https://no.example` and ![👍](tg://emoji?id=5368324170671202286)"
    )
    sent, mode, links = _rewritten(text, "MarkdownV2")
    assert links == ["https://school.example/a)b", "https://school.example/faq"]
    assert mode == "MarkdownV2"
    assert sent == (
        f"*Book* [here]({BASE}/r/T0) or [https://school\\.example/faq]({BASE}/r/T1)\\. "
        r"`https://no.example` and ![👍](tg://emoji?id=5368324170671202286)"
    )
    assert shown_text(sent, "MarkdownV2") == shown_text(text, "MarkdownV2")


def test_a_plain_text_goes_as_html_that_shows_as_typed() -> None:
    text = (
        "Tom & Jerry <3: https://school.example/x?a=1&b=2, again https://school.example/x?a=1&b=2"
    )
    sent, mode, links = _rewritten(text, None)
    assert mode == "HTML" and links == ["https://school.example/x?a=1&b=2"]
    assert sent == (
        f'Tom &amp; Jerry &lt;3: <a href="{BASE}/r/T0">https://school.example/x?a=1&amp;b=2</a>, '
        f'again <a href="{BASE}/r/T0">https://school.example/x?a=1&amp;b=2</a>'
    )
    assert shown_text(sent, "HTML") == text


def test_an_address_with_a_variable_in_it_is_not_tracked_and_values_are_escaped() -> None:
    text = "Hi {{first_name|friend}}: https://school.example/u/{{username}} and https://school.example/"
    template = parse_template(text, "text")
    links = links_to_track(template, None, ["https://school.example/button"])
    assert links == ["https://school.example/", "https://school.example/button"]
    tracked = tracked_text(template, None, {url: i for i, url in enumerate(links)})
    assert tracked is not None
    sent = tracked.fill({"first_name": "<Ann & Bo>", "username": "ann"}, address)
    assert sent == (
        "Hi &lt;Ann &amp; Bo&gt;: https://school.example/u/ann and "
        f'<a href="{BASE}/r/T0">https://school.example/</a>'
    )
    assert shown_text(sent, "HTML") == (
        "Hi <Ann & Bo>: https://school.example/u/ann and https://school.example/"
    )


def test_private_use_characters_typed_in_the_text_arrive_as_typed() -> None:
    """Variables are marked with private-use characters while links are found; ones the
    operator typed (U+F8FF is Apple's logo) must neither be taken for a variable nor lost."""
    text = "\uf8ff {{first_name}} \ue001 {{username}}: https://school.example/ \ue000"
    template = parse_template(text, "text")
    links = links_to_track(template, None, [])
    tracked = tracked_text(template, None, {url: i for i, url in enumerate(links)})
    assert tracked is not None
    sent = tracked.fill({"first_name": "Ann", "username": "ann_u"}, address)
    assert sent == (
        f'\uf8ff Ann \ue001 ann_u: <a href="{BASE}/r/T0">https://school.example/</a> \ue000'
    )
    measured = personal_text(text, None, caption=False)
    assert measured is not None
    assert measured.measure.length_for({"first_name": "Ann", "username": "ann_u"}) == len(
        shown_text(sent, "HTML")
    )


def test_tracking_leaves_the_length_a_chat_counts_as_it_was() -> None:
    link = "https://school.example/page"
    body = " ".join([link] * (4000 // (len(link) + 1)))
    text = body + " " + "x" * (4096 - len(body) - 1)
    validate_text(text, None)
    sent, mode, _ = _rewritten(text, None)
    assert len(sent) > 4096
    validate_text(sent, mode)
    assert len(shown_text(sent, mode)) == len(text.strip()) == 4096


@pytest.mark.parametrize(
    ("text", "parse_mode", "urls"),
    [
        ("no link here, not even school.example", None, []),
        ("mailto:a@b.example and ftp://files.example", None, []),
        ("(see https://a.example/x_(y))", None, ["https://a.example/x_(y)"]),
        ("«https://a.example/»", None, ["https://a.example/"]),
        ("HTTPS://A.example/Up", None, ["HTTPS://A.example/Up"]),
        (
            "<pre>https://a.example</pre><a href='https://b.example'>b</a>",
            "HTML",
            ["https://b.example"],
        ),
        ('<a href="https://a.example">https://inside.example</a>', "HTML", ["https://a.example"]),
        (r"```\nhttps://a\.example\n``` [x](http://b.example)", "MarkdownV2", ["http://b.example"]),
    ],
)
def test_links_found(text: str, parse_mode: str | None, urls: list[str]) -> None:
    assert [link.url for link in find_links(text, parse_mode)] == urls
