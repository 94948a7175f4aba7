"""The composer's preview: the message bubble as a chosen student would see it, with its
media and buttons, and how long the text gets for the longest name in the audience."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts.composition import media_of
from coursedesk.broadcasts.media import media_by_ids
from coursedesk.broadcasts.models import MessageHistory
from coursedesk.broadcasts.personalisation import (
    Profile,
    longest_in_audience,
    parse_template,
    personal_text,
    profiles,
)
from coursedesk.broadcasts.service import checked_parse_mode
from coursedesk.errors import InvalidInput
from coursedesk.pages.composer_form import Draft, preview_of
from coursedesk.telegram.formatting import FormattingError

MediaItem = dict[str, Any]
ButtonRow = list[dict[str, str]]


async def chosen_media(session: AsyncSession, media_ids: Sequence[int]) -> list[MediaItem]:
    """The chosen files in album order; an id that names no file is shown as missing."""
    found = await media_by_ids(session, media_ids)
    items = []
    for media_id in media_ids:
        item = found.get(media_id)
        if item is None:
            items.append({"media_id": media_id, "kind": "missing", "filename": "", "size": 0})
        else:
            items.append(
                {
                    "media_id": media_id,
                    "kind": item.kind,
                    "filename": item.filename,
                    "size": item.size,
                }
            )
    return items


def _button_text(text: str, profile: Profile | None) -> str:
    template = parse_template(text, "button")
    if profile is None:
        return template.with_names(lambda value: value)
    return template.fill(profile, lambda value: value)


def shown_buttons(
    rows: Sequence[Sequence[dict[str, str]]], profile: Profile | None
) -> list[ButtonRow]:
    """Button rows as the chat shows them: texts filled for the student, or with names."""
    return [
        [
            {
                "text": _button_text(button.get("text", ""), profile),
                "url": button.get("url", ""),
                "callback": button.get("callback_data", ""),
            }
            for button in row
        ]
        for row in rows
    ]


async def _student(session: AsyncSession, user_id: int | None) -> tuple[Profile | None, str]:
    if user_id is None:
        return None, ""
    profile = (await profiles(session, [user_id])).get(user_id)
    if profile is None:
        raise InvalidInput(f"the preview's student {user_id} is not a user")
    name = profile.get("first_name") or (
        f"@{profile['username']}" if profile.get("username") else ""
    )
    return profile, f"{name or 'User'} ({user_id})"


async def longest_for_audience(
    session: AsyncSession, draft: Draft, *, caption: bool
) -> dict[str, Any] | None:
    """For a text with variables and an audience chosen: the member it shows longest for,
    how long, and whether that passes Telegram's limit (the send would be refused)."""
    try:
        audience = draft.audience()
        personal = personal_text(
            draft.text, checked_parse_mode(draft.parse_mode or None), caption=caption
        )
    except (InvalidInput, FormattingError):
        return None
    if personal is None:
        return None
    longest = await longest_in_audience(session, audience, personal)
    if longest is None:
        return None
    user_id, length = longest
    return {
        "user_id": user_id,
        "length": length,
        "limit": personal.limit,
        "what": personal.what,
        "over": length > personal.limit,
    }


async def message_preview(session: AsyncSession, draft: Draft) -> dict[str, Any]:
    """Everything the composer's bubble shows for the draft, or why it cannot show it."""
    try:
        media_ids = draft.listed_media()
        profile, student = await _student(session, draft.preview_user())
        rows = [
            [button.model_dump(exclude_none=True) for button in row] for row in draft.button_rows()
        ]
        buttons = shown_buttons(rows, profile)
    except InvalidInput as exc:
        return {"html": None, "error": str(exc), "length": None, "media": [], "buttons": []}
    media = await chosen_media(session, media_ids)
    preview = preview_of(draft.text, draft.parse_mode, profile=profile, caption=bool(media))
    preview |= {
        "media": media,
        "buttons": buttons,
        "student": student,
        "longest": await longest_for_audience(session, draft, caption=bool(media)),
    }
    return preview


async def broadcast_preview(session: AsyncSession, message: MessageHistory) -> dict[str, Any]:
    """A sent broadcast's bubble: its text with the variables' names, media and buttons."""
    sent = await media_of(session, message.id)
    preview = preview_of(message.message_text, message.parse_mode or "", caption=bool(sent))
    preview |= {
        "media": [
            {"media_id": m.media_id, "kind": m.kind, "filename": m.filename, "size": m.size}
            for m in sent
        ],
        "buttons": shown_buttons(message.buttons or [], None),
    }
    return preview
