"""The broadcast composer: write, preview, pick the audience, test, review, then send."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.accounts.service import Principal
from coursedesk.broadcasts.idempotency import KeyReused
from coursedesk.broadcasts.one_off import send_test_message
from coursedesk.db.engine import Database
from coursedesk.errors import CoursedeskError
from coursedesk.pages.composer_confirm import confirm_page, send_once
from coursedesk.pages.composer_form import (
    AUDIENCE_CHOICES,
    PARSE_MODES,
    AudienceType,
    Draft,
    LongText,
    ShortText,
    posted_draft,
    preview_of,
)
from coursedesk.pages.flash import Flash
from coursedesk.pages.forms import all_or_nothing
from coursedesk.pages.rendering import render_fragment, render_page, settings_of
from coursedesk.pages.routes import PageOperator, page_router
from coursedesk.pages.students import stream_names
from coursedesk.web.deps import Session, get_database

router = page_router()
fragments = page_router(fragments=True)

Action = Literal["review", "send", "test", "edit"]
PostedDraft = Annotated[Draft, Depends(posted_draft)]
AppDatabase = Annotated[Database, Depends(get_database)]


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
    if not draft.request_key:
        draft = draft.with_new_key()
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
    audience: Annotated[AudienceType | None, Query()] = None,
    stream: Annotated[str, Query(max_length=200)] = "",
    user_ids: Annotated[str, Query(max_length=10_000)] = "",
) -> HTMLResponse:
    """An empty composer with a key of its own and no audience chosen; the query may
    choose one (a student page links here)."""
    draft = Draft(audience_type=audience or "", stream=stream, user_ids=user_ids)
    return await _composer(request, principal, session, draft.with_new_key())


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
    if not draft.request_key:
        draft = draft.with_new_key()
    try:
        if action == "review":
            return await confirm_page(request, principal, session, draft)
        return await send_once(request, principal, session, draft)
    except KeyReused as exc:
        notice = Flash(
            "error",
            f"Not sent: this form already sent another broadcast (#{exc.message_id}). "
            "Check this one and confirm it again.",
        )
        return await confirm_page(
            request, principal, session, draft.with_new_key(), notice=notice, status_code=409
        )
    except CoursedeskError as exc:
        notice = Flash("error", f"Not sent: {exc}")
        return await _composer(request, principal, session, draft, notice=notice, status_code=400)


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
