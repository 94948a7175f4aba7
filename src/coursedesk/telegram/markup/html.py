"""Telegram's HTML style: a fixed set of tags and entities, checked as Telegram does."""

from __future__ import annotations

import re

from coursedesk.telegram.markup.tree import (
    Content,
    Entity,
    EntityKind,
    TreeBuilder,
    byte_offset,
    entities_error,
)

_HTML_TAG_KINDS: dict[str, EntityKind] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strike",
    "strike": "strike",
    "del": "strike",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "emoji",
}
_HTML_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
HTML_ENTITY = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([a-zA-Z]{2,8}));")
HTML_TAG_NAME_END = re.compile(r"[\s>]")
_HTML_ATTRIBUTE = re.compile(r"""([^\s=>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?""")


def decode_html_entity(match: re.Match[str]) -> str:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        return _HTML_NAMED_ENTITIES.get(name, match.group())
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return match.group()
    return chr(code)


def _decode_html_text(text: str) -> str:
    """Only these entities are Telegram's; any other `&` stays as it is."""
    return HTML_ENTITY.sub(decode_html_entity, text)


def parse_html(text: str) -> Content:
    """Telegram's HTML style: a fixed set of tags, `&lt;` `&gt;` `&amp;` `&quot;` and numeric
    entities; tags must nest and close."""
    tree = TreeBuilder()
    position = 0
    while (tag_start := text.find("<", position)) != -1:
        tree.add_text(_decode_html_text(text[position:tag_start]))
        if text.startswith("</", tag_start):
            position = _close_html_tag(text, tag_start, tree)
        else:
            position = _open_html_tag(text, tag_start, tree)
    tree.add_text(_decode_html_text(text[position:]))
    if tree.open:
        raise entities_error(
            f'Can\'t find end tag corresponding to start tag "{tree.open[-1].marker}"'
        )
    return tree.finish()


def _open_html_tag(text: str, tag_start: int, tree: TreeBuilder) -> int:
    offset = byte_offset(text, tag_start)
    name_end = HTML_TAG_NAME_END.search(text, tag_start + 1)
    if name_end is None:
        raise entities_error(f"Unclosed start tag at byte offset {offset}")
    name = text[tag_start + 1 : name_end.start()].lower()
    kind = _HTML_TAG_KINDS.get(name)
    if kind is None:
        raise entities_error(f'Unsupported start tag "{name}" at byte offset {offset}')
    attributes, position = read_html_attributes(text, name_end.start(), offset)
    entity = Entity(kind)
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise entities_error(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
    if kind == "link":
        entity.url = attributes.get("href")
    elif kind == "code" and tree.top_kind() == "pre":
        css_class = attributes.get("class", "")
        if css_class.startswith("language-"):
            tree.open[-1].entity.language = css_class.removeprefix("language-")
    elif kind == "blockquote":
        entity.expandable = "expandable" in attributes
    tree.start(entity, name, tag_start)
    return position


def read_html_attributes(text: str, position: int, tag_offset: int) -> tuple[dict[str, str], int]:
    attributes: dict[str, str] = {}
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            raise entities_error(f"Unclosed start tag at byte offset {tag_offset}")
        if text[position] == ">":
            return attributes, position + 1
        match = _HTML_ATTRIBUTE.match(text, position)
        if match is None:
            raise entities_error(f"Unclosed start tag at byte offset {tag_offset}")
        name, double_quoted, single_quoted, unquoted = match.groups()
        value = next((v for v in (double_quoted, single_quoted, unquoted) if v is not None), "")
        attributes[name.lower()] = _decode_html_text(value)
        position = match.end()


def _close_html_tag(text: str, tag_start: int, tree: TreeBuilder) -> int:
    offset = byte_offset(text, tag_start)
    tag_end = text.find(">", tag_start)
    if tag_end == -1:
        raise entities_error(f"Unclosed end tag at byte offset {offset}")
    name = text[tag_start + 2 : tag_end].strip().lower()
    if not tree.open:
        raise entities_error(f"Unexpected end tag at byte offset {offset}")
    expected = tree.open[-1].marker
    if name != expected:
        raise entities_error(
            f'Unmatched end tag at byte offset {offset}, expected "</{expected}>", '
            f'found "</{name}>"'
        )
    tree.end()
    return tag_end + 1
