"""What a broadcast carries besides its text: its media, checked as a request gives them
and stored with the broadcast (docs/reference.md §5.7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.media import media_by_ids
from coursedesk.broadcasts.models import BroadcastMedia, MediaFile, MediaKind
from coursedesk.broadcasts.sniffing import kinds_it_may_go_as
from coursedesk.errors import InvalidInput

MAX_MEDIA = 10
"""Files in one album, Telegram's limit."""
MAX_SUBMITTED_MEDIA = 100
"""Beyond this a request is malformed (422) rather than refused with a reason (400)."""
ALBUM_KINDS: tuple[MediaKind, ...] = ("photo", "video")
MEDIA_ID_MAX = 2**63 - 1


class MediaChoice(BaseModel):
    """A file uploaded with POST /api/media, and optionally the kind it is sent as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    media_id: Annotated[int, Field(ge=1, le=MEDIA_ID_MAX)]
    kind: MediaKind | None = Field(
        default=None,
        description=(
            "Send it as this kind instead of its own: any file as a document, an MP4 "
            "video as an animation"
        ),
    )


class ContentRequest(BaseModel):
    """The parts of a send request beyond text, audience and schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    media: Annotated[list[MediaChoice], Field(max_length=MAX_SUBMITTED_MEDIA)] = []

    def canonical(self) -> dict[str, Any]:
        """What the request's hash covers (broadcasts/idempotency.py): the fields given."""
        return self.model_dump(mode="json", exclude_defaults=True)


@dataclass(frozen=True, slots=True)
class ChosenMedia:
    media_id: int
    kind: MediaKind
    filename: str
    size: int


@dataclass(frozen=True, slots=True)
class CheckedContent:
    """A request's content as it will be sent."""

    media: tuple[ChosenMedia, ...] = ()

    @property
    def has_caption(self) -> bool:
        """The text goes as a caption (of the one file, or of the album's first)."""
        return bool(self.media)

    @property
    def is_album(self) -> bool:
        return len(self.media) > 1


NO_CONTENT = ContentRequest()


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _chosen(index: int, choice: MediaChoice, found: MediaFile | None) -> ChosenMedia:
    if found is None:
        raise InvalidInput(f"media[{index}]: no media with id {choice.media_id}")
    own: MediaKind = found.kind  # type: ignore[assignment]
    allowed = kinds_it_may_go_as(own, found.mime_type)
    kind = choice.kind or own
    if kind not in allowed:
        raise InvalidInput(
            f"media[{index}]: media {choice.media_id} is {_a(own)} ({found.mime_type}); "
            f"it may be sent as {' or '.join(allowed)}, not as {_a(kind)}"
        )
    return ChosenMedia(choice.media_id, kind, found.filename, found.size)


async def check_content(session: AsyncSession, request: ContentRequest) -> CheckedContent:
    """The content as it would be sent, or InvalidInput naming what Telegram could not
    take: an unknown media id, a kind the file cannot go as, over 10 files, an album of
    anything but photos and videos."""
    if len(request.media) > MAX_MEDIA:
        raise InvalidInput(
            f"media: at most {MAX_MEDIA} files go in one message (an album), "
            f"not {len(request.media)}"
        )
    found = await media_by_ids(session, [choice.media_id for choice in request.media])
    media = tuple(
        _chosen(index, choice, found.get(choice.media_id))
        for index, choice in enumerate(request.media)
    )
    if len(media) > 1:
        for index, item in enumerate(media):
            if item.kind not in ALBUM_KINDS:
                raise InvalidInput(
                    f"media[{index}]: an album holds photos and videos only, and media "
                    f"{item.media_id} goes as {_a(item.kind)}; send it in a broadcast of "
                    "its own"
                )
    return CheckedContent(media)


async def store_content(session: AsyncSession, message_id: int, content: CheckedContent) -> None:
    """Keep the content with the broadcast just created in the caller's transaction."""
    if content.media:
        await session.execute(
            insert(BroadcastMedia),
            [
                {
                    "message_id": message_id,
                    "position": position,
                    "media_id": item.media_id,
                    "kind": item.kind,
                }
                for position, item in enumerate(content.media)
            ],
        )


def audited(content: CheckedContent) -> dict[str, Any]:
    """The content as the audit entry of the broadcast's creation keeps it."""
    if not content.media:
        return {}
    return {"media": [{"media_id": m.media_id, "kind": m.kind} for m in content.media]}


@dataclass(frozen=True, slots=True)
class SentMedia:
    """A file of a broadcast as its answer shows it."""

    media_id: int
    kind: str
    filename: str
    size: int
    uploaded: bool
    """Telegram has it: sends after the first go by file_id."""


async def media_of(session: AsyncSession, message_id: int) -> Sequence[SentMedia]:
    rows = await session.execute(
        select(
            BroadcastMedia.media_id,
            BroadcastMedia.kind,
            MediaFile.filename,
            MediaFile.size,
            BroadcastMedia.file_id.is_not(None).label("uploaded"),
        )
        .join(MediaFile, MediaFile.id == BroadcastMedia.media_id)
        .where(BroadcastMedia.message_id == message_id)
        .order_by(BroadcastMedia.position)
    )
    return [SentMedia(*row) for row in rows]
