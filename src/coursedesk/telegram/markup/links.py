"""Where a text's web links are in its source, so that they can be rewritten in place.

A link is an `http://` or `https://` address a chat would open: the target of an HTML
`<a href>` or a MarkdownV2 `[text](url)`, or an address written out in the text, which
Telegram links by itself. Addresses in code, in a link's own text and in custom emoji are
not links. Each is found with its span in the source (its markup and escapes included),
so that rewriting it leaves every other character of the text as it was.

Private-use characters (U+E000-U+F8FF) stand for values filled in later
(broadcasts/personalisation.py): an address that holds or touches one is not found, since
what a chat links depends on the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from coursedesk.telegram.markup.html import (
    HTML_ENTITY,
    HTML_TAG_NAME_END,
    decode_html_entity,
    read_html_attributes,
)
from coursedesk.telegram.markup.markdown import read_link_url

LinkForm = Literal["anchor", "target", "bare"]
"""An HTML `<a …>` start tag, a MarkdownV2 link's `(url)`, an address written out."""

_PLACEHOLDERS = "\ue000-\uf8ff"
_BARE_URL = re.compile(rf"(?<![\w{_PLACEHOLDERS}])https?://[^\s<>\"{_PLACEHOLDERS}]+", re.I)
_TRAILING = ".,;:!?'\"»"
_QUIET_HTML_TAGS = frozenset({"a", "code", "pre", "tg-emoji"})
_MARKDOWN_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_PLACEHOLDER = re.compile(f"[{_PLACEHOLDERS}]")


@dataclass(frozen=True, slots=True)
class FoundLink:
    start: int
    end: int
    """The source span that carries the link: the start tag, the `(url)`, the address."""
    url: str
    form: LinkForm


def is_web_url(url: str | None) -> bool:
    """An http(s) address with a host, as typed (no space around it)."""
    if not url or url != url.strip() or _PLACEHOLDER.search(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def find_links(text: str, parse_mode: str | None) -> list[FoundLink]:
    """The web links of `text` in source order; the text must be valid for its mode."""
    if parse_mode == "HTML":
        return _html_links(text)
    if parse_mode == "MarkdownV2":
        return _markdown_v2_links(text)
    return _bare_links(text, list(range(len(text) + 1)))


def _bare_links(shown: str, sources: list[int]) -> list[FoundLink]:
    """The addresses written out in `shown`, a stretch of text a chat shows; `sources[i]`
    is where its character i starts in the source, `sources[-1]` where the stretch ends."""
    found = []
    for match in _BARE_URL.finditer(shown):
        if shown[match.end() : match.end() + 1] and _PLACEHOLDER.match(shown, match.end()):
            continue
        url = _trimmed(match.group())
        if is_web_url(url):
            start = match.start()
            found.append(FoundLink(sources[start], sources[start + len(url)], url, "bare"))
    return found


def _trimmed(url: str) -> str:
    """An address without the punctuation that ends the sentence around it, nor a closing
    bracket it did not open."""
    while url and (url[-1] in _TRAILING or _unopened(url, url[-1])):
        url = url[:-1]
    return url


def _unopened(url: str, last: str) -> bool:
    opening = {")": "(", "]": "["}.get(last)
    return opening is not None and url.count(opening) < url.count(last)


def _html_links(text: str) -> list[FoundLink]:
    found: list[FoundLink] = []
    open_tags: list[str] = []
    position = 0
    while (tag_start := text.find("<", position)) != -1:
        if not _QUIET_HTML_TAGS.intersection(open_tags):
            found.extend(_html_bare_links(text, position, tag_start))
        if text.startswith("</", tag_start):
            if open_tags:
                open_tags.pop()
            position = text.index(">", tag_start) + 1
            continue
        name_end = HTML_TAG_NAME_END.search(text, tag_start + 1)
        if name_end is None:
            return found
        name = text[tag_start + 1 : name_end.start()].lower()
        attributes, position = read_html_attributes(text, name_end.start(), 0)
        open_tags.append(name)
        href = attributes.get("href")
        if name == "a" and href is not None and is_web_url(href):
            found.append(FoundLink(tag_start, position, href, "anchor"))
    if not open_tags:
        found.extend(_html_bare_links(text, position, len(text)))
    return found


def _html_bare_links(text: str, start: int, end: int) -> list[FoundLink]:
    """The addresses in the HTML text text[start:end], its entities decoded as a chat
    shows them."""
    shown: list[str] = []
    sources: list[int] = []
    position = start
    for match in HTML_ENTITY.finditer(text, start, end):
        shown.extend(text[position : match.start()])
        sources.extend(range(position, match.start()))
        decoded = decode_html_entity(match)
        if decoded == match.group():
            shown.extend(decoded)
            sources.extend(range(match.start(), match.end()))
        else:
            shown.append(decoded)
            sources.append(match.start())
        position = match.end()
    shown.extend(text[position:end])
    sources.extend(range(position, end))
    sources.append(end)
    return _bare_links("".join(shown), sources)


def _markdown_v2_links(text: str) -> list[FoundLink]:
    found: list[FoundLink] = []
    labels: list[str] = []
    """The links and custom emoji whose text is being read."""
    code: str | None = None
    """The marker that ends the code or pre block being read."""
    shown: list[str] = []
    sources: list[int] = []

    def end_of_text(position: int) -> None:
        if shown and not labels:
            found.extend(_bare_links("".join(shown), [*sources, position]))
        shown.clear()
        sources.clear()

    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text) and 0 < ord(text[position + 1]) <= 126:
            if code is None:
                shown.append(text[position + 1])
                sources.append(position)
            position += 2
            continue
        if code is not None:
            if text.startswith(code, position):
                code = None
                position += 3 if text.startswith("```", position) else 1
            else:
                position += 1
            continue
        if char not in _MARKDOWN_V2_RESERVED:
            shown.append(char)
            sources.append(position)
            position += 1
            continue
        end_of_text(position)
        if char == "`":
            code = "```" if text.startswith("```", position) else "`"
            position += len(code)
        elif char == "[":
            labels.append("link")
            position += 1
        elif text.startswith("![", position):
            labels.append("emoji")
            position += 2
        elif char == "]" and labels:
            kind = labels.pop()
            position = _markdown_v2_target(text, position, kind, found)
        else:
            position += 1
    end_of_text(position)
    return found


def _markdown_v2_target(text: str, bracket: int, kind: str, found: list[FoundLink]) -> int:
    """Read the `(url)` after a link's `]`, if any; answers where reading goes on."""
    if not text.startswith("(", bracket + 1):
        return bracket + 1
    target, position = read_link_url(text, bracket + 2)
    if kind == "link" and is_web_url(target):
        found.append(FoundLink(bracket + 1, position + 1, target, "target"))
    return position + 1
