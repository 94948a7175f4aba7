"""What the sending broadcasts send, as the workers load it, and how their files reach
Telegram once.

A broadcast with media sends its files' bytes once, with its first delivery; Telegram
answers a file_id for each, which every later recipient is sent instead. So that workers
do not each upload the files, the first send is claimed under an upload lease on the
message row (media_upload_owner, media_upload_expires_at): only its holder claims a
recipient of a broadcast whose file_ids are not all known, one at a time, and the other
workers leave the broadcast alone meanwhile. The file_ids are written in the transaction
that records that delivery, and the lease is released there too, whatever the outcome:
a refused first send (a blocked user) hands the upload to the next recipient. A worker
that dies holding the lease loses it when it runs out, as with recipient leases. Should
two uploads happen all the same (a worker stalled past its lease), the first file_id
written stays and the other is dropped: both send the same file.

Lock order (broadcasts/deliveries.py): the lease is a message row, taken alone in its
own transaction; broadcast_media rows are written after the message rows are locked.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from coursedesk.broadcasts.composition import callback_data_of
from coursedesk.broadcasts.models import MediaKind
from coursedesk.broadcasts.personalisation import (
    PersonalText,
    Template,
    parse_template,
    personal_text,
)
from coursedesk.broadcasts.tracking import LinkTracking, link_tracking
from coursedesk.errors import InvalidInput
from coursedesk.telegram.client import CallbackButton, InlineKeyboard, UrlButton
from coursedesk.telegram.formatting import FormattingError

log = logging.getLogger(__name__)

SENDING_BROADCASTS = text(
    """
-- sending_broadcasts: what workers send, oldest schedule first.
SELECT m.id, m.message_text, m.parse_mode, m.buttons,
    m.disable_link_preview, m.protect_content, m.silent, m.pin, m.track_links,
    EXISTS (SELECT 1 FROM broadcast_media AS b WHERE b.message_id = m.id) AS has_media
FROM message_history AS m
WHERE m.status = 'sending'
ORDER BY m.scheduled_at, m.id
"""
)

BROADCAST_MEDIA = text(
    """
-- broadcast_media: the files of these broadcasts, in album order, with their file_ids.
SELECT b.message_id, b.position, b.kind, b.file_id, b.media_id, f.filename, f.mime_type, f.size
FROM broadcast_media AS b JOIN media_files AS f ON f.id = b.media_id
WHERE b.message_id = ANY(CAST(:ids AS integer[]))
ORDER BY b.message_id, b.position
"""
)

BROADCAST_LINKS = text(
    """
-- broadcast_links: the numbered links of these tracked broadcasts.
SELECT message_id, position, url
FROM broadcast_links
WHERE message_id = ANY(CAST(:ids AS integer[]))
"""
)

TAKE_UPLOAD_LEASE = text(
    """
-- take_upload_lease: become the one worker that uploads a broadcast's files, if no
-- other holds that right and a file_id is still missing.
UPDATE message_history
SET media_upload_owner = :owner,
    media_upload_expires_at = now() + make_interval(secs => :lease)
WHERE id = :message_id
  AND (media_upload_owner IS NULL OR media_upload_owner = :owner
       OR media_upload_expires_at <= now())
  AND EXISTS (SELECT 1 FROM broadcast_media
              WHERE message_id = :message_id AND file_id IS NULL)
RETURNING id
"""
)

RENEW_UPLOAD_LEASES = text(
    """
-- renew_upload_leases: keep the uploads this worker has under way.
UPDATE message_history
SET media_upload_expires_at = now() + make_interval(secs => :lease)
WHERE id = ANY(CAST(:ids AS integer[])) AND media_upload_owner = :owner
"""
)

RELEASE_UPLOAD_LEASES = text(
    """
-- release_upload_leases: this worker's upload of these broadcasts is over (or, with no
-- ids, of every broadcast: it is stopping).
UPDATE message_history
SET media_upload_owner = NULL, media_upload_expires_at = NULL
WHERE media_upload_owner = :owner
  AND (CAST(:ids AS integer[]) IS NULL OR id = ANY(CAST(:ids AS integer[])))
"""
)

REMEMBER_FILE_IDS = text(
    """
-- remember_file_ids: the file_ids Telegram gave the files a send uploaded; the first
-- written stays.
UPDATE broadcast_media AS b
SET file_id = f.file_id
FROM unnest(
    CAST(:message_ids AS integer[]), CAST(:positions AS smallint[]), CAST(:file_ids AS text[])
) AS f(message_id, position, file_id)
WHERE b.message_id = f.message_id AND b.position = f.position
  AND b.file_id IS NULL AND f.file_id IS NOT NULL
RETURNING b.message_id
"""
)


@dataclass(frozen=True, slots=True)
class OutgoingMedia:
    """One file of a broadcast as the workers send it."""

    position: int
    kind: MediaKind
    media_id: int
    filename: str
    mime_type: str
    size: int
    file_id: str | None
    """Known once a send has uploaded it: then sent instead of the bytes."""


@dataclass(frozen=True, slots=True)
class BroadcastContent:
    """A sending broadcast as one recipient is sent it."""

    message_id: int
    text: str
    parse_mode: str | None
    media: tuple[OutgoingMedia, ...] = ()
    buttons: InlineKeyboard = ()
    disable_link_preview: bool = False
    protect_content: bool = False
    silent: bool = False
    pin: bool = False
    personal: PersonalText | None = None
    """The text's template, when it holds variables to fill for each recipient."""
    personal_buttons: bool = False
    """Some button text holds variables."""
    tracking: LinkTracking | None = None
    """Its links go out through /r/{token} (broadcasts/tracking.py)."""

    @property
    def is_personal(self) -> bool:
        return self.personal is not None or self.personal_buttons

    @property
    def awaits_upload(self) -> bool:
        """Whether a file has no file_id yet: its next send uploads it."""
        return any(item.file_id is None for item in self.media)


async def sending_broadcasts(connection: AsyncConnection) -> list[BroadcastContent]:
    rows = (await connection.execute(SENDING_BROADCASTS)).all()
    media: defaultdict[int, list[OutgoingMedia]] = defaultdict(list)
    with_media = [row.id for row in rows if row.has_media]
    if with_media:
        for item in await connection.execute(BROADCAST_MEDIA, {"ids": with_media}):
            media[item.message_id].append(
                OutgoingMedia(
                    item.position,
                    item.kind,
                    item.media_id,
                    item.filename,
                    item.mime_type,
                    item.size,
                    item.file_id,
                )
            )
    links: defaultdict[int, dict[str, int]] = defaultdict(dict)
    tracked = [row.id for row in rows if row.track_links]
    if tracked:
        for link in await connection.execute(BROADCAST_LINKS, {"ids": tracked}):
            links[link.message_id][link.url] = link.position
    contents = []
    for row in rows:
        try:
            contents.append(_content(row, tuple(media[row.id]), links.get(row.id)))
        except Exception:
            # Every broadcast was checked when it was made; one that cannot be read now
            # must not keep the others from going out.
            log.exception("broadcast %s cannot be prepared for sending; skipped", row.id)
    return contents


def _content(
    row: Row[Any], media: tuple[OutgoingMedia, ...], links: dict[str, int] | None
) -> BroadcastContent:
    buttons = keyboard(row.id, row.buttons or [])
    personal = _template(row.message_text, row.parse_mode, caption=bool(media))
    tracking = None
    if links is not None:
        template = personal.template if personal is not None else Template((row.message_text,))
        tracking = link_tracking(template, row.parse_mode, buttons, links)
    return BroadcastContent(
        row.id,
        row.message_text,
        row.parse_mode,
        media,
        buttons,
        row.disable_link_preview,
        row.protect_content,
        row.silent,
        row.pin,
        personal,
        any(_has_variables(button.text) for line in buttons for button in line),
        tracking,
    )


def _template(text: str, parse_mode: str | None, *, caption: bool) -> PersonalText | None:
    """The text's template; None for one without variables, and for one made before
    variables existed that does not read as a template: that is sent as it was typed."""
    try:
        return personal_text(text, parse_mode, caption=caption)
    except (InvalidInput, FormattingError):
        return None


def _has_variables(text: str) -> bool:
    try:
        return parse_template(text, "button").is_personal
    except InvalidInput:
        return False


def keyboard(message_id: int, rows: list[list[dict[str, str]]]) -> InlineKeyboard:
    """The stored buttons as the client sends them, callback data naming the broadcast."""
    return tuple(
        tuple(
            UrlButton(button["text"], button["url"])
            if "url" in button
            else CallbackButton(
                button["text"], callback_data_of(message_id, button["callback_data"])
            )
            for button in row
        )
        for row in rows
    )


async def take_upload_lease(
    connection: AsyncConnection, message_id: int, *, owner: str, lease: float
) -> bool:
    """Whether this worker now uploads the broadcast's files (no other worker does)."""
    taken = await connection.scalar(
        TAKE_UPLOAD_LEASE, {"message_id": message_id, "owner": owner, "lease": lease}
    )
    return taken is not None


async def renew_upload_leases(
    connection: AsyncConnection, message_ids: Sequence[int], *, owner: str, lease: float
) -> None:
    await connection.execute(
        RENEW_UPLOAD_LEASES, {"ids": sorted(set(message_ids)), "owner": owner, "lease": lease}
    )


async def release_upload_leases(
    connection: AsyncConnection, message_ids: Sequence[int] | None, *, owner: str
) -> None:
    """Give up the uploads of these broadcasts; of all this worker holds with None."""
    ids = None if message_ids is None else sorted(set(message_ids))
    await connection.execute(RELEASE_UPLOAD_LEASES, {"ids": ids, "owner": owner})


@dataclass(frozen=True, slots=True)
class UploadedFiles:
    """The file_ids one delivery got for the files it uploaded, in album order."""

    message_id: int
    file_ids: tuple[str | None, ...]


async def remember_file_ids(
    connection: AsyncConnection, uploads: Sequence[UploadedFiles]
) -> list[int]:
    """Keep the file_ids for every later send; answers the broadcasts that got any."""
    message_ids, positions, file_ids = [], [], []
    for upload in uploads:
        for position, file_id in enumerate(upload.file_ids):
            message_ids.append(upload.message_id)
            positions.append(position)
            file_ids.append(file_id)
    if not message_ids:
        return []
    rows = await connection.execute(
        REMEMBER_FILE_IDS,
        {"message_ids": message_ids, "positions": positions, "file_ids": file_ids},
    )
    return sorted({row.message_id for row in rows})
