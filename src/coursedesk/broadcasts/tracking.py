"""Tracked links (docs/reference.md §8): a broadcast's web links, numbered when it is made,
and each recipient's message sent with `{PUBLIC_BASE_URL}/r/{token}` in their place.

The links are those of the text or caption in its parse mode (telegram/markup/links.py)
and of the URL buttons; one address is one link, however often it appears. A link whose
address holds a variable is sent as it is: what it opens differs per recipient.

The student still reads what was typed: a tracked link changes the markup, never a
character a chat shows, so the length Telegram counts is the one checked at creation and
for each recipient (broadcasts/personalisation.py). An address written out stays the
link's text: in HTML it becomes `<a href="tracked">address</a>`, in MarkdownV2
`[address](tracked)`. A plain-text broadcast goes out in HTML, its text escaped so that
it shows exactly as typed, with its addresses as such links.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.models import BroadcastLink
from coursedesk.broadcasts.personalisation import (
    FIRST_MARKER,
    MARKERS,
    Profile,
    Slot,
    Template,
    escaper,
    value_of,
)
from coursedesk.errors import InvalidInput
from coursedesk.telegram.client import CallbackButton, InlineKeyboard, UrlButton
from coursedesk.telegram.markup.links import find_links, is_web_url

_MARKDOWN_V2_URL_SPECIAL = re.compile(r"([)\\])")
UNSET_BASE_URL = (
    "track_links: PUBLIC_BASE_URL is not set, so links cannot go out through /r/{token}; "
    "set PUBLIC_BASE_URL to the address students reach coursedesk at, or leave track_links "
    "out"
)


def tracking_chosen(requested: bool | None, public_base_url: str | None) -> bool:
    """Whether a new broadcast's links are tracked: as requested, by default when
    PUBLIC_BASE_URL is set; asked for without it, InvalidInput naming it."""
    if requested is None:
        return public_base_url is not None
    if requested and public_base_url is None:
        raise InvalidInput(UNSET_BASE_URL)
    return requested


def links_to_track(
    template: Template, parse_mode: str | None, button_urls: Iterable[str]
) -> list[str]:
    """The distinct web addresses of a text and its URL buttons, in the order they come:
    the list index is each link's position."""
    found = [link.url for link in find_links(template.with_markers(), parse_mode)]
    return list(dict.fromkeys([*found, *(url for url in button_urls if is_web_url(url))]))


async def store_links(session: AsyncSession, message_id: int, urls: Sequence[str]) -> None:
    """Number the links of the broadcast just created, in the caller's transaction."""
    if urls:
        await session.execute(
            insert(BroadcastLink),
            [
                {"message_id": message_id, "position": position, "url": url}
                for position, url in enumerate(urls)
            ],
        )


@dataclass(frozen=True, slots=True)
class Address:
    """Where the tracked address of the link at `position` goes."""

    position: int


Addresses = Callable[[int], str]
"""The tracked address of the link at a position, for one recipient."""


@dataclass(frozen=True, slots=True)
class TrackedText:
    """A text or caption with its links replaced by the places of their addresses."""

    parts: tuple[str | Slot | Address, ...]
    parse_mode: str
    """The mode it goes out in: its own, or HTML for a plain text."""

    def fill(self, profile: Profile, addresses: Addresses) -> str:
        """The text one recipient is sent, their values and addresses escaped."""
        escape = escaper(self.parse_mode)
        escape_url = _url_escaper(self.parse_mode)
        return "".join(
            part
            if isinstance(part, str)
            else escape(value_of(part, profile))
            if isinstance(part, Slot)
            else escape_url(addresses(part.position))
            for part in self.parts
        )


def _url_escaper(parse_mode: str) -> Callable[[str], str]:
    if parse_mode == "MarkdownV2":
        return lambda url: _MARKDOWN_V2_URL_SPECIAL.sub(r"\\\1", url)
    return lambda url: html.escape(url, quote=True)


def tracked_text(
    template: Template, parse_mode: str | None, positions: Mapping[str, int]
) -> TrackedText | None:
    """The text with its numbered links ready to fill; None when it has none."""
    source, typed = template.marked()
    literal: Callable[[str], str] = (
        (lambda piece: html.escape(piece, quote=False)) if parse_mode is None else str
    )
    mode = parse_mode or "HTML"
    pieces: list[str | Address] = []
    cursor = 0
    for link in find_links(source, parse_mode):
        position = positions.get(link.url)
        if position is None:
            continue
        address = Address(position)
        shown = source[link.start : link.end]
        pieces.append(literal(source[cursor : link.start]))
        if link.form == "anchor":
            pieces += ['<a href="', address, '">']
        elif link.form == "target":
            pieces += ["(", address, ")"]
        elif mode == "MarkdownV2":
            pieces += ["[", shown, "](", address, ")"]
        else:
            pieces += ['<a href="', address, '">', literal(shown), "</a>"]
        cursor = link.end
    if cursor == 0:
        return None
    pieces.append(literal(source[cursor:]))
    return TrackedText(_with_slots(pieces, (*template.slots, *typed)), mode)


def _with_slots(
    pieces: Sequence[str | Address], markers: Sequence[Slot | str]
) -> tuple[str | Slot | Address, ...]:
    """The pieces with each marker character back as what it stands for (Template.marked):
    a slot, or a private-use character typed in the text."""
    parts: list[str | Slot | Address] = []
    for piece in pieces:
        if isinstance(piece, Address) or not markers:
            parts.append(piece)
            continue
        for index, chunk in enumerate(MARKERS.split(piece)):
            if index % 2:
                parts.append(markers[ord(chunk) - FIRST_MARKER])
            elif chunk:
                parts.append(chunk)
    return tuple(part for part in parts if part != "")


@dataclass(frozen=True, slots=True)
class LinkTracking:
    """How one tracked broadcast is sent to each recipient."""

    text: TrackedText | None
    button_positions: tuple[tuple[int | None, ...], ...]
    """Each button's link position, None for a callback button."""

    def buttons(self, rows: InlineKeyboard, addresses: Addresses) -> InlineKeyboard:
        """The buttons with each URL button's tracked address."""
        return tuple(
            tuple(
                button
                if position is None or isinstance(button, CallbackButton)
                else replace(button, url=addresses(position))
                for button, position in zip(row, positions, strict=True)
            )
            for row, positions in zip(rows, self.button_positions, strict=True)
        )


def link_tracking(
    template: Template,
    parse_mode: str | None,
    buttons: InlineKeyboard,
    positions: Mapping[str, int],
) -> LinkTracking:
    """A tracked broadcast's sending plan from its numbered links (broadcast_links)."""
    return LinkTracking(
        tracked_text(template, parse_mode, positions),
        tuple(
            tuple(
                positions.get(button.url) if isinstance(button, UrlButton) else None
                for button in row
            )
            for row in buttons
        ),
    )
