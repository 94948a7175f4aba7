"""Broadcasts as the API and CLI see them: create, read, cancel and queue deletion.

Every function works in the caller's transaction and never commits; the signals it
sends reach the workers when that transaction commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.audit.service import record
from coursedesk.broadcasts import composition, deliveries, tracking
from coursedesk.broadcasts.audiences import (
    Audience,
    allow_long_statement,
    count_recipients,
    insert_recipients,
    recipient_group_of,
    recipient_type_of,
    unknown_user_ids,
)
from coursedesk.broadcasts.composition import NO_CONTENT, CheckedContent, ContentRequest
from coursedesk.broadcasts.deletions import CURSOR_START
from coursedesk.broadcasts.holdout import checked_holdout_percent, holdout_size
from coursedesk.broadcasts.models import (
    DeliveryStatus,
    MessageHistory,
    MessageRecipient,
    MessageStatus,
)
from coursedesk.broadcasts.personalisation import (
    PersonalText,
    longest_in_audience,
    parse_template,
    personal_text,
)
from coursedesk.broadcasts.signals import SignalKind, send_signal
from coursedesk.errors import Conflict, InvalidInput, NotFound
from coursedesk.telegram.formatting import (
    FormattingError,
    normalize_parse_mode,
    validate_caption,
    validate_text,
)

SCHEDULE_GRACE = timedelta(minutes=1)
"""A scheduled_at this little in the past is taken as "now" (clocks and typing differ)."""
SCHEDULE_HORIZON = timedelta(days=366)
BROADCAST_PARSE_MODES = ("HTML", "MarkdownV2")


def checked_parse_mode(parse_mode: str | None) -> str | None:
    """The Bot API spelling of HTML or MarkdownV2, None for plain text; anything else is 400."""
    try:
        mode = normalize_parse_mode(parse_mode)
    except FormattingError as exc:
        raise InvalidInput(f"parse_mode: {exc}") from None
    if mode is not None and mode not in BROADCAST_PARSE_MODES:
        raise InvalidInput(f"parse_mode: use HTML, MarkdownV2 or none, not {mode}")
    return mode


def checked_text(text: str, parse_mode: str | None, *, caption: bool = False) -> None:
    """Refuse what Telegram would refuse: bad markup, and for a message an empty text or
    over 4096 characters, for a caption (the text of a media message) over 1024."""
    try:
        if caption:
            validate_caption(text, parse_mode)
        else:
            validate_text(text, parse_mode)
    except FormattingError as exc:
        raise InvalidInput(f"text: {exc}") from None


def checked_schedule(scheduled_at: datetime | None, now: datetime) -> datetime | None:
    """None to send at once; refuses naive, past (beyond the grace) and far-off times."""
    if scheduled_at is None:
        return None
    if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
        raise InvalidInput("scheduled_at: give a UTC offset, e.g. 2030-01-31T09:00:00+00:00")
    if scheduled_at < now - SCHEDULE_GRACE:
        raise InvalidInput("scheduled_at: is in the past")
    if scheduled_at > now + SCHEDULE_HORIZON:
        raise InvalidInput("scheduled_at: is more than a year ahead")
    return max(scheduled_at, now)


@dataclass(frozen=True)
class CreatedBroadcast:
    message_id: int
    status: MessageStatus
    total_recipients: int
    invalid_user_ids: list[int]


@dataclass(frozen=True)
class CheckedBroadcast:
    """A broadcast create_broadcast would accept now, and whom it would reach."""

    parse_mode: str | None
    send_at: datetime | None
    total_recipients: int
    invalid_user_ids: list[int]


@dataclass(frozen=True)
class _CheckedMessage:
    parse_mode: str | None
    now: datetime
    send_at: datetime | None
    content: CheckedContent
    personal: PersonalText | None
    links: list[str] | None
    """The links to track, numbered by their index; None: not tracked."""
    holdout_percent: int


async def database_now(session: AsyncSession) -> datetime:
    now: datetime = await session.scalar(select(func.now()))  # type: ignore[assignment]
    return now


async def _checked_message(
    session: AsyncSession,
    text: str,
    parse_mode: str | None,
    scheduled_at: datetime | None,
    content: ContentRequest,
    public_base_url: str | None,
) -> _CheckedMessage:
    """The parse mode, text, content, time and tracked links of a broadcast, refused as
    InvalidInput if wrong."""
    track = tracking.tracking_chosen(content.track_links, public_base_url)
    mode = checked_parse_mode(parse_mode)
    holdout_percent = checked_holdout_percent(content.holdout_percent)
    checked = await composition.check_content(session, content)
    personal = checked_personal_text(text, mode, caption=checked.has_caption)
    links = None
    if track:
        template = personal.template if personal is not None else parse_template(text, "text")
        button_urls = [b.url for row in checked.buttons for b in row if b.url is not None]
        links = tracking.links_to_track(template, mode, button_urls)
    now = await database_now(session)
    send_at = checked_schedule(scheduled_at, now)
    return _CheckedMessage(mode, now, send_at, checked, personal, links, holdout_percent)


def checked_personal_text(
    text: str, parse_mode: str | None, *, caption: bool
) -> PersonalText | None:
    """checked_text for a text that may hold variables: their names, and the markup with
    the values left out; the template to fill when it has any."""
    try:
        personal = personal_text(text, parse_mode, caption=caption)
    except FormattingError as exc:
        raise InvalidInput(f"text: {exc}") from None
    if personal is None:
        checked_text(text, parse_mode, caption=caption)
    return personal


async def _check_longest(
    session: AsyncSession, audience: Audience, personal: PersonalText | None
) -> None:
    """Refuse a text that, filled in, would be too long for someone in the audience,
    naming the one it would be longest for."""
    if personal is None:
        return
    longest = await longest_in_audience(session, audience, personal)
    if longest is not None and longest[1] > personal.limit:
        user_id, length = longest
        raise InvalidInput(
            f"text: too long for user {user_id} once filled in: {length} characters after "
            f"formatting, the limit of a {personal.what} is {personal.limit} (shorten the "
            "text or the fallbacks)"
        )


def _nobody_would_receive(invalid_user_ids: Sequence[int]) -> InvalidInput:
    unknown = f" (not users: {_listed(invalid_user_ids)})" if invalid_user_ids else ""
    return InvalidInput(f"audience: nobody would receive this broadcast{unknown}")


def _all_held_out(total: int, percent: int) -> InvalidInput:
    return InvalidInput(
        f"holdout_percent: {percent} % of {total} recipient{'s' if total != 1 else ''} "
        "leaves nobody to send to; lower it or widen the audience"
    )


async def check_broadcast(
    session: AsyncSession,
    *,
    text: str,
    audience: Audience,
    parse_mode: str | None = None,
    scheduled_at: datetime | None = None,
    content: ContentRequest = NO_CONTENT,
    public_base_url: str | None = None,
) -> CheckedBroadcast:
    """A dry run of create_broadcast: what it would refuse is refused with the same
    message, then the audience is counted; nothing is written."""
    checked = await _checked_message(
        session, text, parse_mode, scheduled_at, content, public_base_url
    )
    await _check_longest(session, audience, checked.personal)
    counted = await count_recipients(session, audience)
    if counted.total_recipients == 0:
        raise _nobody_would_receive(counted.invalid_user_ids)
    held_out = holdout_size(counted.total_recipients, checked.holdout_percent)
    if held_out == counted.total_recipients:
        raise _all_held_out(counted.total_recipients, checked.holdout_percent)
    return CheckedBroadcast(
        checked.parse_mode, checked.send_at, counted.total_recipients, counted.invalid_user_ids
    )


async def create_broadcast(
    session: AsyncSession,
    *,
    text: str,
    audience: Audience,
    actor: str,
    parse_mode: str | None = None,
    scheduled_at: datetime | None = None,
    content: ContentRequest = NO_CONTENT,
    public_base_url: str | None = None,
) -> CreatedBroadcast:
    """Queue a broadcast: the message row, its content, its numbered links when they are
    tracked, its recipients resolved in one INSERT … SELECT.

    `public_base_url` is PUBLIC_BASE_URL: links are tracked by default when it is set
    (broadcasts/tracking.py). An audience with nobody in it is refused (InvalidInput)
    and nothing is kept.
    """
    checked = await _checked_message(
        session, text, parse_mode, scheduled_at, content, public_base_url
    )
    await _check_longest(session, audience, checked.personal)
    message = MessageHistory(
        message_text=text,
        parse_mode=checked.parse_mode,
        status="scheduled",
        recipient_type=recipient_type_of(audience),
        recipient_group=recipient_group_of(audience),
        audience=audience.model_dump(mode="json"),
        created_by=actor,
        scheduled_at=checked.send_at or checked.now,
        buttons=composition.stored_buttons(checked.content),
        track_links=checked.links is not None,
        holdout_percent=checked.holdout_percent,
        **checked.content.options.model_dump(),
    )
    session.add(message)
    await session.flush()
    await composition.store_content(session, message.id, checked.content)
    if checked.links is not None:
        await tracking.store_links(session, message.id, checked.links)
    await insert_recipients(session, message.id, audience, checked.holdout_percent)
    invalid = await unknown_user_ids(session, audience)
    await session.refresh(message)
    if message.total_recipients == 0:
        raise _nobody_would_receive(invalid)
    if message.holdout_count == message.total_recipients:
        raise _all_held_out(message.total_recipients, checked.holdout_percent)
    await record(
        session,
        actor,
        "broadcast.create",
        "message",
        message.id,
        after=_audited(message)
        | composition.audited(checked.content)
        | ({"track_links": checked.links} if checked.links is not None else {}),
        details={"invalid_user_ids": invalid[:100], "invalid_count": len(invalid)},
    )
    await send_signal(session, SignalKind.work, message.id)
    return CreatedBroadcast(message.id, "scheduled", message.total_recipients, invalid)


def _listed(ids: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _audited(message: MessageHistory) -> dict[str, Any]:
    return {
        "status": message.status,
        "text": message.message_text,
        "parse_mode": message.parse_mode,
        "audience": message.audience,
        "scheduled_at": message.scheduled_at,
        "total_recipients": message.total_recipients,
        "holdout_percent": message.holdout_percent,
        "holdout_count": message.holdout_count,
    }


async def get_message(
    session: AsyncSession, message_id: int, *, lock: bool = False
) -> MessageHistory:
    statement = select(MessageHistory).where(MessageHistory.id == message_id)
    if lock:
        statement = statement.with_for_update()
    message = await session.scalar(statement.execution_options(populate_existing=True))
    if message is None:
        raise NotFound(f"no broadcast with id {message_id}")
    return message


@dataclass(frozen=True)
class HistoryFilter:
    recipient_type: str | None = None
    recipient_group: str | None = None
    status: str | None = None


def _history_filtered(statement: Select[Any], where: HistoryFilter) -> Select[Any]:
    if where.recipient_type:
        statement = statement.where(MessageHistory.recipient_type == where.recipient_type)
    if where.recipient_group:
        statement = statement.where(MessageHistory.recipient_group == where.recipient_group)
    if where.status:
        statement = statement.where(MessageHistory.status == where.status)
    return statement


async def list_messages(
    session: AsyncSession, where: HistoryFilter, *, limit: int, offset: int
) -> tuple[Sequence[MessageHistory], int]:
    """One page of broadcasts, newest first, and how many match in all."""
    messages = await session.scalars(
        _history_filtered(select(MessageHistory), where)
        .order_by(MessageHistory.created_at.desc(), MessageHistory.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(
        _history_filtered(select(func.count()).select_from(MessageHistory), where)
    )
    return messages.all(), total or 0


def count_with_status(message: MessageHistory, status: DeliveryStatus | None) -> int:
    """Recipients of `message` in `status`, from the counters the tally trigger keeps exact."""
    counts = {
        None: message.total_recipients,
        "pending": message.pending_deliveries,
        "sent": message.successful_deliveries - message.deleted_deliveries,
        "failed": message.failed_deliveries,
        "cancelled": message.cancelled_deliveries,
        "deleted": message.deleted_deliveries,
        "holdout": message.holdout_count,
    }
    return counts[status]


def recipients_select(message_id: int, status: DeliveryStatus | None) -> Select[Any]:
    """The recipients of a broadcast in user_id order (the unique index's order)."""
    statement = select(MessageRecipient).where(MessageRecipient.message_id == message_id)
    if status is not None:
        statement = statement.where(MessageRecipient.delivery_status == status)
    return statement.order_by(MessageRecipient.user_id)


async def list_recipients(
    session: AsyncSession,
    message_id: int,
    status: DeliveryStatus | None,
    *,
    limit: int,
    offset: int,
) -> tuple[Sequence[MessageRecipient], int]:
    message = await get_message(session, message_id)
    recipients = await session.scalars(
        recipients_select(message_id, status).limit(limit).offset(offset)
    )
    return recipients.all(), count_with_status(message, status)


async def cancel_broadcast(session: AsyncSession, message_id: int, actor: str) -> MessageHistory:
    """Stop a scheduled or sending broadcast: its pending recipients become cancelled.

    Sends already on their way may still land: the worker records those as sent,
    because the chat has the message (and a later delete must be able to find it).
    So cancelled_deliveries, read right after, counts those too (sends_under_way says
    how many), and a few may move on to sent.
    """
    message = await get_message(session, message_id, lock=True)
    if message.status not in ("scheduled", "sending"):
        raise Conflict(f"broadcast {message_id} is {message.status}: nothing to cancel")
    before = {"status": message.status, "pending_deliveries": message.pending_deliveries}
    await allow_long_statement(session)
    await session.execute(
        update(MessageHistory)
        .where(MessageHistory.id == message_id)
        .values(status="cancelled", cancelled_at=func.now())
    )
    await session.execute(
        update(MessageRecipient)
        .where(
            MessageRecipient.message_id == message_id,
            MessageRecipient.delivery_status == "pending",
        )
        .values(delivery_status="cancelled", updated_at=func.now())
    )
    message = await get_message(session, message_id)
    await record(
        session,
        actor,
        "broadcast.cancel",
        "message",
        message_id,
        before=before,
        after={"status": message.status, "cancelled_deliveries": message.cancelled_deliveries},
    )
    await send_signal(session, SignalKind.cancelled, message_id)
    return message


async def sends_under_way(session: AsyncSession, message_id: int) -> int:
    """A cancelled broadcast's sends that were on their way and may land yet (then sent)."""
    return await deliveries.sends_under_way(await session.connection(), message_id)


@dataclass(frozen=True)
class QueuedDeletion:
    message_id: int
    queued: int


async def request_deletion(session: AsyncSession, message_id: int, actor: str) -> QueuedDeletion:
    """Mark a broadcast for removal from the chats; the workers call deleteMessage.

    A million deliveries cannot be deleted within a request, so this only records the
    request: workers queue the delivered recipients in chunks and work through them at
    the shared rate. Telegram refuses messages older than 48 hours; those stay `sent`
    with the refusal as their error and are counted in delete_refused. Sends of a
    cancelled broadcast that land after this are deleted too (deletions.py), so more
    than `queued` messages may be deleted in the end.
    """
    message = await get_message(session, message_id, lock=True)
    if message.status == "scheduled" or message.started_at is None:
        raise Conflict(f"broadcast {message_id} was never sent: cancel it instead")
    if message.status == "sending":
        raise Conflict(f"broadcast {message_id} is still sending: cancel it first")
    if message.delete_requested_at is not None and message.deleted_at is None:
        raise Conflict(f"broadcast {message_id} is already being deleted")
    delivered = count_with_status(message, "sent")
    if delivered == 0:
        raise Conflict(f"broadcast {message_id} has no delivered message to delete")
    await session.execute(
        update(MessageHistory)
        .where(MessageHistory.id == message_id)
        .values(
            delete_requested_at=func.now(),
            deleted_at=None,
            delete_cursor=CURSOR_START,
            delete_refused=0,
        )
    )
    await record(
        session,
        actor,
        "broadcast.delete",
        "message",
        message_id,
        before={"delivered": delivered, "deleted_deliveries": message.deleted_deliveries},
        details={"queued": delivered},
    )
    await send_signal(session, SignalKind.work, message_id)
    return QueuedDeletion(message_id, delivered)


async def started_between(
    session: AsyncSession, start: datetime, end: datetime, limit: int = 200
) -> list[MessageHistory]:
    """Broadcasts that began going out in [start, end), oldest first (at most `limit`)."""
    statement = (
        select(MessageHistory)
        .where(MessageHistory.started_at >= start, MessageHistory.started_at < end)
        .order_by(MessageHistory.started_at, MessageHistory.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())
