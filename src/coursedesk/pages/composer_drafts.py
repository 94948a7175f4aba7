"""The composer's drafts and copies: keep a composition to finish later, open it again,
delete it; open a past broadcast as a new composition (broadcasts/drafts.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.service import Principal
from coursedesk.broadcasts import drafts, service
from coursedesk.broadcasts.composition import media_of
from coursedesk.broadcasts.media_pruning import keep_media
from coursedesk.errors import InvalidInput
from coursedesk.pages.composer_form import ButtonField, Draft, id_parts, whole_number
from coursedesk.pages.flash import redirect_with_flash
from coursedesk.pages.forms import all_or_nothing
from coursedesk.pages.routes import PageOperator, page_router
from coursedesk.web.deps import Session

router = page_router()
DraftId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_TITLE_LENGTH = 60


def owner_of(principal: Principal) -> int:
    if principal.user_id is None:
        raise InvalidInput("drafts are kept for staff signed in with a password")
    return principal.user_id


def _number(value: str, what: str) -> int:
    number = whole_number(value, 2**63 - 1)
    if not number:
        raise InvalidInput(f"{what} is a whole number, not {value[:20]!r}")
    return number


async def save_draft(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    draft: Draft,
    *,
    as_new: bool = False,
    over_version: str = "",
) -> RedirectResponse:
    """Keep the composition as a new draft, or over the one it was opened from if that
    is still at the version the form has (or at `over_version`, to save over a newer
    one on purpose); StaleDraft otherwise. On to the composer holding it."""
    owner = owner_of(principal)
    async with all_or_nothing(session):
        # Locked against a media prune until the draft naming them is saved.
        await keep_media(session, draft.listed_media())
        if draft.draft_id and not as_new:
            draft_id = _number(draft.draft_id, "the draft")
            version = _number(over_version or draft.draft_version, "the draft's version")
            await drafts.update_draft(session, owner, draft_id, version, draft.saved())
            said = f"Draft #{draft_id} saved."
        else:
            draft_id, _ = await drafts.create_draft(session, owner, draft.saved())
            said = f"Saved as draft #{draft_id}."
    return redirect_with_flash(request, f"/broadcasts/new?draft={draft_id}", said)


async def opened_draft(session: AsyncSession, principal: Principal, draft_id: int) -> Draft:
    saved = await drafts.get_draft(session, owner_of(principal), draft_id)
    return Draft.from_saved(saved.fields, draft_id=saved.id, version=saved.version)


async def discard_sent(session: AsyncSession, principal: Principal, draft: Draft) -> None:
    """The draft a broadcast was just made from is done with."""
    draft_id = whole_number(draft.draft_id, 2**63 - 1)
    if draft_id is not None and principal.user_id is not None:
        await drafts.discard_sent_draft(session, principal.user_id, draft_id)


async def listed_drafts(session: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    """The owner's drafts as the composer lists them: a title, when, and the version."""
    if principal.user_id is None:
        return []
    listed = []
    for saved in await drafts.list_drafts(session, principal.user_id):
        text = str(saved.fields.get("text") or "").strip()
        title = text.splitlines()[0] if text else "No text yet"
        if len(title) > _TITLE_LENGTH:
            title = title[: _TITLE_LENGTH - 1] + "…"
        media = str(saved.fields.get("media_ids") or "")
        files = len(id_parts(media))
        listed.append(
            {"id": saved.id, "title": title, "updated_at": saved.updated_at, "files": files}
        )
    return listed


async def copy_of_broadcast(session: AsyncSession, message_id: int) -> Draft:
    """A past broadcast as a new composition: its text, formatting, media, buttons,
    options and audience. It is sent only once confirmed, under a key of its own."""
    message = await service.get_message(session, message_id)
    audience = message.audience
    media = await media_of(session, message_id)
    buttons = tuple(
        ButtonField(
            str(row_number),
            button.get("text", ""),
            "url" if "url" in button else "callback",
            button.get("url") or button.get("callback_data") or "",
        )
        for row_number, row in enumerate(message.buttons or [])
        for button in row
    )
    user_ids = audience.get("user_ids") or []
    return Draft(
        text=message.message_text,
        parse_mode=message.parse_mode or "",
        audience_type=str(audience.get("type", "")),
        stream=str(audience.get("stream") or ""),
        user_ids=", ".join(str(user_id) for user_id in user_ids),
        media_ids=", ".join(str(item.media_id) for item in media),
        buttons=buttons,
        track_links="1" if message.track_links else "",
        holdout_percent=str(message.holdout_percent),
    ).with_options(lambda name: bool(getattr(message, name)))


@router.post("/broadcasts/drafts/{draft_id}/delete")
async def delete_draft(
    request: Request, principal: PageOperator, session: Session, draft_id: DraftId
) -> RedirectResponse:
    async with all_or_nothing(session):
        await drafts.delete_draft(session, owner_of(principal), draft_id)
    return redirect_with_flash(request, "/broadcasts/new", f"Draft #{draft_id} deleted.")
