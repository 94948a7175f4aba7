"""The broadcast routes of docs/reference.md §5.7 and §9: send, history, one broadcast,
recipients, cancel, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from coursedesk.analytics.export import csv_response
from coursedesk.broadcasts import clicks, service
from coursedesk.broadcasts.audiences import count_recipients
from coursedesk.broadcasts.detail import message_detail
from coursedesk.broadcasts.idempotency import (
    MAX_KEY_LENGTH,
    KeyedRequest,
    KeyReused,
    checked_key,
    create_broadcast_once,
    request_hash,
)
from coursedesk.broadcasts.models import DeliveryStatus, MessageStatus
from coursedesk.broadcasts.one_off import SendingUnavailable, send_test_message
from coursedesk.broadcasts.schemas import (
    AudienceCount,
    CountRequest,
    DeletionAnswer,
    MessageDetail,
    MessageItem,
    MessagePage,
    RecipientItem,
    RecipientPage,
    RecipientType,
    SendAnswer,
    SendRequest,
    TestSendAnswer,
    TestSendRequest,
)
from coursedesk.db.engine import Database
from coursedesk.web.deps import Operator, Session, Viewer, get_database, settings_of
from coursedesk.web.errors import error_response

router = APIRouter(prefix="/api/messages", tags=["broadcasts"])

MessageId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The broadcast's id")]
CSV_COLUMNS = (
    "user_id",
    "username",
    "delivery_status",
    "telegram_message_id",
    "error",
    "attempts",
    "sent_at",
    "updated_at",
    "pinned_at",
    "pin_error",
)


IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=MAX_KEY_LENGTH,
        description=(
            "Any 1 to 255 visible ASCII characters, e.g. a UUID: the same key with the same "
            "body within 24 hours answers the broadcast the first request made, and queues "
            "nothing; with another body, 409. Keys are the caller's own (a staff user, or "
            "one token)."
        ),
    ),
]


@router.post(
    "/send",
    status_code=201,
    summary="Queue a broadcast, or count its audience (operator)",
    description=(
        "The audience is resolved at once: users who blocked the bot are left out, "
        "repeated ids count once, listed ids that are no user come back in "
        "`invalid_user_ids`. `scheduled_at` needs a UTC offset; up to a minute in the past "
        "means now. The text is checked against Telegram's rules for `parse_mode` (HTML or "
        "MarkdownV2) before anything is queued. `media` (files from POST /api/media) sends "
        "one file with the text as its caption, or 2 to 10 photos and videos as an album; "
        "each file is uploaded to Telegram once, and sent by file_id to everyone else. "
        "With `dry_run` the body is refused just as "
        "it would be without, else the audience is counted (200) and nothing is written. "
        "With an `Idempotency-Key`, a request sent again (a retry, a double click) is "
        "answered with the first one's broadcast, its status and body as first given, and "
        "the header `Idempotent-Replayed: true`; a dry run neither uses nor checks the key."
    ),
    responses={
        200: {"model": AudienceCount, "description": "dry_run: the audience's size"},
        409: {
            "description": (
                "The Idempotency-Key was used with another body within 24 hours; "
                "`message_id` names the broadcast it made"
            )
        },
    },
)
async def send(
    body: SendRequest,
    request: Request,
    principal: Operator,
    session: Session,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    public_base_url = settings_of(request).public_base_url
    if body.dry_run:
        checked = await service.check_broadcast(
            session,
            text=body.text,
            audience=body.audience,
            parse_mode=body.parse_mode,
            scheduled_at=body.scheduled_at,
            content=body.content(),
            public_base_url=public_base_url,
        )
        return JSONResponse(
            AudienceCount(
                total_recipients=checked.total_recipients,
                invalid_user_ids=checked.invalid_user_ids,
            ).model_dump()
        )
    if idempotency_key is None:
        created = await service.create_broadcast(
            session,
            text=body.text,
            audience=body.audience,
            actor=principal.actor,
            parse_mode=body.parse_mode,
            scheduled_at=body.scheduled_at,
            content=body.content(),
            public_base_url=public_base_url,
        )
        return SendAnswer(**asdict(created))
    keyed = KeyedRequest(
        principal.account,
        checked_key(idempotency_key),
        request_hash(body.text, body.audience, body.parse_mode, body.scheduled_at, body.content()),
    )
    try:
        sent = await create_broadcast_once(
            session,
            keyed,
            text=body.text,
            audience=body.audience,
            actor=principal.actor,
            parse_mode=body.parse_mode,
            scheduled_at=body.scheduled_at,
            content=body.content(),
            public_base_url=public_base_url,
        )
    except KeyReused as exc:
        return error_response(409, str(exc), message_id=exc.message_id)
    return JSONResponse(
        SendAnswer(**asdict(sent.broadcast)).model_dump(),
        status_code=sent.status_code,
        headers={"Idempotent-Replayed": "true"} if sent.replayed else None,
    )


@router.post(
    "/count",
    summary="Count an audience (operator)",
    description=(
        "Who a broadcast to `audience` would reach now, with no text to check yet: the "
        "composer's live count. Nobody in it answers 0; nothing is written."
    ),
)
async def count(body: CountRequest, _: Operator, session: Session) -> AudienceCount:
    counted = await count_recipients(session, body.audience)
    return AudienceCount(
        total_recipients=counted.total_recipients, invalid_user_ids=counted.invalid_user_ids
    )


@router.post(
    "/test",
    summary="Send the text to one chat now (operator)",
    description="Answers Telegram's outcome; 503 when no bot token is set or sending is paused.",
    responses={503: {"description": "Nothing can be sent right now"}},
)
async def test_send(
    body: TestSendRequest,
    request: Request,
    principal: Operator,
    session: Session,
    database: Annotated[Database, Depends(get_database)],
) -> Any:
    try:
        result = await send_test_message(
            session,
            database.primary,
            settings_of(request),
            chat_id=body.chat_id,
            text=body.text,
            parse_mode=body.parse_mode,
            actor=principal.actor,
        )
    except SendingUnavailable as exc:
        return error_response(503, str(exc))
    return TestSendAnswer(
        outcome=result.outcome,
        telegram_message_id=result.telegram_message_id,
        error=result.error,
    )


@router.get("/history", summary="Broadcasts, newest first")
async def history(
    _: Viewer,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    recipient_type: RecipientType | Literal[""] | None = None,
    recipient_group: Annotated[str | None, Query(max_length=210)] = None,
    status: MessageStatus | Literal[""] | None = None,
) -> MessagePage:
    # An empty parameter (a form's "any") filters nothing, as on /api/users.
    messages, total = await service.list_messages(
        session,
        service.HistoryFilter(recipient_type or None, recipient_group or None, status or None),
        limit=limit,
        offset=offset,
    )
    items = [MessageItem.model_validate(m) for m in messages]
    clicked = await clicks.clicked_counts(session, [m.id for m in messages if m.track_links])
    for item in items:
        item.clicked_count = clicked.get(item.id, 0)
    return MessagePage(items=items, total=total)


@router.get(
    "/{message_id:int}",
    summary="One broadcast and its delivery figures",
    description=(
        "With its files, and for a broadcast whose links are tracked, each link with its "
        "unique and total clicks (`links`) and the recipients who clicked any "
        "(`clicked_count`)."
    ),
)
async def one_message(message_id: MessageId, _: Viewer, session: Session) -> MessageDetail:
    return await message_detail(session, message_id)


async def _csv_rows(
    database: Database, message_id: int, status: DeliveryStatus | None
) -> AsyncIterator[list[object]]:
    """The recipients as CSV rows, on a session of its own that lasts as long as the
    download; from the primary, as the route's JSON is (a replica may lag behind a live
    broadcast)."""
    async with database.sessions() as session:
        rows = await session.stream_scalars(
            service.recipients_select(message_id, status).execution_options(yield_per=2000)
        )
        async for recipient in rows:
            yield [getattr(recipient, column) for column in CSV_COLUMNS]


@router.get(
    "/{message_id:int}/recipients",
    summary="A broadcast's recipients with their delivery state",
    description="In user_id order. `format=csv` streams every matching recipient as CSV.",
    responses={200: {"content": {"text/csv": {}}}},
)
async def recipients(
    message_id: MessageId,
    _: Viewer,
    session: Session,
    database: Annotated[Database, Depends(get_database)],
    status: DeliveryStatus | Literal[""] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    format: Literal["json", "csv"] = "json",
) -> Any:
    only = status or None  # an empty status filters nothing
    if format == "csv":
        await service.get_message(session, message_id)
        return csv_response(
            f"broadcast-{message_id}.csv", CSV_COLUMNS, _csv_rows(database, message_id, only)
        )
    rows, total = await service.list_recipients(
        session, message_id, only, limit=limit, offset=offset
    )
    return RecipientPage(items=[RecipientItem.model_validate(r) for r in rows], total=total)


@router.post(
    "/{message_id:int}/cancel",
    summary="Stop a scheduled or sending broadcast (operator)",
    responses={409: {"description": "The broadcast is sent or cancelled already"}},
    description=(
        "Its pending recipients become `cancelled`; a sent or cancelled one gives 409. Sends "
        "already on their way (a worker's in-flight limit at most) are among the cancelled "
        "in this answer, yet may still land: those then move to `sent`, and a delete of the "
        "broadcast removes them too."
    ),
)
async def cancel(message_id: MessageId, principal: Operator, session: Session) -> MessageItem:
    message = await service.cancel_broadcast(session, message_id, principal.actor)
    return MessageItem.model_validate(message)


@router.post(
    "/{message_id:int}/delete",
    status_code=202,
    responses={409: {"description": "Scheduled or sending, or nothing was delivered to delete"}},
    summary="Delete a sent broadcast from the chats (operator)",
    description=(
        "Queued for the workers, which call deleteMessage for every delivered recipient at "
        "the shared rate. Progress shows on the broadcast: `deletion` is `deleting`, then "
        "`deleted`; recipients become `deleted`, and those Telegram refuses (messages older "
        "than 48 hours) stay `sent` with the refusal as their error and are counted in "
        "`delete_refused`. A cancelled broadcast's sends that land after the request are "
        "deleted too, so more than `queued` may be deleted in the end. 409 while it is "
        "scheduled or sending, or has nothing delivered."
    ),
)
async def delete(message_id: MessageId, principal: Operator, session: Session) -> DeletionAnswer:
    queued = await service.request_deletion(session, message_id, principal.actor)
    return DeletionAnswer(message_id=queued.message_id, deletion="deleting", queued=queued.queued)
