"""Statements reduced to their shape, so that runs with different values count together."""

from __future__ import annotations

import re
from functools import lru_cache

# Longer statements (scripts run through /api/db-migrate) are judged by their start.
READ_CHARS = 4000
SHOWN_CHARS = 1000

_STRING = re.compile(r"'(?:[^']|'')*'")
_LINE_COMMENT = re.compile(r"--[^\n]*")
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s|\$\d+")
_NUMBER = re.compile(r"(?<![\w.$])\d+(?:\.\d+)?\b")
_VALUE_LIST = re.compile(r"\?(?:\s*,\s*\?)+")
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=512)
def _shape(statement: str) -> str:
    shape = _STRING.sub("?", statement)
    shape = _LINE_COMMENT.sub(" ", shape)
    shape = _PLACEHOLDER.sub("?", shape)
    shape = _NUMBER.sub("?", shape)
    shape = _VALUE_LIST.sub("?, …", shape)
    shape = _SPACE.sub(" ", shape).strip()
    return shape if len(shape) <= SHOWN_CHARS else shape[: SHOWN_CHARS - 1] + "…"


def normalize(statement: str) -> str:
    """The statement with its literals and parameters as `?`, lists of them as `?, …`,
    comments dropped and whitespace collapsed.

    The app sends the same few statement strings again and again, so the answers are
    memoized; only the first READ_CHARS characters are read, which bounds that memory.
    """
    return _shape(statement[:READ_CHARS])
