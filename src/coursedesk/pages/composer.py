"""The broadcast composer: write, attach, preview, pick the audience, test, keep as a
draft, review, then send."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import Principal
from coursedesk.broadcasts.composition import (
    MAX_BUTTON_ROWS,
    MAX_BUTTONS_IN_A_ROW,
    MAX_CALLBACK_DATA,
    MAX_MEDIA,
)
from coursedesk.broadcasts.drafts import StaleDraft
from coursedesk.broadcasts.idempotency import KeyReused
from coursedesk.broadcasts.media import CHUNK_BYTES, MediaWriter, StoredMedia, finish_upload
from coursedesk.broadcasts.one_off import send_test_message
from coursedesk.broadcasts.personalisation import VARIABLES
from coursedesk.db.engine import Database
from coursedesk.errors import CoursedeskError, TooLarge
from coursedesk.pages.composer_confirm import confirm_page, send_once
from coursedesk.pages.composer_drafts import (
    copy_of_broadcast,
    listed_drafts,
    opened_draft,
    save_draft,
)
from coursedesk.pages.composer_form import (
    AUDIENCE_CHOICES,
    PARSE_MODES,
    AudienceType,
    Draft,
    draft_from_form,
    id_parts,
    posted_draft,
)
from coursedesk.pages.composer_preview import message_preview
from coursedesk.pages.flash import Flash
from coursedesk.pages.forms import all_or_nothing
from coursedesk.pages.rendering import render_fragment, render_page, settings_of
from coursedesk.pages.routes import PageOperator, page_router
from coursedesk.pages.students import stream_names
from coursedesk.web.deps import Session, get_database, require_page_role_posting_a_file

router = page_router()
fragments = page_router(fragments=True)

Action = Literal["review", "send", "test", "edit", "save_draft", "save_new", "save_over"]
PostedDraft = Annotated[Draft, Depends(posted_draft)]
AppDatabase = Annotated[Database, Depends(get_database)]
OperatorPostingAFile = Annotated[
    Principal, Depends(require_page_role_posting_a_file(Role.operator))
]
RecordId = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
LIMITS = {
    "media": MAX_MEDIA,
    "rows": MAX_BUTTON_ROWS,
    "in_a_row": MAX_BUTTONS_IN_A_ROW,
    "callback": MAX_CALLBACK_DATA,
}


async def _composer(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    draft: Draft,
    *,
    notice: Flash | None = None,
    stale: StaleDraft | None = None,
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
        "preview": await message_preview(session, draft),
        "notice": notice,
        "stale": stale.current if stale else None,
        "drafts": await listed_drafts(session, principal),
        "variables": VARIABLES,
        "limits": LIMITS,
        "earliest": datetime.now(settings.timezone).strftime("%Y-%m-%dT%H:%M"),
        "tracking": settings.public_base_url is not None,
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
    draft: RecordId = None,
    duplicate: RecordId = None,
) -> HTMLResponse:
    """An empty composer with a key of its own and no audience chosen; the query may
    choose one (a student page links here), open a saved draft, or copy a broadcast."""
    if draft is not None:
        opened = await opened_draft(session, principal, draft)
    elif duplicate is not None:
        opened = await copy_of_broadcast(session, duplicate)
    else:
        opened = Draft(audience_type=audience or "", stream=stream, user_ids=user_ids)
    return await _composer(request, principal, session, opened.with_new_key())


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


async def _save(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    draft: Draft,
    action: Action,
    current_version: str,
) -> Response:
    try:
        return await save_draft(
            request,
            principal,
            session,
            draft,
            as_new=action == "save_new",
            over_version=current_version if action == "save_over" else "",
        )
    except StaleDraft as exc:
        notice = Flash(
            "error",
            f"Not saved: draft #{exc.current.id} was saved elsewhere (another tab or window) "
            "after you opened it. Save yours over it, save yours as a new draft, or open "
            "the one saved.",
        )
        return await _composer(
            request, principal, session, draft, notice=notice, stale=exc, status_code=409
        )
    except CoursedeskError as exc:
        notice = Flash("error", f"Not saved: {exc}")
        return await _composer(request, principal, session, draft, notice=notice, status_code=400)


@router.post("/broadcasts/new")
async def compose(
    request: Request,
    principal: PageOperator,
    session: Session,
    database: AppDatabase,
    draft: PostedDraft,
    action: Annotated[Action, Form()] = "review",
    current_version: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """`review` states the count and asks to confirm; only `send` queues the broadcast."""
    if action == "edit":
        return await _composer(request, principal, session, draft)
    if action == "test":
        return await _test_send(request, principal, session, database, draft)
    if action in ("save_draft", "save_new", "save_over"):
        return await _save(request, principal, session, draft, action, current_version)
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


async def _stored(session: AsyncSession, principal: Principal, upload: UploadFile) -> StoredMedia:
    writer = MediaWriter(
        session,
        filename=upload.filename,
        declared_type=upload.content_type,
        actor=principal.actor,
    )
    while data := await upload.read(CHUNK_BYTES):
        await writer.write(data)
    return await finish_upload(session, writer, principal.actor)


@router.post("/broadcasts/new/attach")
async def attach(request: Request, principal: OperatorPostingAFile, session: Session) -> Response:
    """The composer posted with a file to attach, as a browser without its script sends
    it: the file is stored as POST /api/media stores it, and the composer comes back
    holding it."""
    form = await request.form()
    draft = await draft_from_form(form)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        notice = Flash("error", "Choose a file to attach first.")
        return await _composer(request, principal, session, draft, notice=notice, status_code=400)
    try:
        async with all_or_nothing(session):
            stored = await _stored(session, principal, upload)
    except CoursedeskError as exc:
        notice = Flash("error", f"Not attached: {exc}")
        status = 413 if isinstance(exc, TooLarge) else 400
        return await _composer(
            request, principal, session, draft, notice=notice, status_code=status
        )
    listed = [*id_parts(draft.media_ids), str(stored.media_id)]
    attached = replace(draft, media_ids=", ".join(listed))
    notice = Flash("success", f"Attached {upload.filename}.")
    return await _composer(request, principal, session, attached, notice=notice)


@fragments.post("/broadcasts/preview")
async def preview(
    request: Request, _: PageOperator, session: Session, draft: PostedDraft
) -> HTMLResponse:
    """The composer's live preview, as HTML for its script to show."""
    return render_fragment(
        request, "broadcasts/preview.html", {"preview": await message_preview(session, draft)}
    )
