"""Message formatting: what Telegram refuses, what it shows, and a preview that is safe HTML."""

from __future__ import annotations

import pytest

from coursedesk.telegram.formatting import (
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    FormattingError,
    TooLongError,
    normalize_parse_mode,
    plain_caption,
    plain_text,
    render_preview_html,
    validate_caption,
    validate_text,
)


@pytest.mark.parametrize(
    ("text", "parse_mode"),
    [
        ("Plain <b> & 1.5 *stars*", None),
        ("<b>bold</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <ins>n</ins>", "HTML"),
        ("<s>s</s> <strike>k</strike> <del>d</del> <tg-spoiler>t</tg-spoiler>", "HTML"),
        ('<span class="tg-spoiler">hidden</span> <a href="https://example.com">link</a>', "HTML"),
        ("<b>bold <i>and italic</i></b> &lt;tag&gt; &amp; &quot; &#128512; &#x1F600;", "HTML"),
        ('<pre><code class="language-python">print("&lt;hi&gt;")</code></pre>', "HTML"),
        ("<blockquote>quoted</blockquote> <blockquote expandable>more</blockquote>", "HTML"),
        ("a > b and a & b are fine; &nbsp; stays as written", "HTML"),
        ("<B>case</B> <A HREF='https://example.com'>x</A>", "HTML"),
        ("*bold* _italic_ __underline__ ~strike~ ||spoiler||", "MarkdownV2"),
        ("*bold _italic bold ~strike~ __underline__ italic_ bold*", "MarkdownV2"),
        (
            "[link](https://example.com/a_(b\\)) ![👍](tg://emoji?id=5368324170671202286)",
            "MarkdownV2",
        ),
        ("`code with * and _` and ```python\nprint('x')\n```", "MarkdownV2"),
        ("Escaped \\. \\! \\- \\( \\) \\# \\+ \\= \\{ \\} \\> \\| \\\\", "MarkdownV2"),
        (">a quote\n>on two lines\nand after", "MarkdownV2"),
        ("**>an expandable quote\n>hidden part||\nafter", "MarkdownV2"),
        ("*bold* _italic_ `code` [link](http://example.com) ```\npre```", "Markdown"),
        ("1.5 stars! (really)", "Markdown"),
    ],
)
def test_text_telegram_accepts_is_valid(text: str, parse_mode: str | None) -> None:
    validate_text(text, parse_mode)


@pytest.mark.parametrize(
    ("text", "parse_mode", "reason"),
    [
        ("<b>unclosed", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<foo>x</foo>", "HTML", 'Unsupported start tag "foo" at byte offset 0'),
        ("<b>x</i>", "HTML", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "HTML", "Unexpected end tag at byte offset 1"),
        ("1 < 2", "HTML", 'Unsupported start tag "" at byte offset 2'),
        ("<b", "HTML", "Unclosed start tag at byte offset 0"),
        ('<a href="x>y', "HTML", "Unclosed start tag at byte offset 0"),
        ("<b>x</b", "HTML", "Unclosed end tag at byte offset 4"),
        ("<br/>line", "HTML", 'Unsupported start tag "br/" at byte offset 0'),
        ('<span class="red">x</span>', "HTML", 'Tag "span" must have class "tg-spoiler"'),
        ("привет <x>", "HTML", 'Unsupported start tag "x" at byte offset 13'),
        ("Version 1.5", "MarkdownV2", "Character '.' is reserved"),
        ("Hello!", "MarkdownV2", "Character '!' is reserved"),
        ("a-b", "MarkdownV2", "Character '-' is reserved"),
        ("(aside)", "MarkdownV2", "Character '(' is reserved"),
        ("a|b", "MarkdownV2", "Character '|' is reserved"),
        ("x > y", "MarkdownV2", "Character '>' is reserved"),
        ("*bold", "MarkdownV2", "Can't find end of Bold entity at byte offset 0"),
        ("ok _italic", "MarkdownV2", "Can't find end of Italic entity at byte offset 3"),
        ("`code", "MarkdownV2", "Can't find end of Code entity at byte offset 0"),
        ("```\npre", "MarkdownV2", "Can't find end of Pre entity at byte offset 0"),
        ("[link](http://x", "MarkdownV2", "Can't find end of a URL at byte offset 6"),
        ("*bold", "Markdown", "Can't find end of the entity starting at byte offset 0"),
        ("[label", "Markdown", "Can't find end of the entity starting at byte offset 0"),
    ],
)
def test_markup_telegram_refuses_says_why_as_telegram_does(
    text: str, parse_mode: str, reason: str
) -> None:
    with pytest.raises(FormattingError) as raised:
        validate_text(text, parse_mode)

    assert str(raised.value).startswith("can't parse entities: ")
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("text", "parse_mode"),
    [("", None), ("  \n ", None), ("<b></b>", "HTML"), ("<b> </b>", "HTML"), ("**", "MarkdownV2")],
)
def test_empty_text_is_refused(text: str, parse_mode: str | None) -> None:
    with pytest.raises(FormattingError, match="message text is empty"):
        validate_text(text, parse_mode)


def test_the_length_limit_counts_characters_after_the_markup_is_removed() -> None:
    longest = "я" * MAX_MESSAGE_LENGTH

    validate_text(f"<b>{longest}</b>", "HTML")
    validate_text(f"*{longest}*", "MarkdownV2")
    validate_text(f"{longest}\n\n", None)
    with pytest.raises(FormattingError, match="message is too long: 4097 characters"):
        validate_text(f"<i>{longest}!</i>", "HTML")
    with pytest.raises(FormattingError, match="the limit is 4096"):
        validate_text(longest + "x", None)


def test_a_caption_may_be_empty_and_holds_1024_characters_after_the_markup() -> None:
    longest = "ж" * MAX_CAPTION_LENGTH

    assert plain_caption("", None) == ""
    assert plain_caption("<b> </b>", "HTML") == ""
    assert plain_caption(f"<b>{longest}</b>", "HTML") == longest
    validate_caption(f"*{longest}*", "MarkdownV2")
    with pytest.raises(TooLongError, match="caption is too long: 1025 characters") as raised:
        validate_caption(f"<i>{longest}!</i>", "HTML")
    assert (raised.value.length, raised.value.limit) == (1025, 1024)
    with pytest.raises(FormattingError, match="can't parse entities"):
        validate_caption("<b>unclosed", "HTML")


def test_an_overlong_text_is_a_too_long_error_with_its_figures() -> None:
    with pytest.raises(TooLongError) as raised:
        validate_text("x" * (MAX_MESSAGE_LENGTH + 3), None)

    assert (raised.value.length, raised.value.limit) == (MAX_MESSAGE_LENGTH + 3, 4096)
    assert isinstance(raised.value, FormattingError)


def test_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(FormattingError, match="UTF-8"):
        validate_text("broken \ud800 surrogate", None)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (None, None),
        ("", None),
        ("html", "HTML"),
        ("HTML", "HTML"),
        ("markdownv2", "MarkdownV2"),
        ("MarkdownV2", "MarkdownV2"),
        ("Markdown", "Markdown"),
    ],
)
def test_parse_modes_are_recognised_in_any_case(given: str | None, canonical: str | None) -> None:
    assert normalize_parse_mode(given) == canonical


def test_an_unknown_parse_mode_is_refused() -> None:
    with pytest.raises(FormattingError, match="unsupported parse_mode 'Fancy'"):
        validate_text("hello", "Fancy")


@pytest.mark.parametrize(
    ("text", "parse_mode", "shown"),
    [
        ("<b>Hi</b> &lt;there&gt; &amp; &#33;", "HTML", "Hi <there> & !"),
        ("*Hi* \\_there\\_ [link](http://x.y)", "MarkdownV2", "Hi _there_ link"),
        ("*Hi* _there_", "Markdown", "Hi there"),
        ("  <b>Hi</b>  ", None, "<b>Hi</b>"),
    ],
)
def test_plain_text_is_what_the_chat_shows(text: str, parse_mode: str | None, shown: str) -> None:
    assert plain_text(text, parse_mode) == shown


@pytest.mark.parametrize(
    ("text", "parse_mode", "preview"),
    [
        ("<b>1</b> < 2", None, "&lt;b&gt;1&lt;/b&gt; &lt; 2"),
        (
            "<strong>S</strong><em>E</em><ins>I</ins><del>D</del><tg-spoiler>T</tg-spoiler>",
            "HTML",
            '<b>S</b><i>E</i><u>I</u><s>D</s><span class="tg-spoiler">T</span>',
        ),
        ("a &amp; b &lt;c&gt; &quot;q&quot;", "HTML", 'a &amp; b &lt;c&gt; "q"'),
        (
            '<a href="https://example.com/?a=1&amp;b=&quot;2&quot;">go</a>',
            "HTML",
            '<a href="https://example.com/?a=1&amp;b=&quot;2&quot;">go</a>',
        ),
        ('<a href="javascript:alert(1)">click</a>', "HTML", "click"),
        ('<a href=" JavaScript:alert(1)">click</a>', "HTML", "click"),
        ('<a href="example.com">site</a>', "HTML", '<a href="http://example.com">site</a>'),
        ('<a href="tg://user?id=1">me</a>', "HTML", '<a href="tg://user?id=1">me</a>'),
        ("<code><b>not bold</b></code>", "HTML", "<code>not bold</code>"),
        (
            '<pre><code class="language-py">x = "&lt;"</code></pre>',
            "HTML",
            '<pre><code class="language-py">x = "&lt;"</code></pre>',
        ),
        ("<pre>raw</pre>", "HTML", "<pre>raw</pre>"),
        ("<blockquote>q</blockquote>", "HTML", "<blockquote>q</blockquote>"),
        ('<tg-emoji emoji-id="1">👍</tg-emoji>', "HTML", "👍"),
        (
            "*b* _i_ __u__ ~s~ ||p|| `c<`",
            "MarkdownV2",
            '<b>b</b> <i>i</i> <u>u</u> <s>s</s> <span class="tg-spoiler">p</span> '
            "<code>c&lt;</code>",
        ),
        (
            "[x](https://e.com/\\)) and \\<script\\>",
            "MarkdownV2",
            '<a href="https://e.com/)">x</a> and &lt;script&gt;',
        ),
        (
            "```python\nif a < b: pass```",
            "MarkdownV2",
            '<pre><code class="language-python">if a &lt; b: pass</code></pre>',
        ),
        (">one\n>two\nthree", "MarkdownV2", "<blockquote>one\ntwo</blockquote>\nthree"),
        ("*b* [t](http://a.b)", "Markdown", '<b>b</b> <a href="http://a.b">t</a>'),
    ],
)
def test_the_preview_shows_telegrams_formatting_as_safe_html(
    text: str, parse_mode: str | None, preview: str
) -> None:
    assert render_preview_html(text, parse_mode) == preview


def test_the_preview_refuses_what_telegram_would_refuse() -> None:
    with pytest.raises(FormattingError, match="Unsupported start tag"):
        render_preview_html("<script>alert(1)</script>", "HTML")


def test_attribute_injection_stays_inside_the_attribute() -> None:
    preview = render_preview_html("<a href='https://x.y/\" onclick=\"alert(1)'>x</a>", "HTML")

    assert preview == '<a href="https://x.y/&quot; onclick=&quot;alert(1)">x</a>'
