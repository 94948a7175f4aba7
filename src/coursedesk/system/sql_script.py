"""Split an SQL script into statements as PostgreSQL's lexer sees them.

Used to refuse transaction control (BEGIN, COMMIT, SAVEPOINT, ...) in a script that must
run as one transaction, where a COMMIT in the middle would make a dry run write for real,
and LOCK in a dry run.
Quotes, dollar quotes, comments and the `BEGIN ATOMIC` bodies of CREATE FUNCTION and
CREATE PROCEDURE are understood, so semicolons and keywords inside them are not mistaken
for statements. Whitespace is what PostgreSQL's lexer takes for it, the six ASCII
characters, and a `--` comment ends at a newline or a carriage return. The lexer assumes
standard_conforming_strings is on, which the runner enforces before sending the script;
the runner sends the statements one by one with the extended protocol, so that where this
lexer and the server's might still disagree, the server refuses a string of several
commands rather than run them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Whitespace as PostgreSQL's lexer has it: only these. Other characters Python counts as
# spaces (a no-break space, U+2028, ...) are part of words to PostgreSQL.
WHITESPACE = " \t\n\r\f\v"

_TRANSACTION_CONTROL = frozenset(
    {"abort", "begin", "commit", "end", "release", "rollback", "savepoint", "start"}
)
# The only statements whose body may be `BEGIN ATOMIC ... END`; elsewhere `begin atomic` is
# just words, such as a column `begin` with the alias `atomic`.
_ROUTINE_STARTS = frozenset(
    {
        ("create", "function"),
        ("create", "procedure"),
        ("create", "or", "replace", "function"),
        ("create", "or", "replace", "procedure"),
    }
)


@dataclass(frozen=True)
class Statement:
    text: str
    # The statement's first tokens while they are plain words, lower-cased: ("create", "table").
    leading_words: tuple[str, ...]
    # Where `text` starts in the script.
    start: int = 0

    @property
    def controls_transaction(self) -> bool:
        words = self.leading_words
        if not words:
            return False
        return words[0] in _TRANSACTION_CONTROL or words[:2] == ("prepare", "transaction")

    @property
    def locks_tables(self) -> bool:
        return self.leading_words[:1] == ("lock",)


def _is_word_start(char: str) -> bool:
    return char.isalpha() or char == "_" or ord(char) >= 0x80


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in "_$" or ord(char) >= 0x80


def _skip_quoted(script: str, start: int, quote: str, *, backslash_escapes: bool) -> int:
    """The index after a literal or identifier opened at `start`; a doubled quote is data."""
    index = start + 1
    while index < len(script):
        char = script[index]
        if backslash_escapes and char == "\\":
            index += 2
        elif char == quote:
            if script.startswith(quote, index + 1):
                index += 2
            else:
                return index + 1
        else:
            index += 1
    return index


def _skip_block_comment(script: str, start: int) -> int:
    """The index after a /* comment */ opened at `start`; PostgreSQL's comments nest."""
    depth = 0
    index = start
    while index < len(script):
        if script.startswith("/*", index):
            depth += 1
            index += 2
        elif script.startswith("*/", index):
            depth -= 1
            index += 2
            if depth == 0:
                return index
        else:
            index += 1
    return index


def _dollar_tag(script: str, start: int) -> str | None:
    """The `$tag$` opening a dollar-quoted string at `start`, if one does."""
    end = start + 1
    if end < len(script) and _is_word_start(script[end]):
        end += 1
        while end < len(script) and _is_word_char(script[end]) and script[end] != "$":
            end += 1
    if end < len(script) and script[end] == "$":
        return script[start : end + 1]
    return None


class _Splitter:
    """One pass over the script, statement by statement."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.statements: list[Statement] = []
        self._reset(0)

    def _reset(self, start: int) -> None:
        self.start = start
        self.words: list[str] = []
        self.leading = True
        self.has_tokens = False
        self.paren_depth = 0
        self.previous_word: str | None = None
        # Depth inside `CREATE FUNCTION ... BEGIN ATOMIC ... END`, whose body holds semicolons.
        self.atomic_depth = 0

    def _creates_routine(self) -> bool:
        return tuple(self.words[:2]) in _ROUTINE_STARTS or tuple(self.words[:4]) in _ROUTINE_STARTS

    def _token(self, word: str | None) -> None:
        """Note one token: a lower-cased plain word, or None for anything else."""
        self.has_tokens = True
        if word is None:
            self.leading = False
            self.previous_word = None
            return
        if self.leading:
            self.words.append(word)
        if self.paren_depth == 0 and self._creates_routine():
            if word == "atomic" and self.previous_word == "begin" and not self.atomic_depth:
                self.atomic_depth = 1
            elif word == "case" and self.atomic_depth:
                self.atomic_depth += 1
            elif word == "end" and self.atomic_depth:
                self.atomic_depth -= 1
        self.previous_word = word

    def _finish(self, end: int) -> None:
        if self.has_tokens:
            text = self.script[self.start : end]
            start = self.start + len(text) - len(text.lstrip(WHITESPACE))
            text = text.strip(WHITESPACE)
            self.statements.append(Statement(text, tuple(self.words[:2]), start))
        self._reset(end + 1)

    def split(self) -> list[Statement]:
        script = self.script
        index = 0
        while index < len(script):
            char = script[index]
            if char in WHITESPACE:
                index += 1
            elif script.startswith("--", index):
                # To the end of the line, which a newline or a carriage return ends.
                index += 2
                while index < len(script) and script[index] not in "\n\r":
                    index += 1
            elif script.startswith("/*", index):
                index = _skip_block_comment(script, index)
            elif char == ";" and self.atomic_depth == 0:
                self._finish(index)
                index += 1
            elif char in "'\"":
                self._token(None)
                index = _skip_quoted(script, index, char, backslash_escapes=False)
            elif char == "$" and (tag := _dollar_tag(script, index)) is not None:
                self._token(None)
                closing = script.find(tag, index + len(tag))
                index = len(script) if closing < 0 else closing + len(tag)
            elif _is_word_start(char):
                end = index + 1
                while end < len(script) and _is_word_char(script[end]):
                    end += 1
                word = script[index:end].lower()
                if word == "e" and script.startswith("'", end):
                    self._token(None)
                    index = _skip_quoted(script, end, "'", backslash_escapes=True)
                else:
                    self._token(word)
                    index = end
            else:
                if char == "(":
                    self.paren_depth += 1
                elif char == ")":
                    self.paren_depth = max(0, self.paren_depth - 1)
                self._token(None)
                index += 1
        self._finish(len(script))
        return self.statements


def split_statements(script: str) -> list[Statement]:
    """The non-empty statements of `script`, in order."""
    return _Splitter(script).split()
