"""The stand-in Bot API's behaviour and memory, apart from HTTP: methods, faults and logs."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from coursedesk.telegram.formatting import (
    FormattingError,
    TooLongError,
    normalize_parse_mode,
    plain_caption,
    plain_text,
)
from coursedesk.telegram.standin.faults import MESSAGE_DELETE_WINDOW_SECONDS, Faults
from coursedesk.telegram.standin.files import (
    MAX_PHOTO_BYTES,
    MAX_UPLOAD_BYTES,
    FilePart,
    FileStore,
    MediaKind,
    StoredFile,
)
from coursedesk.telegram.standin.parsing import (
    InlineButton,
    Keyboard,
    ParameterError,
    Parameters,
    bool_parameter,
    inline_keyboard,
    integer_parameter,
    json_parameter,
    link_preview_disabled,
    text_parameter,
)

MessageKind = Literal["text", "photo", "video", "animation", "document", "album"]

MAX_ALBUM_ITEMS = 10
MIN_ALBUM_ITEMS = 2
MAX_CALLBACK_ANSWER_LENGTH = 200
_INVALID_QUERY = "Bad Request: query is too old and response timeout expired or query ID is invalid"


class BotApiError(Exception):
    """An error answer of the Bot API: HTTP status, description, maybe a retry_after."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A file as a chat got it: uploaded with this message, or sent again by file_id."""

    kind: MediaKind
    file_id: str
    file_unique_id: str
    file_name: str | None
    mime_type: str | None
    size: int | None
    uploaded: bool
    caption: str | None = None
    """An album item's own caption as sent (a single media's caption is the message's text)."""


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """What a chat got from one send, as it was sent.

    `text` is the text of a text message, the caption of a media message or of an album
    ("" when none), with its markup; `shown_text` is what the chat shows of it.
    `message_ids` are the Telegram messages of the send: one, or an album's, whose
    files are in the same order.
    """

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    sent_at: float
    kind: MessageKind = "text"
    shown_text: str = ""
    files: tuple[ReceivedFile, ...] = ()
    buttons: Keyboard = ()
    message_ids: tuple[int, ...] = ()
    disable_notification: bool = False
    protect_content: bool = False
    link_preview_disabled: bool = False


@dataclass(frozen=True, slots=True)
class DeletedMessage:
    chat_id: int
    message_id: int
    deleted_at: float


@dataclass(frozen=True, slots=True)
class PinnedMessage:
    chat_id: int
    message_id: int
    disable_notification: bool
    pinned_at: float


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    """An answerCallbackQuery, with the button press it answered."""

    callback_query_id: str
    chat_id: int
    message_id: int
    data: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None
    answered_at: float


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One Bot API call and how it was answered (status 200 or the error)."""

    method: str
    chat_id: int | None
    status: int
    description: str | None
    at: float


@dataclass(frozen=True, slots=True)
class _CallbackQuery:
    query_id: str
    chat_id: int
    message_id: int
    data: str


@dataclass(frozen=True, slots=True)
class _Media:
    """One file of a send, resolved: known already, or an upload to give a file_id."""

    kind: MediaKind
    known: StoredFile | None
    upload: FilePart | None
    caption: str | None = None
    parse_mode: str | None = None
    shown_caption: str = ""


def _bot_id_of(token: str) -> int:
    prefix = token.partition(":")[0]
    return int(prefix) if prefix.isdigit() else 1


def _bad_request(description: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {description}")


class BotApiStandin:
    """A bot's view of Telegram: it remembers what each chat got and injects faults.

    Thread-safe: an HTTP server may run it in one thread while tests read it in another.
    """

    def __init__(
        self,
        token: str,
        faults: Faults | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.bot_id = _bot_id_of(token)
        self._initial_faults = faults or Faults()
        self._clock = clock
        self._lock = threading.Lock()
        self._methods: dict[str, Callable[[Parameters], object]] = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "sendphoto": lambda parameters: self._send_media("photo", parameters),
            "sendvideo": lambda parameters: self._send_media("video", parameters),
            "sendanimation": lambda parameters: self._send_media("animation", parameters),
            "senddocument": lambda parameters: self._send_media("document", parameters),
            "sendmediagroup": self._send_media_group,
            "pinchatmessage": self._pin_chat_message,
            "answercallbackquery": self._answer_callback_query,
            "deletemessage": self._delete_message,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
        }
        self._reset_state(self._initial_faults)

    def _reset_state(self, faults: Faults) -> None:
        self._faults = faults
        self._random = random.Random(faults.seed)
        self._last_message_ids: defaultdict[int, int] = defaultdict(int)
        self._messages: list[ReceivedMessage] = []
        self._received: dict[tuple[int, int], ReceivedMessage] = {}
        self._deleted: dict[tuple[int, int], DeletedMessage] = {}
        self._pinned: dict[tuple[int, int], PinnedMessage] = {}
        self._files = FileStore()
        self._queries: dict[str, _CallbackQuery] = {}
        self._answers: list[CallbackAnswer] = []
        self._last_update_id = 0
        self._calls: list[ApiCall] = []
        self._recent_sends: deque[float] = deque()
        self._multipart_bytes = 0
        self.webhook_url = ""
        self.webhook_secret: str | None = None

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults; a new seed restarts the random sequence."""
        with self._lock:
            if faults.seed != self._faults.seed:
                self._random = random.Random(faults.seed)
            self._faults = faults

    def update_faults(self, changes: Mapping[str, object]) -> Faults:
        """Change some fault settings (FaultsError for a wrong one); answers all of them."""
        self.set_faults(self._faults.updated(changes))
        return self._faults

    def reset(self) -> None:
        """Forget every message, file, press and call, and go back to the faults given at start."""
        with self._lock:
            self._reset_state(self._initial_faults)

    def note_multipart_bytes(self, count: int) -> None:
        """`count` more bytes of a multipart body were read (the call may not be complete)."""
        with self._lock:
            self._multipart_bytes += count

    def multipart_bytes(self) -> int:
        """Bytes of multipart bodies read so far, of complete calls or not: an upload in
        progress shows here before it does anywhere else."""
        with self._lock:
            return self._multipart_bytes

    def received(self, chat_id: int | None = None) -> list[ReceivedMessage]:
        """What the chats got, in order, one entry per send; deleted messages included."""
        with self._lock:
            messages = list(self._messages)
        return [m for m in messages if chat_id is None or m.chat_id == chat_id]

    def deleted(self) -> list[DeletedMessage]:
        with self._lock:
            return list(self._deleted.values())

    def pinned(self, chat_id: int | None = None) -> list[PinnedMessage]:
        """The messages pinned, in the order they were first pinned."""
        with self._lock:
            pins = list(self._pinned.values())
        return [p for p in pins if chat_id is None or p.chat_id == chat_id]

    def callback_answers(self, chat_id: int | None = None) -> list[CallbackAnswer]:
        with self._lock:
            answers = list(self._answers)
        return [a for a in answers if chat_id is None or a.chat_id == chat_id]

    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def log_as_json(self, chat_id: int | None = None) -> dict[str, list[dict[str, object]]]:
        """Everything the chats got (or only chat `chat_id`), as /_control/log answers it."""
        with self._lock:
            pinned = set(self._pinned)
        messages = []
        for message in self.received(chat_id):
            entry = asdict(message)
            entry["pinned"] = any(
                (message.chat_id, message_id) in pinned
                for message_id in message.message_ids or (message.message_id,)
            )
            messages.append(entry)
        return {
            "messages": messages,
            "deleted": [
                asdict(d) for d in self.deleted() if chat_id is None or d.chat_id == chat_id
            ],
            "pinned": [asdict(p) for p in self.pinned(chat_id)],
            "callback_answers": [asdict(a) for a in self.callback_answers(chat_id)],
            "calls": [asdict(c) for c in self.calls() if chat_id is None or c.chat_id == chat_id],
        }

    def press_button(self, chat_id: int, message_id: int, callback_data: str) -> dict[str, object]:
        """The user of `chat_id` presses the callback button `callback_data` under a message.

        Answers the Update Telegram would send the bot for it (its callback_query id is
        then answerable once); LookupError when that message has no such button.
        """
        with self._lock:
            message = self._received.get((chat_id, message_id))
            if message is None or (chat_id, message_id) in self._deleted:
                raise LookupError(f"chat {chat_id} has no message {message_id}")
            if not any(b.callback_data == callback_data for row in message.buttons for b in row):
                raise LookupError(f"message {message_id} has no button with that callback_data")
            self._last_update_id += 1
            query = _CallbackQuery(
                str(self.bot_id * 1_000_000 + self._last_update_id),
                chat_id,
                message_id,
                callback_data,
            )
            self._queries[query.query_id] = query
            user = {"id": chat_id, "is_bot": False, "first_name": f"User {chat_id}"}
            return {
                "update_id": self._last_update_id,
                "callback_query": {
                    "id": query.query_id,
                    "from": user,
                    "message": {
                        "message_id": message_id,
                        "from": self._bot_user(),
                        "chat": self._chat(chat_id),
                        "date": int(message.sent_at),
                        "reply_markup": _markup_json(message.buttons),
                    },
                    "chat_instance": str(chat_id),
                    "data": callback_data,
                },
            }

    def draw_latency(self) -> float:
        """Seconds to wait before answering the next call."""
        with self._lock:
            jitter = (
                self._random.uniform(0, self._faults.jitter_ms) if self._faults.jitter_ms else 0
            )
            return (self._faults.latency_ms + jitter) / 1000

    def call(self, token: str, method: str, parameters: Parameters) -> object:
        """Run one Bot API method: its result, or BotApiError with what Telegram would say."""
        with self._lock:
            chat_id = self._chat_of(method, parameters)
            try:
                if token != self.token:
                    raise BotApiError(401, "Unauthorized")
                handler = self._methods.get(method.lower())
                if handler is None:
                    raise BotApiError(404, "Not Found")
                try:
                    result = handler(parameters)
                except ParameterError as error:
                    raise _bad_request(str(error)) from None
            except BotApiError as error:
                self._calls.append(
                    ApiCall(method, chat_id, error.status, error.description, self._clock())
                )
                raise
            self._calls.append(ApiCall(method, chat_id, 200, None, self._clock()))
            return result

    def _chat_of(self, method: str, parameters: Parameters) -> int | None:
        if method.lower() == "answercallbackquery":
            query = self._queries.get(text_parameter(parameters, "callback_query_id") or "")
            return query.chat_id if query is not None else None
        return integer_parameter(parameters, "chat_id")

    def _now(self) -> float:
        return self._clock() + self._faults.clock_offset_seconds

    def _inject_random_faults(self) -> None:
        faults = self._faults
        if faults.server_error_rate and self._random.random() < faults.server_error_rate:
            if self._random.random() < 0.5:
                raise BotApiError(502, "Bad Gateway")
            raise BotApiError(500, "Internal Server Error")
        if faults.flood_rate and self._random.random() < faults.flood_rate:
            raise self._too_many_requests(faults.flood_retry_after)

    @staticmethod
    def _too_many_requests(retry_after: int) -> BotApiError:
        return BotApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    def _check_rate_limit(self) -> None:
        limit = self._faults.rate_limit_per_second
        if limit is None:
            return
        now = self._clock()
        while self._recent_sends and self._recent_sends[0] <= now - 1:
            self._recent_sends.popleft()
        if len(self._recent_sends) >= limit:
            raise self._too_many_requests(max(1, math.ceil(self._recent_sends[0] + 1 - now)))
        self._recent_sends.append(now)

    def _existing_chat(self, parameters: Parameters) -> int:
        if parameters.get("chat_id") in (None, ""):
            raise _bad_request("chat_id is empty")
        chat_id = integer_parameter(parameters, "chat_id")
        if chat_id is None or chat_id in self._faults.missing_chats:
            raise _bad_request("chat not found")
        if chat_id in self._faults.blocked_chats:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _sending_to(self, parameters: Parameters) -> int:
        """The faults every send method meets, in Telegram's order; the chat it goes to."""
        self._inject_random_faults()
        self._check_rate_limit()
        return self._existing_chat(parameters)

    def _bot_user(self) -> dict[str, object]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Coursedesk Stand-in",
            "username": "coursedesk_standin_bot",
        }

    @staticmethod
    def _chat(chat_id: int) -> dict[str, object]:
        return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}

    def _get_me(self, parameters: Parameters) -> object:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _parse_mode(self, parameters: Parameters) -> str | None:
        raw = parameters.get("parse_mode")
        try:
            return normalize_parse_mode(raw if isinstance(raw, str) else None)
        except FormattingError as error:
            raise _bad_request(str(error)) from None

    @staticmethod
    def _shown_caption(caption: str | None, parse_mode: str | None) -> str:
        if not caption:
            return ""
        try:
            return plain_caption(caption, parse_mode)
        except TooLongError:
            raise _bad_request("message caption is too long") from None
        except FormattingError as error:
            raise _bad_request(str(error)) from None

    def _record(self, message: ReceivedMessage) -> ReceivedMessage:
        self._messages.append(message)
        for message_id in message.message_ids:
            self._received[(message.chat_id, message_id)] = message
        return message

    def _next_message_id(self, chat_id: int) -> int:
        self._last_message_ids[chat_id] += 1
        return self._last_message_ids[chat_id]

    def _message_json(
        self, message: ReceivedMessage, message_id: int, fields: Mapping[str, object]
    ) -> dict[str, object]:
        answer: dict[str, object] = {
            "message_id": message_id,
            "from": self._bot_user(),
            "chat": self._chat(message.chat_id),
            "date": int(message.sent_at),
            **fields,
        }
        if message.protect_content:
            answer["has_protected_content"] = True
        if message.buttons:
            answer["reply_markup"] = _markup_json(message.buttons)
        return answer

    def _send_message(self, parameters: Parameters) -> object:
        chat_id = self._sending_to(parameters)
        text = parameters.get("text")
        if not isinstance(text, str) or not text:
            raise _bad_request("message text is empty")
        parse_mode = self._parse_mode(parameters)
        try:
            shown_text = plain_text(text, parse_mode)
        except TooLongError:
            raise _bad_request("message is too long") from None
        except FormattingError as error:
            raise _bad_request(str(error)) from None
        buttons = inline_keyboard(parameters)
        no_preview = link_preview_disabled(parameters)
        message_id = self._next_message_id(chat_id)
        message = self._record(
            ReceivedMessage(
                chat_id,
                message_id,
                text,
                parse_mode,
                self._now(),
                shown_text=shown_text,
                message_ids=(message_id,),
                buttons=buttons,
                disable_notification=bool_parameter(parameters, "disable_notification"),
                protect_content=bool_parameter(parameters, "protect_content"),
                link_preview_disabled=no_preview,
            )
        )
        return self._message_json(message, message.message_id, {"text": shown_text})

    def _file(
        self, parameters: Parameters, kind: MediaKind, value: object, missing: str
    ) -> tuple[StoredFile | None, FilePart | None]:
        """The file a parameter names: an upload in this request (under the parameter's
        own name or by attach://name), or a file_id given before."""
        if isinstance(value, str) and value.startswith("attach://"):
            value = parameters.get(value.removeprefix("attach://"))
            if not isinstance(value, FilePart):
                raise _bad_request(missing)
        if isinstance(value, FilePart):
            if value.size > MAX_UPLOAD_BYTES:
                raise BotApiError(413, "Request Entity Too Large")
            if value.size == 0:
                raise _bad_request("file must be non-empty")
            if kind == "photo" and value.size > MAX_PHOTO_BYTES:
                raise _bad_request("file is too big")
            return None, value
        if not isinstance(value, str) or not value.strip():
            raise _bad_request(missing)
        known = self._files.get(value.strip())
        if known is None:
            raise _bad_request("wrong file identifier/HTTP URL specified")
        if known.kind != kind:
            raise _bad_request("type of file mismatch")
        return known, None

    def _store(
        self, media: _Media, uploads: dict[int, StoredFile]
    ) -> tuple[StoredFile, ReceivedFile]:
        """The file as the chat got it; an upload gets its file_id here, once per part."""
        stored = media.known
        if stored is None:
            assert media.upload is not None
            stored = uploads.get(id(media.upload))
            if stored is None:
                stored = self._files.add_upload(media.kind, media.upload)
                uploads[id(media.upload)] = stored
        received = ReceivedFile(
            media.kind,
            stored.file_id,
            stored.file_unique_id,
            stored.file_name,
            stored.mime_type,
            stored.size,
            uploaded=media.known is None,
            caption=media.caption,
        )
        return stored, received

    def _send_media(self, kind: MediaKind, parameters: Parameters) -> object:
        chat_id = self._sending_to(parameters)
        known, upload = self._file(
            parameters, kind, parameters.get(kind), f"there is no {kind} in the request"
        )
        caption = text_parameter(parameters, "caption") or ""
        parse_mode = self._parse_mode(parameters)
        shown_caption = self._shown_caption(caption, parse_mode)
        buttons = inline_keyboard(parameters)
        stored, received = self._store(_Media(kind, known, upload), {})
        message_id = self._next_message_id(chat_id)
        message = self._record(
            ReceivedMessage(
                chat_id,
                message_id,
                caption,
                parse_mode if caption else None,
                self._now(),
                kind=kind,
                shown_text=shown_caption,
                files=(received,),
                message_ids=(message_id,),
                buttons=buttons,
                disable_notification=bool_parameter(parameters, "disable_notification"),
                protect_content=bool_parameter(parameters, "protect_content"),
            )
        )
        fields = self._files.message_fields(stored)
        if shown_caption:
            fields["caption"] = shown_caption
        return self._message_json(message, message.message_id, fields)

    def _album_items(self, parameters: Parameters) -> list[_Media]:
        media = json_parameter(parameters, "media", "can't parse media JSON object")
        if media is None:
            raise _bad_request('parameter "media" is required')
        if not isinstance(media, list):
            raise _bad_request("expected an Array of InputMedia")
        if len(media) > MAX_ALBUM_ITEMS:
            raise _bad_request("too much messages to send as an album")
        if len(media) < MIN_ALBUM_ITEMS:
            raise _bad_request(
                f"an album takes {MIN_ALBUM_ITEMS} to {MAX_ALBUM_ITEMS} media, not {len(media)}"
            )
        items = []
        for item in media:
            if not isinstance(item, dict):
                raise _bad_request("can't parse InputMedia: InputMedia must be an Object")
            kind: MediaKind
            if item.get("type") == "photo":
                kind = "photo"
            elif item.get("type") == "video":
                kind = "video"
            else:
                raise _bad_request("can't use the media of the specified type in the album")
            known, upload = self._file(
                parameters, kind, item.get("media"), "can't parse InputMedia: media not found"
            )
            caption = item.get("caption") if isinstance(item.get("caption"), str) else None
            parse_mode = self._parse_mode(item)
            items.append(
                _Media(
                    kind,
                    known,
                    upload,
                    caption or None,
                    parse_mode if caption else None,
                    self._shown_caption(caption, parse_mode),
                )
            )
        return items

    def _send_media_group(self, parameters: Parameters) -> object:
        chat_id = self._sending_to(parameters)
        items = self._album_items(parameters)
        uploads: dict[int, StoredFile] = {}
        stored_files, files = zip(*(self._store(item, uploads) for item in items), strict=True)
        message_ids = tuple(self._next_message_id(chat_id) for _ in items)
        first = items[0]
        message = self._record(
            ReceivedMessage(
                chat_id,
                message_ids[0],
                first.caption or "",
                first.parse_mode,
                self._now(),
                kind="album",
                shown_text=first.shown_caption,
                files=files,
                message_ids=message_ids,
                disable_notification=bool_parameter(parameters, "disable_notification"),
                protect_content=bool_parameter(parameters, "protect_content"),
            )
        )
        group_id = f"{chat_id}{message_ids[0]:06d}"
        answers = []
        for message_id, item, stored in zip(message_ids, items, stored_files, strict=True):
            fields = self._files.message_fields(stored)
            fields["media_group_id"] = group_id
            if item.shown_caption:
                fields["caption"] = item.shown_caption
            answers.append(self._message_json(message, message_id, fields))
        return answers

    def _message_in(self, parameters: Parameters, missing: str) -> tuple[int, int]:
        chat_id = self._existing_chat(parameters)
        message_id = integer_parameter(parameters, "message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        key = (chat_id, message_id)
        if key not in self._received or key in self._deleted:
            raise _bad_request(missing)
        return key

    def _pin_chat_message(self, parameters: Parameters) -> object:
        self._inject_random_faults()
        chat_id, message_id = self._message_in(parameters, "message to pin not found")
        self._pinned.setdefault(
            (chat_id, message_id),
            PinnedMessage(
                chat_id,
                message_id,
                bool_parameter(parameters, "disable_notification"),
                self._now(),
            ),
        )
        return True

    def _answer_callback_query(self, parameters: Parameters) -> object:
        self._inject_random_faults()
        query = self._queries.pop(text_parameter(parameters, "callback_query_id") or "", None)
        if query is None:
            raise BotApiError(400, _INVALID_QUERY)
        text = text_parameter(parameters, "text")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            self._queries[query.query_id] = query
            raise _bad_request("MESSAGE_TOO_LONG")
        self._answers.append(
            CallbackAnswer(
                query.query_id,
                query.chat_id,
                query.message_id,
                query.data,
                text or None,
                bool_parameter(parameters, "show_alert"),
                text_parameter(parameters, "url") or None,
                integer_parameter(parameters, "cache_time"),
                self._now(),
            )
        )
        return True

    def _delete_message(self, parameters: Parameters) -> object:
        self._inject_random_faults()
        key = self._message_in(parameters, "message to delete not found")
        if self._now() - self._received[key].sent_at > MESSAGE_DELETE_WINDOW_SECONDS:
            raise _bad_request("message can't be deleted for everyone")
        self._deleted[key] = DeletedMessage(*key, self._now())
        return True

    def _set_webhook(self, parameters: Parameters) -> object:
        url = parameters.get("url")
        self.webhook_url = url if isinstance(url, str) else ""
        secret = parameters.get("secret_token")
        self.webhook_secret = secret if isinstance(secret, str) and secret else None
        return True

    def _delete_webhook(self, parameters: Parameters) -> object:
        self.webhook_url = ""
        self.webhook_secret = None
        return True

    def _get_webhook_info(self, parameters: Parameters) -> object:
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}


def _markup_json(buttons: Sequence[Sequence[InlineButton]]) -> dict[str, object]:
    return {"inline_keyboard": [[button.as_json() for button in row] for row in buttons]}
