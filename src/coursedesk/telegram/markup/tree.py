"""The tree of entities a Telegram markup parses into, and the builder the parsers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EntityKind = Literal[
    "bold",
    "italic",
    "underline",
    "strike",
    "spoiler",
    "code",
    "pre",
    "link",
    "blockquote",
    "emoji",
]


class FormattingError(ValueError):
    """Text Telegram would refuse with 400 Bad Request; the message is Telegram's reason."""


@dataclass(slots=True)
class Entity:
    """One formatted stretch of a message, holding text and nested entities."""

    kind: EntityKind
    children: list[Entity | str] = field(default_factory=list)
    url: str | None = None
    language: str | None = None
    expandable: bool = False


Content = list[Entity | str]


def plain_text_of(content: Content) -> str:
    return "".join(
        node if isinstance(node, str) else plain_text_of(node.children) for node in content
    )


def entities_error(reason: str) -> FormattingError:
    return FormattingError(f"can't parse entities: {reason}")


def byte_offset(text: str, index: int) -> int:
    """Telegram reports positions as UTF-8 byte offsets."""
    return len(text[:index].encode("utf-8"))


@dataclass(slots=True)
class _OpenEntity:
    entity: Entity
    marker: str
    start: int


class TreeBuilder:
    """Collects text and entities as a parser opens and closes them."""

    def __init__(self) -> None:
        self.root: Content = []
        self.open: list[_OpenEntity] = []
        self._pending: list[str] = []

    def add_text(self, chunk: str) -> None:
        if chunk:
            self._pending.append(chunk)

    def add_entity(self, entity: Entity) -> None:
        self._flush()
        self._container().append(entity)

    def start(self, entity: Entity, marker: str, start: int) -> None:
        self.add_entity(entity)
        self.open.append(_OpenEntity(entity, marker, start))

    def end(self) -> Entity:
        self._flush()
        return self.open.pop().entity

    def top_kind(self) -> EntityKind | None:
        return self.open[-1].entity.kind if self.open else None

    def finish(self) -> Content:
        self._flush()
        return self.root

    def _container(self) -> Content:
        return self.open[-1].entity.children if self.open else self.root

    def _flush(self) -> None:
        if self._pending:
            self._container().append("".join(self._pending))
            self._pending.clear()
