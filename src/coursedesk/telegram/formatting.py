"""Telegram message formatting: parse_mode rules checked before sending, and a safe preview."""

from __future__ import annotations

import html
from urllib.parse import urlsplit

from coursedesk.telegram.markup import (
    Content,
    Entity,
    FormattingError,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    plain_text_of,
)

__all__ = [
    "MAX_CAPTION_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "FormattingError",
    "TooLongError",
    "normalize_parse_mode",
    "plain_caption",
    "plain_text",
    "render_preview_html",
    "shown_text",
    "validate_caption",
    "validate_text",
]

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024

_PARSE_MODES = {"html": "HTML", "markdownv2": "MarkdownV2", "markdown": "Markdown"}
_PREVIEW_TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strike": "s",
    "code": "code",
    "blockquote": "blockquote",
}
_SAFE_URL_SCHEMES = frozenset({"http", "https", "tg", "mailto"})


def normalize_parse_mode(parse_mode: str | None) -> str | None:
    """The Bot API's spelling of a parse_mode (it accepts any case); None or "" is plain text."""
    if not parse_mode:
        return None
    canonical = _PARSE_MODES.get(parse_mode.lower())
    if canonical is None:
        raise FormattingError(
            f"unsupported parse_mode {parse_mode!r}: use HTML, MarkdownV2, Markdown or none"
        )
    return canonical


class TooLongError(FormattingError):
    """A text or caption longer than Telegram takes, counted after formatting."""

    def __init__(self, what: str, length: int, limit: int) -> None:
        super().__init__(
            f"{what} is too long: {length} characters after formatting, the limit is {limit}"
        )
        self.length = length
        self.limit = limit


def _content(text: str, parse_mode: str | None) -> Content:
    mode = normalize_parse_mode(parse_mode)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormattingError("text must be encoded in UTF-8") from None
    if mode == "HTML":
        content = parse_html(text)
    elif mode == "MarkdownV2":
        content = parse_markdown_v2(text)
    elif mode == "Markdown":
        content = parse_markdown(text)
    else:
        content = [text]
    return content


def _parse(text: str, parse_mode: str | None, *, caption: bool = False) -> Content:
    content = _content(text, parse_mode)
    # Telegram trims the text it shows, so whitespace around it neither counts nor is a message.
    length = len(plain_text_of(content).strip())
    if caption:
        # A caption may be empty: the media is the message.
        if length > MAX_CAPTION_LENGTH:
            raise TooLongError("caption", length, MAX_CAPTION_LENGTH)
        return content
    if length == 0:
        raise FormattingError("message text is empty")
    if length > MAX_MESSAGE_LENGTH:
        raise TooLongError("message", length, MAX_MESSAGE_LENGTH)
    return content


def validate_text(text: str, parse_mode: str | None) -> None:
    """Refuse, as the Bot API's sendMessage would, text that Telegram answers 400 to."""
    _parse(text, parse_mode)


def plain_text(text: str, parse_mode: str | None) -> str:
    """The text a chat shows once the markup is taken out (a Message's `text`)."""
    return plain_text_of(_parse(text, parse_mode)).strip()


def validate_caption(caption: str, parse_mode: str | None) -> None:
    """Refuse, as the Bot API's sendPhoto and the like would, a caption Telegram answers 400 to.

    An empty caption is allowed; past MAX_CAPTION_LENGTH characters shown it is refused.
    """
    _parse(caption, parse_mode, caption=True)


def plain_caption(caption: str, parse_mode: str | None) -> str:
    """The caption a chat shows under the media once the markup is taken out."""
    return plain_text_of(_parse(caption, parse_mode, caption=True)).strip()


def shown_text(text: str, parse_mode: str | None) -> str:
    """What a chat shows of `text`, however long: only its markup is checked."""
    return plain_text_of(_content(text, parse_mode)).strip()


def render_preview_html(text: str, parse_mode: str | None) -> str:
    """Safe HTML of the message as Telegram shows it; show it with `white-space: pre-wrap`.

    Only b, i, u, s, code, pre, blockquote, span.tg-spoiler and a (http, https, tg and
    mailto links) come out; all other text is escaped. Raises FormattingError for text
    Telegram would refuse.
    """
    parts: list[str] = []
    _render(_parse(text, parse_mode), parts)
    return "".join(parts)


def _render(content: Content, parts: list[str]) -> None:
    for node in content:
        if isinstance(node, str):
            parts.append(html.escape(node, quote=False))
        else:
            _render_entity(node, parts)


def _render_entity(entity: Entity, parts: list[str]) -> None:
    if entity.kind in ("code", "pre"):
        # Telegram shows code verbatim: formatting nested in it is dropped.
        code = html.escape(plain_text_of(entity.children), quote=False)
        if entity.kind == "code":
            parts.append(f"<code>{code}</code>")
        elif entity.language:
            language = html.escape(entity.language, quote=True)
            parts.append(f'<pre><code class="language-{language}">{code}</code></pre>')
        else:
            parts.append(f"<pre>{code}</pre>")
        return
    if entity.kind == "spoiler":
        opening, closing = '<span class="tg-spoiler">', "</span>"
    elif entity.kind == "link":
        href = _safe_href(entity.url)
        if href is None:
            _render(entity.children, parts)
            return
        opening, closing = f'<a href="{html.escape(href, quote=True)}">', "</a>"
    elif entity.kind in _PREVIEW_TAGS:
        tag = _PREVIEW_TAGS[entity.kind]
        opening, closing = f"<{tag}>", f"</{tag}>"
    else:
        _render(entity.children, parts)
        return
    parts.append(opening)
    _render(entity.children, parts)
    parts.append(closing)


def _safe_href(url: str | None) -> str | None:
    if not url or not url.strip():
        return None
    url = url.strip()
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if not scheme:
        # Telegram links a bare "example.com" as a web address.
        return f"http://{url}"
    return url if scheme in _SAFE_URL_SCHEMES else None
