"""One recipient's send: the broadcast's content as the one Bot API call that carries it.

Text alone goes with sendMessage; one file with the method of its kind, the text as its
caption; two to ten photos and videos with sendMediaGroup, the caption on the first.
Files go by file_id once Telegram gave one, else as their bytes, read from the database
(broadcasts/media.py) a slice at a time as the send is written.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from coursedesk.broadcasts.contents import BroadcastContent, OutgoingMedia
from coursedesk.broadcasts.media import StoredContent, check_complete
from coursedesk.broadcasts.personalisation import NotSendable, Profile, fill_plain
from coursedesk.broadcasts.tracking import Addresses
from coursedesk.telegram.client import (
    AlbumItem,
    AlbumResult,
    CallbackButton,
    FileRef,
    InlineKeyboard,
    SendResult,
    TelegramClient,
    Upload,
    UrlButton,
)


def personalised(
    content: BroadcastContent, profile: Profile, addresses: Addresses | None = None
) -> BroadcastContent:
    """The content as one recipient gets it, its variables filled with their values and,
    for a tracked broadcast, its links with their `addresses`; NotSendable when Telegram
    would refuse it (too long, empty, a button with no text)."""
    tracking = content.tracking if addresses is not None else None
    if not content.is_personal and tracking is None:
        return content
    # Filled with its own links first: that is what checks the length Telegram counts,
    # which tracked links leave as it is (broadcasts/tracking.py).
    text = content.personal.fill(profile) if content.personal is not None else content.text
    parse_mode = content.parse_mode
    buttons = _filled_buttons(content.buttons, profile) if content.personal_buttons else None
    buttons = content.buttons if buttons is None else buttons
    if tracking is not None and addresses is not None:
        if tracking.text is not None:
            text = tracking.text.fill(profile, addresses)
            parse_mode = tracking.text.parse_mode
        buttons = tracking.buttons(buttons, addresses)
    return replace(content, text=text, parse_mode=parse_mode, buttons=buttons)


def _filled_buttons(rows: InlineKeyboard, profile: Profile) -> InlineKeyboard:
    filled: list[tuple[UrlButton | CallbackButton, ...]] = []
    for row_index, row in enumerate(rows):
        line: list[UrlButton | CallbackButton] = []
        for index, button in enumerate(row):
            text = fill_plain(button.text, profile)
            if not text.strip():
                raise NotSendable(
                    f"button {index + 1} of row {row_index + 1} has no text for this user "
                    "(give its variable a fallback)"
                )
            line.append(replace(button, text=text))
        filled.append(tuple(line))
    return tuple(filled)


async def files_to_send(engine: AsyncEngine, content: BroadcastContent) -> list[FileRef]:
    """Each file of the broadcast: its file_id, or, when it has none yet, its stored bytes
    to be read as the send is written; MediaMissing when they are not all there."""
    files: list[FileRef] = []
    for item in content.media:
        files.append(item.file_id if item.file_id is not None else await _upload(engine, item))
    return files


async def _upload(engine: AsyncEngine, item: OutgoingMedia) -> Upload:
    async with engine.connect() as connection:
        await check_complete(connection, item.media_id, item.size)
    return Upload(StoredContent(engine, item.media_id, item.size), item.filename, item.mime_type)


async def send_content(
    client: TelegramClient,
    chat_id: int,
    content: BroadcastContent,
    files: list[FileRef],
) -> SendResult | AlbumResult:
    """Send the broadcast to one chat as one call; `files` as files_to_send answers them.

    A link preview is only ever a text message's; an album takes no buttons (refused
    when the broadcast was made).
    """
    if not content.media:
        return await client.send_message(
            chat_id,
            content.text,
            content.parse_mode,
            reply_markup=content.buttons or None,
            disable_link_preview=content.disable_link_preview,
            disable_notification=content.silent,
            protect_content=content.protect_content,
        )
    caption = content.text or None
    if len(content.media) == 1:
        return await client.send_media(
            chat_id,
            content.media[0].kind,
            files[0],
            caption,
            content.parse_mode,
            reply_markup=content.buttons or None,
            disable_notification=content.silent,
            protect_content=content.protect_content,
        )
    items = [
        AlbumItem("photo" if item.kind == "photo" else "video", file)
        for item, file in zip(content.media, files, strict=True)
    ]
    return await client.send_media_group(
        chat_id,
        items,
        caption,
        content.parse_mode,
        disable_notification=content.silent,
        protect_content=content.protect_content,
    )
