"""Parsers of Telegram's three markups (HTML, MarkdownV2, Markdown) into one tree of entities."""

from coursedesk.telegram.markup.html import parse_html
from coursedesk.telegram.markup.markdown import parse_markdown, parse_markdown_v2
from coursedesk.telegram.markup.tree import (
    Content,
    Entity,
    EntityKind,
    FormattingError,
    plain_text_of,
)

__all__ = [
    "Content",
    "Entity",
    "EntityKind",
    "FormattingError",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "plain_text_of",
]
