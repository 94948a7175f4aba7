"""What a broadcast carries besides its text: its media, inline buttons and options,
checked as a request gives them and stored with the broadcast (docs/reference.md §5.7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.media import media_by_ids
from coursedesk.broadcasts.media_pruning import keep_media
from coursedesk.broadcasts.models import BroadcastMedia, MediaFile, MediaKind
from coursedesk.broadcasts.personalisation import parse_template
from coursedesk.broadcasts.sniffing import kinds_it_may_go_as
from coursedesk.errors import InvalidInput
from coursedesk.telegram.markup.links import is_web_url

MAX_MEDIA = 10
"""Files in one album, Telegram's limit."""
MAX_SUBMITTED_MEDIA = 100
"""Beyond this a request is malformed (422) rather than refused with a reason (400)."""
ALBUM_KINDS: tuple[MediaKind, ...] = ("photo", "video")
MEDIA_ID_MAX = 2**63 - 1
MAX_BUTTON_ROWS = 8
MAX_BUTTONS_IN_A_ROW = 4
MAX_URL_LENGTH = 2048
MAX_BUTTON_TEXT = 256
CALLBACK_PREFIX = "cd:"
"""A callback button's data goes out as `cd:<broadcast id>:<the data given>`, so that a
press names its broadcast (telegram/webhook.py)."""
CALLBACK_DATA_BYTES = 64
"""Telegram's limit on a button's callback_data."""
CALLBACK_RESERVED_BYTES = len(CALLBACK_PREFIX) + len(str(2**31 - 1)) + 1
MAX_CALLBACK_DATA = CALLBACK_DATA_BYTES - CALLBACK_RESERVED_BYTES
"""What is left of the 64 bytes for the data staff give a button: 50."""


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


class Button(BaseModel):
    """An inline button: it opens `url`, or sends the bot `callback_data` when pressed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: Annotated[str, Field(max_length=MAX_BUTTON_TEXT)] = ""
    url: Annotated[str, Field(max_length=MAX_URL_LENGTH)] | None = None
    callback_data: Annotated[str, Field(max_length=CALLBACK_DATA_BYTES)] | None = None


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    disable_link_preview: bool = Field(
        default=False, description="Show no preview of the text's first link"
    )
    protect_content: bool = Field(
        default=False, description="The message cannot be forwarded or saved"
    )
    silent: bool = Field(default=False, description="Delivered without a sound")
    pin: bool = Field(default=False, description="Pinned in each chat once delivered")


ButtonRows = Annotated[
    list[Annotated[list[Button], Field(max_length=MAX_SUBMITTED_MEDIA)]],
    Field(max_length=MAX_SUBMITTED_MEDIA),
]


class ContentRequest(BaseModel):
    """The parts of a send request beyond text, audience and schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    media: Annotated[list[MediaChoice], Field(max_length=MAX_SUBMITTED_MEDIA)] = []
    buttons: ButtonRows = []
    options: Options = Options()
    track_links: bool | None = None
    """None: tracked when PUBLIC_BASE_URL is set (broadcasts/tracking.py)."""
    holdout_percent: int = 0
    """The control group's share of the audience, checked by broadcasts/holdout.py."""

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
    buttons: tuple[tuple[Button, ...], ...] = ()
    options: Options = field(default_factory=Options)

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
    rows = tuple(tuple(row) for row in request.buttons)
    if rows and len(media) > 1:
        raise InvalidInput(
            "buttons: Telegram puts no buttons under an album; send them with one file or "
            "with text alone"
        )
    check_buttons(rows)
    return CheckedContent(media, rows, request.options)


def check_buttons(rows: Sequence[Sequence[Button]]) -> None:
    """Refuse buttons Telegram would refuse, naming the first: at most 8 rows of 4, a
    text on each, an http(s) link or callback data of at most 50 bytes, not both."""
    if len(rows) > MAX_BUTTON_ROWS:
        raise InvalidInput(f"buttons: at most {MAX_BUTTON_ROWS} rows, not {len(rows)}")
    for row_index, row in enumerate(rows):
        if not 1 <= len(row) <= MAX_BUTTONS_IN_A_ROW:
            raise InvalidInput(
                f"buttons[{row_index}]: a row holds 1 to {MAX_BUTTONS_IN_A_ROW} buttons, "
                f"not {len(row)}"
            )
        for index, button in enumerate(row):
            _check_button(f"buttons[{row_index}][{index}]", button)


def _check_button(where: str, button: Button) -> None:
    if not button.text.strip():
        raise InvalidInput(f"{where}.text: every button needs a text")
    parse_template(button.text, f"{where}.text")
    if (button.url is None) == (button.callback_data is None):
        raise InvalidInput(f"{where}: give a url or a callback_data, one of them")
    if button.url is not None and not is_web_url(button.url):
        raise InvalidInput(f"{where}.url: an http:// or https:// link, not {button.url!r}")
    if button.callback_data is not None:
        size = len(button.callback_data.encode("utf-8"))
        if not 1 <= size <= MAX_CALLBACK_DATA:
            raise InvalidInput(
                f"{where}.callback_data: 1 to {MAX_CALLBACK_DATA} bytes (Telegram takes "
                f"{CALLBACK_DATA_BYTES}, {CALLBACK_RESERVED_BYTES} of which name the "
                f"broadcast), not {size}"
            )


def callback_data_of(message_id: int, data: str) -> str:
    """What a callback button sends the bot: the broadcast's id, then the data given."""
    return f"{CALLBACK_PREFIX}{message_id}:{data}"


def stored_buttons(content: CheckedContent) -> list[list[dict[str, str]]] | None:
    """The buttons as message_history.buttons keeps them."""
    if not content.buttons:
        return None
    return [[button.model_dump(exclude_none=True) for button in row] for row in content.buttons]


async def store_content(session: AsyncSession, message_id: int, content: CheckedContent) -> None:
    """Keep the content with the broadcast just created in the caller's transaction.

    Its files are locked first, so that a prune running meanwhile cannot delete one
    under it (broadcasts/media_pruning.py).
    """
    if content.media:
        await keep_media(session, [item.media_id for item in content.media])
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
    kept: dict[str, Any] = {}
    if content.media:
        kept["media"] = [{"media_id": m.media_id, "kind": m.kind} for m in content.media]
    if content.buttons:
        kept["buttons"] = stored_buttons(content)
    options = content.options.model_dump(exclude_defaults=True)
    if options:
        kept["options"] = options
    return kept


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
