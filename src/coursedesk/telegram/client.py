"""The Bot API client the product sends with: every answer becomes a typed outcome."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any

from telegram import Bot
from telegram.error import TelegramError

from coursedesk.errors import ConfigError, CoursedeskError
from coursedesk.telegram.transport import AiohttpRequest

MAX_SEND_ATTEMPTS = 5
"""Tries of one message before it is failed; 429 waits do not count as tries."""
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


class TelegramConfigError(ConfigError):
    """The Bot API refused the token, or there is none: nothing can be sent until it is fixed."""


class TelegramUnavailable(CoursedeskError):
    """The Bot API could not be asked (network, timeout, server error)."""


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: int


@dataclass(frozen=True, slots=True)
class Deleted:
    pass


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """429 Too Many Requests: wait this long, then send the same message again."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Blocked:
    """403: the user blocked the bot, was deactivated, or the bot was removed; never retry."""

    description: str


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """400 and other refusals (chat not found, bad markup, message too old): never retry."""

    description: str


@dataclass(frozen=True, slots=True)
class TransientFailure:
    """5xx, timeout or network error: retry after `backoff_delay`, up to MAX_SEND_ATTEMPTS.

    After a timeout Telegram may have delivered the message anyway.
    """

    description: str


Failure = RetryAfter | Blocked | PermanentFailure | TransientFailure
SendResult = Delivered | Failure
DeleteResult = Deleted | Failure


@dataclass(frozen=True, slots=True)
class BotIdentity:
    id: int
    username: str | None
    first_name: str


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed try number `attempt` (1, 2, …) before the next one.

    Exponential from BACKOFF_BASE_SECONDS, capped at BACKOFF_CAP_SECONDS, with "equal
    jitter": half the step is fixed and half random, so workers that failed together do
    not all come back together.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    step = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** min(attempt - 1, 32))
    jitter = rng.uniform(0, step / 2) if rng is not None else random.uniform(0, step / 2)
    return step / 2 + jitter


class _ErrorAnswer(TelegramError):
    """A non-2xx answer of the Bot API, with its status and description exactly as sent."""

    def __init__(self, status: int, description: str, retry_after: float | None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP status {status}"


def _error_answer(status: int, payload: bytes) -> _ErrorAnswer:
    description = _status_line(status)
    retry_after: float | None = None
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("description"), str) and body["description"]:
            description = body["description"]
        parameters = body.get("parameters")
        if isinstance(parameters, dict):
            value = parameters.get("retry_after")
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                retry_after = float(value)
    return _ErrorAnswer(status, description, retry_after)


class _AnswerReadingRequest(AiohttpRequest):
    """Reads error answers itself instead of leaving them to python-telegram-bot.

    python-telegram-bot 22 rewrites descriptions ("Bad Request: chat not found" becomes
    "Chat not found"), and building its RetryAfter emits a PTBDeprecationWarning, which
    is an exception wherever warnings are errors. Raising a TelegramError here skips both:
    the library passes TelegramErrors from the transport through unchanged.
    """

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        status, payload = await super().do_request(*args, **kwargs)
        if not HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
            raise _error_answer(status, payload)
        return status, payload


class TelegramClient:
    """An async client of the Bot API at `api_base_url` (calls go to {root}/bot{token}/{method}).

    Sending answers an outcome (Delivered, RetryAfter, Blocked, PermanentFailure,
    TransientFailure) and never raises for one message's fate; only a refused token
    raises, as TelegramConfigError, because then nothing can be sent at all.
    """

    def __init__(
        self, token: str, api_base_url: str, *, pool_size: int = 32, timeout: float = 10.0
    ) -> None:
        if not token:
            raise TelegramConfigError("TELEGRAM_BOT_TOKEN: not set, so nothing can be sent")
        self._token = token
        self._api_root = api_base_url.rstrip("/")
        self._request = _AnswerReadingRequest(
            connection_limit=pool_size,
            read_timeout=timeout,
            connect_timeout=timeout,
            pool_timeout=timeout,
        )
        self._bot = Bot(
            token,
            base_url=f"{self._api_root}/bot",
            request=self._request,
            get_updates_request=self._request,
        )

    async def __aenter__(self) -> TelegramClient:
        await self._request.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._request.shutdown()

    async def get_me(self) -> BotIdentity:
        """Who the token belongs to: TelegramConfigError if refused, else TelegramUnavailable."""
        try:
            user = await self._bot.get_me()
        except TelegramError as error:
            failure = self._outcome_of(error)
            raise TelegramUnavailable(
                f"the Bot API at {self._api_root} could not be asked: {self._describe(failure)}"
            ) from None
        return BotIdentity(id=user.id, username=user.username, first_name=user.first_name)

    async def send_message(
        self, chat_id: int, text: str, parse_mode: str | None = None
    ) -> SendResult:
        try:
            message = await self._bot.send_message(
                chat_id=chat_id, text=text, parse_mode=parse_mode
            )
        except TelegramError as error:
            return self._outcome_of(error)
        return Delivered(message_id=message.message_id)

    async def delete_message(self, chat_id: int, message_id: int) -> DeleteResult:
        try:
            await self._bot.delete_message(chat_id=chat_id, message_id=message_id)
        except TelegramError as error:
            return self._outcome_of(error)
        return Deleted()

    def _outcome_of(self, error: TelegramError) -> Failure:
        if not isinstance(error, _ErrorAnswer):
            # Timeouts, refused connections and unreadable answers from the transport.
            return TransientFailure(self._redact(error.message or type(error).__name__))
        description = self._redact(error.description)
        if error.retry_after is not None:
            return RetryAfter(error.retry_after)
        # 404 is Telegram's answer to a malformed token, 401 to an unknown one.
        if error.status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.NOT_FOUND):
            raise TelegramConfigError(
                f"TELEGRAM_BOT_TOKEN: refused by the Bot API at {self._api_root} ({description})"
            ) from None
        if error.status == HTTPStatus.FORBIDDEN:
            return Blocked(description)
        if error.status == HTTPStatus.TOO_MANY_REQUESTS or error.status >= 500:
            return TransientFailure(description)
        return PermanentFailure(description)

    def _redact(self, description: str) -> str:
        return description.replace(self._token, "<token>")

    @staticmethod
    def _describe(failure: Failure) -> str:
        if isinstance(failure, RetryAfter):
            return f"flood control, retry in {failure.seconds:g} s"
        return failure.description
