"""The Bot API client the product sends with: every answer becomes a typed outcome."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import IO, Any, Literal, cast

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    InputMediaVideo,
    LinkPreviewOptions,
    Message,
)
from telegram.error import TelegramError

from coursedesk.errors import ConfigError, CoursedeskError
from coursedesk.telegram.transport import AiohttpRequest, FileStream

MAX_SEND_ATTEMPTS = 5
"""Tries of one message before it is failed; 429 waits do not count as tries."""
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


class TelegramConfigError(ConfigError):
    """The Bot API refused the token, or there is none: nothing can be sent until it is fixed."""


class TelegramUnavailable(CoursedeskError):
    """The Bot API could not be asked (network, timeout, server error)."""


MediaKind = Literal["photo", "video", "animation", "document"]
AlbumKind = Literal["photo", "video"]


@dataclass(frozen=True, slots=True)
class Upload:
    """A file sent as its bytes, in a multipart request; `filename` is what chats show.

    `content` is the bytes, or a FileStream that reads them as the request is written
    (and again if it is sent again), so that a file kept elsewhere is never held whole.
    `mime_type` None: guessed from the filename. The bytes are sent as they are, a
    slice at a time, never copied whole.
    """

    content: bytes | FileStream
    filename: str
    mime_type: str | None = None

    @property
    def size(self) -> int:
        return len(self.content) if isinstance(self.content, bytes) else self.content.size

    def __repr__(self) -> str:
        return f"Upload({self.filename!r}, {self.size} bytes)"


FileRef = Upload | str
"""A file to send: its bytes, or (a str) the file_id Telegram gave it before."""


@dataclass(frozen=True, slots=True)
class AlbumItem:
    kind: AlbumKind
    file: FileRef


@dataclass(frozen=True, slots=True)
class UrlButton:
    """An inline button that opens `url`."""

    text: str
    url: str


@dataclass(frozen=True, slots=True)
class CallbackButton:
    """An inline button that sends the bot `callback_data` (1-64 bytes) when pressed."""

    text: str
    callback_data: str


InlineKeyboard = Sequence[Sequence[UrlButton | CallbackButton]]
"""Rows of inline buttons, top to bottom."""


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: int
    file_id: str | None = None
    """For a photo, video, animation or document: the file_id Telegram now knows the file
    by (a photo's largest size). Send it instead of the bytes from then on."""


@dataclass(frozen=True, slots=True)
class AlbumDelivered:
    """An album arrived as one message per item, in order."""

    message_ids: tuple[int, ...]
    file_ids: tuple[str | None, ...]
    """Each item's file_id, in order, as for Delivered."""

    @property
    def message_id(self) -> int:
        """The first message's id: the one the album's caption is on."""
        return self.message_ids[0]


@dataclass(frozen=True, slots=True)
class Deleted:
    pass


@dataclass(frozen=True, slots=True)
class Pinned:
    pass


@dataclass(frozen=True, slots=True)
class Answered:
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
AlbumResult = AlbumDelivered | Failure
DeleteResult = Deleted | Failure
PinResult = Pinned | Failure
AnswerResult = Answered | Failure


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

    Every call answers an outcome (Delivered, AlbumDelivered, Deleted, Pinned, Answered,
    or a Failure: RetryAfter, Blocked, PermanentFailure, TransientFailure) and never
    raises for one message's fate; only a refused token raises, as TelegramConfigError,
    because then nothing can be sent at all.

    `timeout` bounds connecting, waiting for a free connection, each wait for the answer
    and, when uploading, each slice of a file waiting to be written.
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
        self,
        chat_id: int,
        text: str,
        parse_mode: str | None = None,
        *,
        reply_markup: InlineKeyboard | None = None,
        disable_link_preview: bool = False,
        disable_notification: bool = False,
        protect_content: bool = False,
    ) -> SendResult:
        """Send a text message; `disable_link_preview` sends link_preview_options.is_disabled."""
        try:
            message = await self._bot.send_message(
                chat_id=chat_id,
                text=text,
                parse_mode=parse_mode,
                reply_markup=_markup(reply_markup),
                link_preview_options=(
                    LinkPreviewOptions(is_disabled=True) if disable_link_preview else None
                ),
                disable_notification=disable_notification or None,
                protect_content=protect_content or None,
            )
        except TelegramError as error:
            return self._outcome_of(error)
        return Delivered(message_id=message.message_id)

    async def send_media(
        self,
        chat_id: int,
        kind: MediaKind,
        file: FileRef,
        caption: str | None = None,
        parse_mode: str | None = None,
        *,
        reply_markup: InlineKeyboard | None = None,
        disable_notification: bool = False,
        protect_content: bool = False,
    ) -> SendResult:
        """Send one photo, video, animation or document, uploaded or by file_id.

        Delivered.file_id is the file_id to send it by from then on. A document is
        uploaded with content type detection off, so it stays a document.
        """
        media = _input_file(file)
        options: dict[str, Any] = {
            "chat_id": chat_id,
            "caption": caption or None,
            "parse_mode": parse_mode if caption else None,
            "reply_markup": _markup(reply_markup),
            "disable_notification": disable_notification or None,
            "protect_content": protect_content or None,
        }
        try:
            if kind == "photo":
                message = await self._bot.send_photo(photo=media, **options)
            elif kind == "video":
                message = await self._bot.send_video(video=media, **options)
            elif kind == "animation":
                message = await self._bot.send_animation(animation=media, **options)
            else:
                message = await self._bot.send_document(
                    document=media,
                    disable_content_type_detection=True if isinstance(file, Upload) else None,
                    **options,
                )
        except TelegramError as error:
            return self._outcome_of(error)
        return Delivered(message_id=message.message_id, file_id=_file_id_of(message))

    async def send_photo(
        self,
        chat_id: int,
        photo: FileRef,
        caption: str | None = None,
        parse_mode: str | None = None,
        *,
        reply_markup: InlineKeyboard | None = None,
        disable_notification: bool = False,
        protect_content: bool = False,
    ) -> SendResult:
        return await self.send_media(
            chat_id,
            "photo",
            photo,
            caption,
            parse_mode,
            reply_markup=reply_markup,
            disable_notification=disable_notification,
            protect_content=protect_content,
        )

    async def send_video(
        self,
        chat_id: int,
        video: FileRef,
        caption: str | None = None,
        parse_mode: str | None = None,
        *,
        reply_markup: InlineKeyboard | None = None,
        disable_notification: bool = False,
        protect_content: bool = False,
    ) -> SendResult:
        return await self.send_media(
            chat_id,
            "video",
            video,
            caption,
            parse_mode,
            reply_markup=reply_markup,
            disable_notification=disable_notification,
            protect_content=protect_content,
        )

    async def send_animation(
        self,
        chat_id: int,
        animation: FileRef,
        caption: str | None = None,
        parse_mode: str | None = None,
        *,
        reply_markup: InlineKeyboard | None = None,
        disable_notification: bool = False,
        protect_content: bool = False,
    ) -> SendResult:
        return await self.send_media(
            chat_id,
            "animation",
            animation,
            caption,
            parse_mode,
            reply_markup=reply_markup,
            disable_notification=disable_notification,
            protect_content=protect_content,
        )

    async def send_document(
        self,
        chat_id: int,
        document: FileRef,
        caption: str | None = None,
        parse_mode: str | None = None,
        *,
        reply_markup: InlineKeyboard | None = None,
        disable_notification: bool = False,
        protect_content: bool = False,
    ) -> SendResult:
        return await self.send_media(
            chat_id,
            "document",
            document,
            caption,
            parse_mode,
            reply_markup=reply_markup,
            disable_notification=disable_notification,
            protect_content=protect_content,
        )

    async def send_media_group(
        self,
        chat_id: int,
        items: Sequence[AlbumItem],
        caption: str | None = None,
        parse_mode: str | None = None,
        *,
        disable_notification: bool = False,
        protect_content: bool = False,
    ) -> AlbumResult:
        """Send 2-10 photos and videos as one album, `caption` under the first.

        Telegram takes no buttons on an album. Each item may be uploaded or a file_id.
        """
        media = [
            InputMediaPhoto(media=_input_file(item.file, attach=True))
            if item.kind == "photo"
            else InputMediaVideo(media=_input_file(item.file, attach=True))
            for item in items
        ]
        try:
            messages = await self._bot.send_media_group(
                chat_id=chat_id,
                media=media,
                caption=caption or None,
                parse_mode=parse_mode if caption else None,
                disable_notification=disable_notification or None,
                protect_content=protect_content or None,
            )
        except TelegramError as error:
            return self._outcome_of(error)
        return AlbumDelivered(
            message_ids=tuple(message.message_id for message in messages),
            file_ids=tuple(_file_id_of(message) for message in messages),
        )

    async def pin_chat_message(
        self, chat_id: int, message_id: int, *, disable_notification: bool = False
    ) -> PinResult:
        try:
            await self._bot.pin_chat_message(
                chat_id=chat_id,
                message_id=message_id,
                disable_notification=disable_notification or None,
            )
        except TelegramError as error:
            return self._outcome_of(error)
        return Pinned()

    async def answer_callback_query(
        self,
        callback_query_id: str,
        text: str | None = None,
        *,
        show_alert: bool = False,
        url: str | None = None,
        cache_time: int | None = None,
    ) -> AnswerResult:
        """Answer a button press: stop its spinner, maybe show `text` (an alert with
        `show_alert`). A query answered already, or too old, is a PermanentFailure."""
        try:
            await self._bot.answer_callback_query(
                callback_query_id=callback_query_id,
                text=text,
                show_alert=show_alert or None,
                url=url,
                cache_time=cache_time,
            )
        except TelegramError as error:
            return self._outcome_of(error)
        return Answered()

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


def _markup(keyboard: InlineKeyboard | None) -> InlineKeyboardMarkup | None:
    if not keyboard:
        return None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(button.text, url=button.url)
                if isinstance(button, UrlButton)
                else InlineKeyboardButton(button.text, callback_data=button.callback_data)
                for button in row
            ]
            for row in keyboard
        ]
    )


def _input_file(file: FileRef, *, attach: bool = False) -> InputFile | str:
    """What python-telegram-bot sends: the bytes as a file part, or the file_id as text."""
    if isinstance(file, str):
        return file
    if isinstance(file.content, bytes):
        upload = InputFile(file.content, filename=file.filename, attach=attach)
    else:
        # Not read here: python-telegram-bot hands an unread "file handle" to the
        # transport as it is, which writes a FileStream as the request goes out.
        stream = cast("IO[bytes]", file.content)
        upload = InputFile(stream, filename=file.filename, attach=attach, read_file_handle=False)
    if file.mime_type:
        upload.mimetype = file.mime_type
    return upload


def _file_id_of(message: Message) -> str | None:
    """The file_id of the file a message carries; of a photo, its largest size's."""
    if message.photo:
        largest = max(
            message.photo, key=lambda size: (size.width * size.height, size.file_size or 0)
        )
        return largest.file_id
    for media in (message.video, message.animation, message.document):
        if media is not None:
            return media.file_id
    return None
