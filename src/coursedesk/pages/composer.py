"""The broadcast composer: write, preview, pick the audience, test, review, then send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.service import Principal
from coursedesk.broadcasts import service
from coursedesk.broadcasts.audiences import Audience
from coursedesk.broadcasts.one_off import send_test_message
from coursedesk.config import Settings
from coursedesk.db.engine import Database
from coursedesk.errors import CoursedeskError, InvalidInput
from coursedesk.pages.composer_form import (
    AUDIENCE_CHOICES,
    PARSE_MODES,
    AudienceType,
    Draft,
    LongText,
    ShortText,
    posted_draft,
)
from coursedesk.pages.flash import Flash, redirect_with_flash
from coursedesk.pages.forms import all_or_nothing
from coursedesk.pages.rendering import render_fragment, render_page, settings_of
from coursedesk.pages.routes import PageOperator, page_router
from coursedesk.pages.students import stream_names
from coursedesk.telegram.formatting import FormattingError, plain_text, render_preview_html
from coursedesk.web.deps import Session, get_database

router = page_router()
fragments = page_router(fragments=True)

Action = Literal["review", "send", "test", "edit"]
PostedDraft = Annotated[Draft, Depends(posted_draft)]
AppDatabase = Annotated[Database, Depends(get_database)]


def preview_of(text: str, parse_mode: str) -> dict[str, Any]:
    """The message as a chat would show it, or why Telegram would refuse it."""
    if not text.strip():
        return {"html": None, "error": None, "length": 0}
    try:
        mode = service.checked_parse_mode(parse_mode or None)
        return {
            "html": render_preview_html(text, mode),
            "error": None,
            "length": len(plain_text(text, mode)),
        }
    except (FormattingError, InvalidInput) as exc:
        return {"html": None, "error": str(exc), "length": None}


async def _composer(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    draft: Draft,
    *,
    notice: Flash | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    settings = settings_of(request)
    context = {
        "draft": draft,
        "choices": AUDIENCE_CHOICES,
        "parse_modes": PARSE_MODES,
        "streams": await stream_names(session),
        "preview": preview_of(draft.text, draft.parse_mode),
        "notice": notice,
        "earliest": datetime.now(settings.timezone).strftime("%Y-%m-%dT%H:%M"),
    }
    return render_page(
        request,
        principal,
        "broadcasts/compose.html",
        context,
        section="broadcasts",
        status_code=status_code,
    )


@router.get("/broadcasts/new")
async def new_broadcast(
    request: Request,
    principal: PageOperator,
    session: Session,
    audience: Annotated[AudienceType, Query()] = "all",
    stream: Annotated[str, Query(max_length=200)] = "",
    user_ids: Annotated[str, Query(max_length=10_000)] = "",
) -> HTMLResponse:
    """An empty composer; the query may choose its audience (a student page links here)."""
    draft = Draft(audience_type=audience, stream=stream, user_ids=user_ids)
    return await _composer(request, principal, session, draft)


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
    )
    return Reviewed(
        checked.parse_mode,
        audience,
        checked.send_at,
        checked.total_recipients,
        checked.invalid_user_ids,
    )


async def _test_send(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    database: Database,
    draft: Draft,
) -> HTMLResponse:
    try:
        chat_id = draft.test_chat()
        async with all_or_nothing(session):
            result = await send_test_message(
                session,
                database.primary,
                settings_of(request),
                chat_id=chat_id,
                text=draft.text,
                parse_mode=draft.parse_mode or None,
                actor=principal.actor,
            )
    except CoursedeskError as exc:
        notice = Flash("error", f"The test was not sent: {exc}")
        return await _composer(request, principal, session, draft, notice=notice, status_code=400)
    if result.outcome == "delivered":
        notice = Flash("success", f"Test message delivered to chat {chat_id}.")
    elif result.outcome == "blocked":
        notice = Flash("error", f"Chat {chat_id} has blocked the bot: {result.error}")
    else:
        notice = Flash("error", f"Telegram did not deliver the test: {result.error}")
    return await _composer(request, principal, session, draft, notice=notice)


@router.post("/broadcasts/new")
async def compose(
    request: Request,
    principal: PageOperator,
    session: Session,
    database: AppDatabase,
    draft: PostedDraft,
    action: Annotated[Action, Form()] = "review",
) -> Response:
    """`review` states the count and asks to confirm; only `send` queues the broadcast."""
    if action == "edit":
        return await _composer(request, principal, session, draft)
    if action == "test":
        return await _test_send(request, principal, session, database, draft)
    settings = settings_of(request)
    try:
        reviewed = await review(session, draft, settings)
        if action == "send":
            async with all_or_nothing(session):
                created = await service.create_broadcast(
                    session,
                    text=draft.text,
                    audience=reviewed.audience,
                    actor=principal.actor,
                    parse_mode=reviewed.parse_mode,
                    scheduled_at=draft.schedule(settings.timezone),
                )
    except CoursedeskError as exc:
        notice = Flash("error", f"Not sent: {exc}")
        return await _composer(request, principal, session, draft, notice=notice, status_code=400)
    if action == "review":
        return render_page(
            request,
            principal,
            "broadcasts/review.html",
            {
                "draft": draft,
                "reviewed": reviewed,
                "preview": preview_of(draft.text, draft.parse_mode),
                "choices": {key: label for key, label, _ in AUDIENCE_CHOICES},
            },
            section="broadcasts",
        )
    people = f"{created.total_recipients:,} student{'s' if created.total_recipients != 1 else ''}"
    text = (
        f"Broadcast #{created.message_id} scheduled for {people}."
        if draft.send_at == "later"
        else f"Broadcast #{created.message_id} is on its way to {people}."
    )
    return redirect_with_flash(request, f"/broadcasts/{created.message_id}", text)


@fragments.post("/broadcasts/preview")
async def preview(
    request: Request,
    _: PageOperator,
    text: LongText = "",
    parse_mode: ShortText = "",
) -> HTMLResponse:
    """The composer's live preview, as HTML for its script to show."""
    return render_fragment(
        request, "broadcasts/preview.html", {"preview": preview_of(text, parse_mode)}
    )
