"""What a person reads in a piece of a page: its text without the tags, spaced as shown."""

from __future__ import annotations

import re

_TAG = re.compile(r"<[^>]+>")


def text_of(html: str) -> str:
    """`html`'s text, each tag read as a space and runs of whitespace as one."""
    return " ".join(_TAG.sub(" ", html).split())
