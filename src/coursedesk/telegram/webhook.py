"""Updates that Telegram posts to the webhook: each recorded once, as an event and a profile.

- a message becomes an event named after its command (`/start`, …) or `message`;
- a button press (callback_query) becomes a `button_click` event with its data; the
  press of a broadcast's callback button (data `cd:<broadcast id>:<data>`, pressed by one
  of that broadcast's recipients) names the broadcast as `broadcast_id`, with the data
  staff gave the button;
- my_chat_member of the user's private chat with the bot, with status `kicked`, marks
  the user blocked, `member` unblocked (events `bot_blocked` / `bot_unblocked`); the
  bot being removed from or added to a group says nothing about its chat with the user;
- the sender's username and first name are kept current in bot_users.
The update_id is inserted first, in the same transaction, so a redelivered update is
recognised and changes nothing.

Telegram sends what users typed, and resends an update until it is accepted, so an
update is taken as it can be: text loses what PostgreSQL cannot store (NUL characters,
unpaired surrogates), and an id outside PostgreSQL's bigint is treated as missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.analytics.changes import source_changes
from coursedesk.broadcasts.composition import CALLBACK_PREFIX
from coursedesk.broadcasts.models import MessageRecipient
from coursedesk.db.base import BIGINT_MAX, BIGINT_MIN
from coursedesk.sources.models import Event
from coursedesk.telegram.models import BotUser, TelegramUpdate

MAX_TEXT = 4096
MAX_NAME = 256
MAX_COMMAND = 64
MAX_CALLBACK_DATA = 256


@dataclass(frozen=True)
class Sender:
    user_id: int
    username: str | None
    first_name: str | None


def storable(text: str) -> str:
    """`text` without what a PostgreSQL text or jsonb value cannot hold: NUL characters
    are dropped, an unpaired surrogate becomes "?"."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _text(value: object, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    return storable(value[:limit]) or None


def _integer(value: object) -> int | None:
    """An id as PostgreSQL's bigint holds it, or None."""
    if isinstance(value, int) and not isinstance(value, bool) and BIGINT_MIN < value <= BIGINT_MAX:
        return value
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sender(value: object) -> Sender | None:
    user = _mapping(value)
    user_id = _integer(user.get("id"))
    # User ids are positive; a negative chat id is a group or a channel.
    if user_id is None or user_id <= 0 or user.get("is_bot") is True:
        return None
    return Sender(
        user_id, _text(user.get("username"), MAX_NAME), _text(user.get("first_name"), MAX_NAME)
    )


def update_type(update: Mapping[str, Any]) -> str:
    """The kind of update: the name of its one field besides update_id."""
    return storable(next((key for key in update if key != "update_id"), "unknown")[:MAX_NAME])


def command_of(text: str) -> str | None:
    """`/start` for "/start@SomeBot payload", None when the text is no command."""
    if not text.startswith("/"):
        return None
    command = text.split(maxsplit=1)[0].partition("@")[0]
    return command[:MAX_COMMAND] if len(command) > 1 else None


async def record_update(session: AsyncSession, update: Mapping[str, Any]) -> bool:
    """Record one update in the caller's transaction; False if its update_id was seen before."""
    kind = update_type(update)
    first_time = await session.scalar(
        insert(TelegramUpdate)
        .values(update_id=update["update_id"], update_type=kind)
        .on_conflict_do_nothing(index_elements=[TelegramUpdate.update_id])
        .returning(TelegramUpdate.update_id)
    )
    if first_time is None:
        return False
    body = _mapping(update.get(kind))
    if kind in ("message", "edited_message"):
        await _record_message(session, update["update_id"], body)
    elif kind == "callback_query":
        await _record_button(session, update["update_id"], body)
    elif kind == "my_chat_member":
        await _record_membership(session, update["update_id"], body)
    return True


async def _record_message(
    session: AsyncSession, update_id: int, message: Mapping[str, Any]
) -> None:
    sender = _sender(message.get("from"))
    if sender is None:
        return
    text = _text(message.get("text"), MAX_TEXT) or _text(message.get("caption"), MAX_TEXT)
    event_type = (command_of(text) if text else None) or "message"
    await _remember(session, sender)
    await _add_event(
        session,
        sender,
        event_type,
        update_id=update_id,
        chat_id=_integer(_mapping(message.get("chat")).get("id")),
        message_id=_integer(message.get("message_id")),
        text=text,
    )


async def _record_button(session: AsyncSession, update_id: int, query: Mapping[str, Any]) -> None:
    sender = _sender(query.get("from"))
    if sender is None:
        return
    message = _mapping(query.get("message"))
    data = _text(query.get("data"), MAX_CALLBACK_DATA)
    broadcast_id = await _broadcast_pressed(session, sender, data)
    await _remember(session, sender)
    await _add_event(
        session,
        sender,
        "button_click",
        update_id=update_id,
        chat_id=_integer(_mapping(message.get("chat")).get("id")),
        message_id=_integer(message.get("message_id")),
        broadcast_id=broadcast_id,
        data=data.split(":", 2)[2] if broadcast_id is not None and data else data,
    )


async def _broadcast_pressed(session: AsyncSession, sender: Sender, data: str | None) -> int | None:
    """The broadcast whose callback button this is, when the sender is one of its
    recipients; None for any other data (the bot's own buttons keep theirs as sent)."""
    if data is None or not data.startswith(CALLBACK_PREFIX):
        return None
    number, separator, _ = data.removeprefix(CALLBACK_PREFIX).partition(":")
    if not separator or not number.isascii() or not number.isdigit() or len(number) > 10:
        return None
    message_id = int(number)
    if message_id > 2**31 - 1:
        return None
    recipient = await session.scalar(
        select(MessageRecipient.id).where(
            MessageRecipient.message_id == message_id,
            MessageRecipient.user_id == sender.user_id,
        )
    )
    return message_id if recipient is not None else None


def callback_query_id(update: Mapping[str, Any]) -> str | None:
    """The id to answer a button press by, if the update is one."""
    query = _mapping(update.get("callback_query"))
    query_id = query.get("id")
    return query_id if isinstance(query_id, str) and query_id else None


async def _record_membership(
    session: AsyncSession, update_id: int, change: Mapping[str, Any]
) -> None:
    sender = _sender(change.get("from"))
    chat = _mapping(change.get("chat"))
    status = _mapping(change.get("new_chat_member")).get("status")
    if sender is None or chat.get("type") != "private" or status not in ("kicked", "member"):
        return
    blocked = status == "kicked"
    await _remember(session, sender, blocked=blocked)
    await _add_event(
        session,
        sender,
        "bot_blocked" if blocked else "bot_unblocked",
        update_id=update_id,
        chat_id=_integer(chat.get("id")),
    )


async def _remember(session: AsyncSession, sender: Sender, *, blocked: bool | None = None) -> None:
    """Upsert the profile; a name Telegram did not send keeps its old value."""
    values: dict[str, Any] = {
        "user_id": sender.user_id,
        "username": sender.username,
        "first_name": sender.first_name,
        "updated_at": func.now(),
    }
    if blocked is not None:
        values |= {"is_blocked": blocked, "blocked_at": func.now() if blocked else None}
    statement = insert(BotUser).values(**values)
    changes: dict[str, Any] = {
        "username": func.coalesce(statement.excluded.username, BotUser.username),
        "first_name": func.coalesce(statement.excluded.first_name, BotUser.first_name),
        "updated_at": func.now(),
    }
    if blocked:
        # Blocking again keeps the time of the first block.
        changes |= {
            "is_blocked": True,
            "blocked_at": case((BotUser.is_blocked, BotUser.blocked_at), else_=func.now()),
        }
    elif blocked is False:
        changes |= {"is_blocked": False, "blocked_at": None}
    await session.execute(
        statement.on_conflict_do_update(index_elements=[BotUser.user_id], set_=changes)
    )


async def _add_event(
    session: AsyncSession, sender: Sender, event_type: str, *, update_id: int, **details: Any
) -> None:
    await session.execute(
        insert(Event).values(
            user_id=sender.user_id,
            event_type=event_type,
            details={
                "update_id": update_id,
                "username": sender.username,
                "first_name": sender.first_name,
                **{key: value for key, value in details.items() if value is not None},
            },
        )
    )
    source_changes.record(session)
