"""Broadcast history, one broadcast's live progress and recipients, cancel and delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, get_args

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from coursedesk.broadcasts import clicks, earnings, service
from coursedesk.broadcasts.models import (
    DELIVERY_STATUSES,
    MESSAGE_STATUSES,
    DeliveryStatus,
    MessageHistory,
    MessageStatus,
)
from coursedesk.broadcasts.schemas import RecipientType
from coursedesk.errors import CoursedeskError
from coursedesk.pages.broadcast_earnings import Comparison
from coursedesk.pages.broadcast_outcome import LIVE_STATUSES, Outcome
from coursedesk.pages.composer_preview import broadcast_preview
from coursedesk.pages.flash import redirect_with_flash
from coursedesk.pages.forms import all_or_nothing
from coursedesk.pages.paging import PageNumber, pages_of
from coursedesk.pages.rendering import render_page
from coursedesk.pages.routes import PageOperator, page_router
from coursedesk.pages.students import stream_names
from coursedesk.web.deps import PageViewer, Session

router = page_router()

BROADCASTS_PER_PAGE = 25
RECIPIENTS_PER_PAGE = 50
MessageId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def audience_label(message: MessageHistory) -> str:
    """Who a broadcast went to, in words."""
    group = message.recipient_group or ""
    if message.recipient_type == "individual":
        chosen = len(message.audience.get("user_ids", ()))
        return f"{chosen:,} chosen student{'s' if chosen != 1 else ''}"
    if group.startswith("stream:"):
        return f"Stream {group.removeprefix('stream:')}"
    return {"all": "Everyone", "non_course": "Not on a course"}.get(group, group or "—")


def delivery_figures(message: MessageHistory) -> dict[str, int]:
    """Recipients per delivery status, from the counters the database keeps exact."""
    statuses: tuple[DeliveryStatus, ...] = get_args(DeliveryStatus)
    return {status: service.count_with_status(message, status) for status in statuses}


def sending_pace(message: MessageHistory, now: datetime) -> tuple[float | None, float | None]:
    """Messages a second since sending started, and seconds left at that pace."""
    if message.status != "sending" or message.started_at is None:
        return None, None
    elapsed = (now - message.started_at).total_seconds()
    done = message.successful_deliveries + message.failed_deliveries
    if elapsed <= 0 or done == 0:
        return None, None
    rate = done / elapsed
    return rate, message.pending_deliveries / rate


@router.get("/broadcasts")
async def history(
    request: Request,
    principal: PageViewer,
    session: Session,
    status: Annotated[MessageStatus | None, Query()] = None,
    recipient_type: Annotated[RecipientType | None, Query()] = None,
    recipient_group: Annotated[str | None, Query(max_length=210)] = None,
    page: PageNumber = 1,
) -> HTMLResponse:
    where = service.HistoryFilter(recipient_type, recipient_group or None, status)
    messages, total = await service.list_messages(
        session,
        where,
        limit=BROADCASTS_PER_PAGE,
        offset=(page - 1) * BROADCASTS_PER_PAGE,
    )
    groups = [("all", "Everyone"), ("non_course", "Not on a course")] + [
        (f"stream:{name}", f"Stream {name}") for name in await stream_names(session)
    ]
    return render_page(
        request,
        principal,
        "broadcasts/list.html",
        {
            "messages": [
                (m, audience_label(m), delivery_figures(m), Outcome.of(m)) for m in messages
            ],
            "pages": pages_of(request, total=total, limit=BROADCASTS_PER_PAGE, page=page),
            "filters": {
                "status": status or "",
                "recipient_type": recipient_type or "",
                "recipient_group": recipient_group or "",
            },
            "filtered": any((status, recipient_type, recipient_group)),
            "statuses": MESSAGE_STATUSES,
            "groups": groups,
        },
        section="broadcasts",
    )


@router.get("/broadcasts/{message_id}")
async def broadcast_page(
    request: Request,
    principal: PageViewer,
    session: Session,
    message_id: MessageId,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    page: PageNumber = 1,
    window_days: Annotated[int, Query()] = earnings.DEFAULT_WINDOW_DAYS,
) -> HTMLResponse:
    message = await service.get_message(session, message_id)
    earnings.checked_window_days(window_days)
    recipients, shown_total = await service.list_recipients(
        session,
        message_id,
        status,
        limit=RECIPIENTS_PER_PAGE,
        offset=(page - 1) * RECIPIENTS_PER_PAGE,
    )
    rate, seconds_left = sending_pace(message, await service.database_now(session))
    figures = delivery_figures(message)
    links: list[clicks.LinkFigures] = []
    clicked = 0
    if message.track_links:
        links, clicked = await clicks.click_figures(session, message_id)
    preview = await broadcast_preview(session, message)
    # Last: the outcome's query sets the rest of the transaction's plans (earnings.py).
    outcome = await earnings.outcome_for(session, message, window_days)
    context: dict[str, Any] = {
        "message": message,
        "audience": audience_label(message),
        "figures": figures,
        "outcome": Outcome.of(message),
        "rate": rate,
        "seconds_left": seconds_left,
        "live": message.status in LIVE_STATUSES
        or (message.delete_requested_at is not None and message.deleted_at is None),
        "can_cancel": message.status in LIVE_STATUSES,
        "can_delete": message.status not in LIVE_STATUSES
        and message.started_at is not None
        and figures["sent"] > 0
        and not (message.delete_requested_at is not None and message.deleted_at is None),
        "preview": preview,
        "links": links,
        "clicked": clicked,
        "recipients": recipients,
        "chosen_status": status,
        "statuses": DELIVERY_STATUSES,
        "pages": pages_of(request, total=shown_total, limit=RECIPIENTS_PER_PAGE, page=page),
        "comparison": Comparison.of(outcome),
    }
    return render_page(request, principal, "broadcasts/detail.html", context, section="broadcasts")


def _refused(request: Request, message_id: int, exc: CoursedeskError) -> RedirectResponse:
    return redirect_with_flash(
        request, f"/broadcasts/{message_id}", f"Nothing was changed: {exc}", "error"
    )


@router.post("/broadcasts/{message_id}/cancel")
async def cancel(
    request: Request, principal: PageOperator, session: Session, message_id: MessageId
) -> RedirectResponse:
    """Stop a scheduled or sending broadcast; what is not on its way yet never will be."""
    try:
        async with all_or_nothing(session):
            message = await service.cancel_broadcast(session, message_id, principal.actor)
            under_way = await service.sends_under_way(session, message_id)
    except CoursedeskError as exc:
        return _refused(request, message_id, exc)
    unsent = message.cancelled_deliveries - under_way
    flash = (
        f"Broadcast #{message_id} cancelled: {unsent:,} message{'s' if unsent != 1 else ''} "
        "will not be sent."
    )
    if under_way:
        flash += f" Up to {under_way:,} more, already on their way, may still arrive."
    return redirect_with_flash(request, f"/broadcasts/{message_id}", flash)


@router.post("/broadcasts/{message_id}/delete")
async def delete(
    request: Request, principal: PageOperator, session: Session, message_id: MessageId
) -> RedirectResponse:
    """Remove a sent broadcast from the chats it reached; the workers do the deleting."""
    try:
        async with all_or_nothing(session):
            queued = await service.request_deletion(session, message_id, principal.actor)
    except CoursedeskError as exc:
        return _refused(request, message_id, exc)
    return redirect_with_flash(
        request,
        f"/broadcasts/{message_id}",
        f"Deleting broadcast #{message_id} from {queued.queued:,} chats.",
    )
