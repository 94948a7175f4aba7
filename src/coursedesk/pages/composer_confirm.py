"""The composer's confirm step: review a draft, then send it once under the form's key.

The confirm form carries the key the composer was opened with (composer_form.Draft). A
confirm page posted again with it, as a reload after Back does, shows the broadcast
already made instead of a Send button; a Send posted again, as a double click does,
leads to that broadcast and sends nothing (broadcasts/idempotency.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.service import Principal
from coursedesk.broadcasts import service
from coursedesk.broadcasts.audiences import Audience
from coursedesk.broadcasts.duplicates import repeated_broadcasts
from coursedesk.broadcasts.idempotency import (
    EarlierAnswer,
    KeyReused,
    create_broadcast_once,
    earlier_answer,
)
from coursedesk.config import Settings
from coursedesk.pages.broadcasts import audience_label
from coursedesk.pages.composer_drafts import discard_sent
from coursedesk.pages.composer_form import AUDIENCE_CHOICES, Draft
from coursedesk.pages.composer_preview import message_preview
from coursedesk.pages.flash import Flash, redirect_with_flash
from coursedesk.pages.forms import all_or_nothing
from coursedesk.pages.rendering import render_page, settings_of


@dataclass(frozen=True)
class Reviewed:
    """A draft that would be accepted now, and whom it would reach."""

    parse_mode: str | None
    audience: Audience
    send_at: datetime | None
    recipients: int
    invalid_user_ids: list[int]


async def review(session: AsyncSession, draft: Draft, settings: Settings) -> Reviewed:
    """Everything create_broadcast would refuse, refused now, and the audience counted."""
    audience = draft.audience()
    checked = await service.check_broadcast(
        session,
        text=draft.text,
        audience=audience,
        parse_mode=draft.parse_mode or None,
        scheduled_at=draft.schedule(settings.timezone),
        content=draft.content(),
        public_base_url=settings.public_base_url,
    )
    return Reviewed(
        checked.parse_mode,
        audience,
        checked.send_at,
        checked.total_recipients,
        checked.invalid_user_ids,
    )


async def _made_with_key(
    session: AsyncSession, principal: Principal, draft: Draft, settings: Settings
) -> EarlierAnswer | None:
    """The broadcast this form's key made from this same draft, if any (KeyReused when
    it made one from another draft)."""
    keyed = draft.keyed(principal.account, draft.audience(), settings.timezone)
    return await earlier_answer(session, keyed)


async def confirm_page(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    draft: Draft,
    *,
    notice: Flash | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Whom the draft reaches and what it would repeat, with a Send button; or, when the
    form's key already sent this draft, that broadcast and no button."""
    settings = settings_of(request)
    try:
        made = await _made_with_key(session, principal, draft, settings)
    except KeyReused:
        # The draft was changed after its form sent a broadcast: a new one, a new key.
        draft, made = draft.with_new_key(), None
    context: dict[str, object] = {
        "draft": draft,
        "preview": await message_preview(session, draft),
        "choices": {key: label for key, label, _ in AUDIENCE_CHOICES},
        "notice": notice,
    }
    if made is not None:
        message = await service.get_message(session, made.message_id)
        context |= {"made": message, "made_audience": audience_label(message)}
    else:
        reviewed = await review(session, draft, settings)
        repeated = await repeated_broadcasts(session, draft.text, reviewed.audience)
        context |= {
            "reviewed": reviewed,
            "repeated": [(r, audience_label(r.message)) for r in repeated],
        }
    return render_page(
        request,
        principal,
        "broadcasts/review.html",
        context,
        section="broadcasts",
        status_code=status_code,
    )


def _people(count: int) -> str:
    return f"{count:,} student{'s' if count != 1 else ''}"


def _already_sent(request: Request, message_id: int) -> RedirectResponse:
    return redirect_with_flash(
        request,
        f"/broadcasts/{message_id}",
        f"Broadcast #{message_id} was already sent from this form, so it was not sent again.",
        "info",
    )


async def send_once(
    request: Request, principal: Principal, session: AsyncSession, draft: Draft
) -> RedirectResponse:
    """Queue the draft unless its form's key already did; either way, on to the broadcast
    (Post/Redirect/Get, so reloading that page posts nothing)."""
    settings = settings_of(request)
    # Before the draft is checked again: a draft sent for a time now past is refused,
    # yet its form posted again must still lead to the broadcast it made.
    made = await _made_with_key(session, principal, draft, settings)
    if made is not None:
        return _already_sent(request, made.message_id)
    reviewed = await review(session, draft, settings)
    async with all_or_nothing(session):
        sent = await create_broadcast_once(
            session,
            draft.keyed(principal.account, reviewed.audience, settings.timezone),
            text=draft.text,
            audience=reviewed.audience,
            actor=principal.actor,
            parse_mode=reviewed.parse_mode,
            scheduled_at=draft.schedule(settings.timezone),
            content=draft.content(),
            public_base_url=settings.public_base_url,
        )
        if not sent.replayed:
            await discard_sent(session, principal, draft)
    made_id = sent.broadcast.message_id
    if sent.replayed:
        return _already_sent(request, made_id)
    people = _people(sent.broadcast.total_recipients)
    text = (
        f"Broadcast #{made_id} scheduled for {people}."
        if draft.send_at == "later"
        else f"Broadcast #{made_id} is on its way to {people}."
    )
    return redirect_with_flash(request, f"/broadcasts/{made_id}", text)
