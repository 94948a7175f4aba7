"""Personal broadcasts: `{{first_name}}`, `{{username}}` and `{{course_stream}}` in the text,
the caption and the button texts, filled in for each recipient (docs/reference.md §5.7).

A variable may carry a fallback for recipients without the value: `{{first_name|friend}}`.
Values and fallbacks are taken as plain text and escaped for the parse mode, so a name
holding `<`, `&`, `_` or `*` arrives as typed and cannot break or add markup. Values come
from the user summary (docs/reference.md §4.1, §4.3); a missing or empty one is the
fallback, or nothing when there is none.

Each value shows in the chat as exactly its characters, so the length a recipient's text
will have is the template's own length plus theirs: checked at request time against the
longest of the audience, and again at send time for each recipient.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from coursedesk.broadcasts.audiences import Audience, audience_filter
from coursedesk.errors import InvalidInput
from coursedesk.telegram.formatting import MAX_CAPTION_LENGTH, MAX_MESSAGE_LENGTH, shown_text
from coursedesk.users.models import UserSummary

VARIABLES = ("first_name", "username", "course_stream")
MAX_SLOTS = 1000
"""Variables in one text at most: each is filled for every recipient."""
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_SLOT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|(.*))?", re.DOTALL)
_MARKDOWN_V2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")
FIRST_MARKER = 0xE000
"""with_markers() writes slot i as chr(FIRST_MARKER + i), a private-use character."""
_MARKER_COUNT = 0xF8FF - FIRST_MARKER + 1
MARKERS = re.compile("([\ue000-\uf8ff])")
"""Splits a marked text into its pieces, each marker a piece of its own."""
"""Private-use characters stand in for the values while a template's markup is checked."""

Profile = Mapping[str, str | None]
"""A recipient's values by variable name."""


@dataclass(frozen=True, slots=True)
class Slot:
    variable: str
    fallback: str


@dataclass(frozen=True, slots=True)
class Template:
    """A text split into literal parts and the slots between them."""

    parts: tuple[str | Slot, ...]

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(part for part in self.parts if isinstance(part, Slot))

    @property
    def is_personal(self) -> bool:
        return bool(self.slots)

    def fill(self, profile: Profile, escape: Callable[[str], str]) -> str:
        """The text for one recipient, each value escaped by `escape`."""
        return "".join(
            part if isinstance(part, str) else escape(value_of(part, profile))
            for part in self.parts
        )

    def with_names(self, escape: Callable[[str], str]) -> str:
        """The text with each variable written out as its name, `{{first_name}}`, escaped
        so that it shows as such (a preview of a text before it is filled)."""
        return "".join(
            part if isinstance(part, str) else escape(f"{{{{{part.variable}}}}}")
            for part in self.parts
        )

    def with_markers(self) -> str:
        """The text with slot i as the one character U+E000 + i (never markup)."""
        return self.marked()[0]

    def marked(self) -> tuple[str, tuple[str, ...]]:
        """with_markers(), and what the markers after the slots' stand for.

        A private-use character typed in the text would read as a marker, so each one is
        a marker too, numbered after the slots: answers the text and those characters
        in the order of their markers.
        """
        filled: list[str] = []
        typed: list[str] = []
        slots = len(self.slots)
        index = 0
        for part in self.parts:
            if isinstance(part, Slot):
                filled.append(chr(FIRST_MARKER + index))
                index += 1
                continue
            for piece in MARKERS.split(part):
                if len(piece) == 1 and MARKERS.fullmatch(piece):
                    filled.append(chr(FIRST_MARKER + slots + len(typed)))
                    typed.append(piece)
                else:
                    filled.append(piece)
        if slots + len(typed) > _MARKER_COUNT:
            raise InvalidInput("text: too many private-use characters")
        return "".join(filled), tuple(typed)


def value_of(slot: Slot, profile: Profile) -> str:
    return profile.get(slot.variable) or slot.fallback


def parse_template(text: str, where: str) -> Template:
    """`text` as a template; an unknown variable is refused (InvalidInput) naming it."""
    parts: list[str | Slot] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        inside = _SLOT.fullmatch(match.group(1))
        name = inside.group(1) if inside else match.group(1).strip()
        if inside is None or name not in VARIABLES:
            raise InvalidInput(
                f"{where}: unknown variable {{{{{name}}}}}; use "
                + ", ".join(f"{{{{{v}}}}}" for v in VARIABLES)
                + ", with a fallback after | if you like ({{first_name|friend}})"
            )
        parts.append(text[position : match.start()])
        parts.append(Slot(name, (inside.group(2) or "").strip()))
        position = match.end()
    parts.append(text[position:])
    template = Template(tuple(part for part in parts if part != ""))
    if len(template.slots) > MAX_SLOTS:
        raise InvalidInput(f"{where}: at most {MAX_SLOTS} variables, not {len(template.slots)}")
    return template


def escaper(parse_mode: str | None) -> Callable[[str], str]:
    """How a value is written in text of `parse_mode` so that it shows as typed."""
    if parse_mode == "HTML":
        return lambda value: html.escape(value, quote=True)
    if parse_mode == "MarkdownV2":
        return lambda value: _MARKDOWN_V2_SPECIAL.sub(r"\\\1", value)
    return lambda value: value


@dataclass(frozen=True, slots=True)
class Measure:
    """How long a template shows: `base` characters, plus each listed slot's value."""

    base: int
    shown: tuple[Slot, ...]

    def length_for(self, profile: Profile) -> int:
        return self.base + sum(len(value_of(slot, profile)) for slot in self.shown)


def measure(template: Template, shown_text: str) -> Measure:
    """The measure of a template from the text a chat shows of it with_markers()."""
    slots = template.slots
    shown = tuple(
        slot for index, slot in enumerate(slots) if chr(FIRST_MARKER + index) in shown_text
    )
    return Measure(len(shown_text) - len(shown), shown)


class NotSendable(Exception):
    """One recipient's message cannot go as filled in (too long, empty); says why."""


@dataclass(frozen=True, slots=True)
class PersonalText:
    """A text or caption with variables, its markup checked, ready to fill per recipient."""

    template: Template
    measure: Measure
    parse_mode: str | None
    caption: bool

    @property
    def limit(self) -> int:
        return MAX_CAPTION_LENGTH if self.caption else MAX_MESSAGE_LENGTH

    @property
    def what(self) -> str:
        return "caption" if self.caption else "message"

    def fill(self, profile: Profile) -> str:
        """The text for one recipient; NotSendable when Telegram would refuse it."""
        filled = self.template.fill(profile, escaper(self.parse_mode))
        length = self.measure.length_for(profile)
        if length > self.limit or (length == 0 and not self.caption):
            # The sum counts whitespace a chat trims at the ends: measure exactly.
            length = len(shown_text(filled, self.parse_mode))
        if length > self.limit:
            raise NotSendable(
                f"the {self.what} filled in for this user is {length} characters after "
                f"formatting, over Telegram's {self.limit}"
            )
        if length == 0 and not self.caption:
            raise NotSendable("the message filled in for this user is empty")
        return filled


def personal_text(text: str, parse_mode: str | None, *, caption: bool) -> PersonalText | None:
    """The text as a template to fill, None when it has no variable. Its markup is checked
    with the values left out (FormattingError); an unknown variable is InvalidInput."""
    template = parse_template(text, "text")
    if not template.is_personal:
        return None
    shown = shown_text(template.with_markers(), parse_mode)
    return PersonalText(template, measure(template, shown), parse_mode, caption)


def fill_plain(text: str, profile: Profile) -> str:
    """A button's text for one recipient (button texts have no markup)."""
    return parse_template(text, "button").fill(profile, lambda value: value)


_COLUMNS = {
    "first_name": UserSummary.first_name,
    "username": UserSummary.username,
    "course_stream": UserSummary.course_stream,
}


async def profiles(
    session: AsyncSession | AsyncConnection, user_ids: Sequence[int]
) -> dict[int, Profile]:
    """Each user's values, as the user summary has them now."""
    rows = await session.execute(
        select(UserSummary.user_id, *_COLUMNS.values()).where(
            UserSummary.user_id.in_(sorted(set(user_ids)))
        )
    )
    return {row.user_id: {name: getattr(row, name) for name in VARIABLES} for row in rows}


async def longest_in_audience(
    session: AsyncSession, audience: Audience, personal: PersonalText
) -> tuple[int, int] | None:
    """(user_id, length) of the audience member whose filled text shows longest; None
    when no value shows (the length is then the template's own)."""
    if not personal.measure.shown:
        return None
    length: ColumnElement[int] = literal(personal.measure.base, Integer)
    for slot in personal.measure.shown:
        value = func.coalesce(func.nullif(_COLUMNS[slot.variable], ""), slot.fallback)
        length = length + func.length(value)
    row = (
        await session.execute(
            select(UserSummary.user_id, length.label("length"))
            .where(audience_filter(audience))
            .order_by(length.desc(), UserSummary.user_id)
            .limit(1)
        )
    ).first()
    return None if row is None else (int(row.user_id), int(row.length))
