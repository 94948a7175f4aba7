"""`POST /api/telegram/webhook`: where Telegram delivers the bot's updates.

A button press is answered (answerCallbackQuery, so that the button stops spinning in
the user's chat) after the webhook has answered Telegram and its update is committed:
best effort, within ANSWER_TIMEOUT_SECONDS, through the app's own small client of the
Bot API. Telegram out of reach costs a line in the log and nothing else: the webhook is
neither failed nor slowed, and the user's app stops the spinner by itself after a while.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, HTTPException, Request
from pydantic import BaseModel

from coursedesk.accounts.secrets import secrets_match
from coursedesk.db.base import BIGINT_MAX
from coursedesk.telegram.client import Answered, TelegramClient, TelegramConfigError
from coursedesk.telegram.webhook import callback_query_id, record_update
from coursedesk.web.deps import Session, settings_of

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/telegram", tags=["telegram"])

MAX_UPDATE_BYTES = 1_000_000
# Telegram's updates nest a few levels (an update, a message, its reply, an entity); far
# deeper is no update, and past the interpreter's limit the parser itself would fail.
MAX_UPDATE_DEPTH = 32
ANSWER_TIMEOUT_SECONDS = 2.0
"""How long answering a button press may take, all of it, before it is given up."""


class WebhookAnswer(BaseModel):
    ok: bool
    recorded: bool


def _check_secret(expected: str | None, given: str | None) -> None:
    # Compared in constant time, so the answer's timing tells nothing about the secret.
    if expected is None or given is None or not secrets_match(given, expected):
        raise HTTPException(status_code=403, detail="wrong or missing webhook secret")


def _nested_deeper_than(value: object, limit: int) -> bool:
    """Whether lists and objects in `value` nest more than `limit` levels (walked without
    recursion, so any depth is safe to ask about)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


def _too_deep() -> HTTPException:
    return HTTPException(
        status_code=400, detail=f"the update nests deeper than {MAX_UPDATE_DEPTH} levels"
    )


def _parse_update(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_UPDATE_BYTES:
        raise HTTPException(status_code=413, detail="the update is too large")
    try:
        update: object = json.loads(raw)
    except ValueError:
        raise HTTPException(status_code=400, detail="the body is not JSON") from None
    except RecursionError:
        raise _too_deep() from None
    if _nested_deeper_than(update, MAX_UPDATE_DEPTH):
        raise _too_deep()
    if not isinstance(update, dict):
        raise HTTPException(status_code=400, detail="an update is a JSON object")
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise HTTPException(status_code=400, detail="an update needs an integer update_id")
    if update_id > BIGINT_MAX:
        raise HTTPException(status_code=400, detail="update_id is out of range")
    return update


@router.post(
    "/webhook",
    summary="A Telegram Update (Telegram only)",
    description=(
        "Needs the header `X-Telegram-Bot-Api-Secret-Token` equal to TELEGRAM_WEBHOOK_SECRET "
        "(403 otherwise, and always when it is unset). Each update_id is recorded once: "
        "messages and commands, button presses and block/unblock become events, and the "
        "sender's username and first name are kept current. Other updates are accepted "
        "and ignored. A button press is answered (answerCallbackQuery) once the webhook "
        "has answered, at best within 2 s."
    ),
    responses={
        403: {"description": "wrong or missing secret"},
        400: {"description": "not an update"},
        413: {"description": "larger than an update can be"},
    },
)
async def webhook(
    request: Request,
    session: Session,
    background: BackgroundTasks,
    secret: Annotated[str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token")] = None,
) -> WebhookAnswer:
    _check_secret(settings_of(request).telegram_webhook_secret, secret)
    update = _parse_update(await request.body())
    recorded = await record_update(session, update)
    query_id = callback_query_id(update)
    client: TelegramClient | None = request.app.state.telegram
    if query_id is not None and client is not None:
        # Answered again when Telegram sends the update again: it does when it had no
        # answer from here, and then the first answer may not have gone out either.
        background.add_task(answer_button_press, client, query_id)
    return WebhookAnswer(ok=True, recorded=recorded)


async def answer_button_press(client: TelegramClient, query_id: str) -> None:
    """Stop the pressed button's spinner; a failure is logged, never raised."""
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
            result = await client.answer_callback_query(query_id)
    except (TimeoutError, TelegramConfigError) as exc:
        log.info("a button press was not answered: %s", exc or "timed out")
        return
    if not isinstance(result, Answered):
        log.info("a button press was not answered: %s", result)
