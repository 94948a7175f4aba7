"""Telegram's MarkdownV2 and legacy Markdown, checked as Telegram does."""

from __future__ import annotations

from coursedesk.telegram.markup.tree import (
    Content,
    Entity,
    EntityKind,
    TreeBuilder,
    byte_offset,
    entities_error,
)

_MARKDOWN_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MARKDOWN_V2_TOGGLES: dict[str, EntityKind] = {
    "__": "underline",
    "_": "italic",
    "*": "bold",
    "~": "strike",
    "||": "spoiler",
}
_ENTITY_NAMES: dict[EntityKind, str] = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strike": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "link": "TextUrl",
    "blockquote": "BlockQuote",
    "emoji": "CustomEmoji",
}


def parse_markdown_v2(text: str) -> Content:
    """Telegram's MarkdownV2: every reserved character outside markup is escaped with `\\`."""
    tree = TreeBuilder()
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text) and 0 < ord(text[position + 1]) <= 126:
            tree.add_text(text[position + 1])
            position += 2
            continue
        if tree.top_kind() in ("code", "pre"):
            position = _read_markdown_v2_code(text, position, tree)
            continue
        quote_ends_here = char == "\n" and text[position + 1 : position + 2] != ">"
        if quote_ends_here and tree.top_kind() == "blockquote":
            tree.end()
        if position == 0 or text[position - 1] == "\n":
            after_quote_mark = _read_markdown_v2_quote_mark(text, position, tree)
            if after_quote_mark != position:
                position = after_quote_mark
                continue
        if char not in _MARKDOWN_V2_RESERVED:
            tree.add_text(char)
            position += 1
            continue
        position = _read_markdown_v2_markup(text, position, tree)
    if tree.top_kind() == "blockquote":
        tree.end()
    if tree.open:
        unclosed = tree.open[-1]
        raise entities_error(
            f"Can't find end of {_ENTITY_NAMES[unclosed.entity.kind]} entity "
            f"at byte offset {byte_offset(text, unclosed.start)}"
        )
    return tree.finish()


def _read_markdown_v2_quote_mark(text: str, position: int, tree: TreeBuilder) -> int:
    in_quote = any(opened.entity.kind == "blockquote" for opened in tree.open)
    if text.startswith(">", position) and (in_quote or not tree.open):
        if not in_quote:
            tree.start(Entity("blockquote"), ">", position)
        return position + 1
    if text.startswith("**>", position) and not tree.open:
        tree.start(Entity("blockquote", expandable=True), "**>", position)
        return position + 3
    return position


def _read_markdown_v2_code(text: str, position: int, tree: TreeBuilder) -> int:
    if tree.top_kind() == "pre" and text.startswith("```", position):
        tree.end()
        return position + 3
    if tree.top_kind() == "code" and text[position] == "`":
        tree.end()
        return position + 1
    tree.add_text(text[position])
    return position + 1


def _read_markdown_v2_markup(text: str, position: int, tree: TreeBuilder) -> int:
    two = text[position : position + 2]
    marker = two if two in ("__", "||") else text[position]
    top = tree.top_kind()
    at_line_end = text[position + 2 : position + 3] in ("", "\n")
    if marker == "||" and top == "blockquote" and tree.open[-1].entity.expandable and at_line_end:
        tree.end()
        return position + 2
    if marker in _MARKDOWN_V2_TOGGLES:
        kind = _MARKDOWN_V2_TOGGLES[marker]
        if top == kind:
            tree.end()
        else:
            tree.start(Entity(kind), marker, position)
        return position + len(marker)
    if marker == "[":
        tree.start(Entity("link"), marker, position)
        return position + 1
    if two == "![":
        tree.start(Entity("emoji"), two, position)
        return position + 2
    if marker == "]" and top in ("link", "emoji"):
        return _read_markdown_v2_url(text, position, tree)
    if marker == "`":
        return _open_markdown_code(text, position, tree)
    raise entities_error(
        f"Character '{marker}' is reserved and must be escaped with the preceding '\\'"
    )


def _read_markdown_v2_url(text: str, bracket: int, tree: TreeBuilder) -> int:
    entity = tree.end()
    if not text.startswith("(", bracket + 1):
        if entity.kind == "emoji":
            raise entities_error("Custom emoji entity must contain a tg://emoji URL")
        return bracket + 1
    url, position = read_link_url(text, bracket + 2)
    if position >= len(text):
        raise entities_error(
            f"Can't find end of a URL at byte offset {byte_offset(text, bracket + 1)}"
        )
    entity.url = url
    return position + 1


def read_link_url(text: str, start: int) -> tuple[str, int]:
    """A link's URL read from `start`, just after its `(`: the URL with its escapes
    undone, and where its `)` is (len(text) when it has none)."""
    url: list[str] = []
    position = start
    while position < len(text) and text[position] != ")":
        if text[position] == "\\" and position + 1 < len(text):
            position += 1
        url.append(text[position])
        position += 1
    return "".join(url), position


def _open_markdown_code(text: str, position: int, tree: TreeBuilder) -> int:
    """Open `code` or a ```pre``` block, whose first line may name its language."""
    if not text.startswith("```", position):
        tree.start(Entity("code"), "`", position)
        return position + 1
    body_start = position + 3
    line_end = text.find("\n", body_start)
    entity = Entity("pre")
    if line_end != -1:
        first_line = text[body_start:line_end]
        if first_line and not any(c.isspace() or c == "`" for c in first_line):
            entity.language = first_line
            body_start = line_end + 1
        elif not first_line:
            body_start = line_end + 1
    tree.start(entity, "```", position)
    return body_start


_MARKDOWN_KINDS: dict[str, EntityKind] = {"*": "bold", "_": "italic", "`": "code"}


def parse_markdown(text: str) -> Content:
    """Telegram's legacy Markdown: `*`, `_`, `` ` ``, ``` and [text](url), none nested."""
    tree = TreeBuilder()
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\" and text[position + 1 : position + 2] in ("_", "*", "`", "["):
            tree.add_text(text[position + 1])
            position += 2
        elif char == "[":
            position = _read_markdown_link(text, position, tree)
        elif text.startswith("```", position):
            close = _find_markdown_end(text, "```", position)
            body_start = _open_markdown_code(text, position, tree)
            tree.add_text(text[min(body_start, close) : close])
            tree.end()
            position = close + 3
        elif char in _MARKDOWN_KINDS:
            close = _find_markdown_end(text, char, position)
            tree.add_entity(Entity(_MARKDOWN_KINDS[char], [text[position + 1 : close]]))
            position = close + 1
        else:
            tree.add_text(char)
            position += 1
    return tree.finish()


def _find_markdown_end(text: str, marker: str, start: int) -> int:
    end = text.find(marker, start + len(marker))
    if end == -1:
        raise entities_error(
            f"Can't find end of the entity starting at byte offset {byte_offset(text, start)}"
        )
    return end


def _read_markdown_link(text: str, start: int, tree: TreeBuilder) -> int:
    label_end = _find_markdown_end(text, "]", start)
    link = Entity("link", [text[start + 1 : label_end]])
    if text.startswith("(", label_end + 1):
        url_end = _find_markdown_end(text, ")", label_end + 1)
        link.url = text[label_end + 2 : url_end]
        tree.add_entity(link)
        return url_end + 1
    tree.add_entity(link)
    return label_end + 1
