"""Sending one message to one chat straight away: the composer's test send."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from coursedesk.audit.service import record
from coursedesk.broadcasts.pacer import Pacer
from coursedesk.broadcasts.personalisation import NotSendable, profiles
from coursedesk.broadcasts.service import checked_parse_mode, checked_personal_text
from coursedesk.config import Settings
from coursedesk.errors import CoursedeskError, InvalidInput
from coursedesk.telegram.client import (
    Blocked,
    Delivered,
    RetryAfter,
    TelegramClient,
    TelegramConfigError,
)

TEST_SEND_TIMEOUT_SECONDS = 10.0
MAX_WAIT_FOR_SLOT_SECONDS = 5.0


class SendingUnavailable(CoursedeskError):
    """Nothing can be sent right now (no token, Telegram paused us); HTTP 503."""


@dataclass(frozen=True)
class TestSendResult:
    outcome: Literal["delivered", "blocked", "failed"]
    telegram_message_id: int | None = None
    error: str | None = None


async def send_test_message(
    session: AsyncSession,
    engine: AsyncEngine,
    settings: Settings,
    *,
    chat_id: int,
    text: str,
    parse_mode: str | None,
    actor: str,
) -> TestSendResult:
    """Send `text` to one chat now, through the shared pacer, and audit it.

    The answer is Telegram's: delivered, blocked or failed with its reason. A pause
    ordered by a 429 longer than a few seconds refuses the send (SendingUnavailable).
    """
    mode = checked_parse_mode(parse_mode)
    personal = checked_personal_text(text, mode, caption=False)
    if personal is not None:
        # Filled in for the user of that chat, as the broadcast would be.
        profile = (await profiles(session, [chat_id])).get(chat_id, {})
        try:
            text = personal.fill(profile)
        except NotSendable as exc:
            raise InvalidInput(f"text: {exc}") from None
    if not settings.telegram_bot_token:
        raise SendingUnavailable("TELEGRAM_BOT_TOKEN is not set, so nothing can be sent")
    pacer = Pacer(engine, settings.broadcast_rate, grant_size=1)
    try:
        async with TelegramClient(
            settings.telegram_bot_token,
            settings.telegram_api_base_url,
            pool_size=1,
            timeout=TEST_SEND_TIMEOUT_SECONDS,
        ) as client:
            try:
                async with asyncio.timeout(MAX_WAIT_FOR_SLOT_SECONDS):
                    await pacer.wait_for_slot()
            except TimeoutError:
                raise SendingUnavailable(
                    "sending is paused (Telegram asked to slow down); try again shortly"
                ) from None
            result = await client.send_message(chat_id, text, mode)
    except TelegramConfigError as exc:
        raise SendingUnavailable(str(exc)) from None
    if isinstance(result, Delivered):
        answer = TestSendResult("delivered", telegram_message_id=result.message_id)
    elif isinstance(result, RetryAfter):
        await pacer.pause(result.seconds)
        raise SendingUnavailable(
            f"Telegram asked to pause sending; try again in {result.seconds:.0f} s"
        )
    elif isinstance(result, Blocked):
        answer = TestSendResult("blocked", error=result.description)
    else:
        answer = TestSendResult("failed", error=result.description)
    await record(
        session,
        actor,
        "broadcast.test_send",
        "chat",
        chat_id,
        details={
            "text": text,
            "parse_mode": mode,
            "outcome": answer.outcome,
            "error": answer.error,
        },
    )
    return answer
