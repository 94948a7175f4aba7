"""The stream picker of a student's page: one of the course's streams, a new one, or none.

A select offers the course's streams, "New stream…" (which shows a text field for its
name) and "No stream". Each option's value says which it is, so no stream name, whatever
it holds, can be taken for another choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coursedesk.errors import InvalidInput

EXISTING = "stream:"
NEW = "new"
NONE = "none"


def existing(name: str) -> str:
    """The option value of an existing stream."""
    return EXISTING + name


@dataclass(frozen=True)
class StreamPicker:
    """What a picker shows: the streams offered, the option chosen, the new name typed."""

    streams: Sequence[str]
    choice: str
    new_stream: str = ""


def picker(streams: Sequence[str], chosen: str | None) -> StreamPicker:
    """A picker on `chosen` (None: no stream), which is offered even when the figures do
    not know it yet."""
    offered = list(streams)
    if chosen is not None and chosen not in offered:
        offered.append(chosen)
    return StreamPicker(offered, NONE if chosen is None else existing(chosen))


def picker_as_sent(streams: Sequence[str], choice: str, new_stream: str) -> StreamPicker:
    """The picker as a refused form sent it, to show it again."""
    shown = picker(streams, choice.removeprefix(EXISTING) if choice.startswith(EXISTING) else None)
    return StreamPicker(shown.streams, choice, new_stream)


@dataclass(frozen=True)
class StreamChoice:
    """The stream a picker asks for (None: no stream), and whether it is a new one."""

    name: str | None
    create: bool = False


def read_choice(choice: str, new_stream: str) -> StreamChoice:
    """The posted picker as a choice; a choice it does not offer is refused."""
    if choice == NONE:
        return StreamChoice(None)
    if choice == NEW:
        if not new_stream.strip():
            raise InvalidInput("type the name of the new stream")
        return StreamChoice(new_stream, create=True)
    if choice.startswith(EXISTING):
        return StreamChoice(choice.removeprefix(EXISTING))
    raise InvalidInput("choose a stream, a new stream or no stream")
