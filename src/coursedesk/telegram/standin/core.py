"""The stand-in Bot API's behaviour and memory, apart from HTTP: methods, faults and logs."""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from coursedesk.telegram.formatting import FormattingError, normalize_parse_mode, plain_text
from coursedesk.telegram.standin.faults import MESSAGE_DELETE_WINDOW_SECONDS, Faults

Parameters = Mapping[str, object]
_INTEGER = re.compile(r"-?[0-9]{1,19}")


class BotApiError(Exception):
    """An error answer of the Bot API: HTTP status, description, maybe a retry_after."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message a chat got, as it was sent."""

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    sent_at: float


@dataclass(frozen=True, slots=True)
class DeletedMessage:
    chat_id: int
    message_id: int
    deleted_at: float


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One Bot API call and how it was answered (status 200 or the error)."""

    method: str
    chat_id: int | None
    status: int
    description: str | None
    at: float


def _integer_parameter(parameters: Parameters, name: str) -> int | None:
    """Form bodies carry every value as text, JSON bodies as numbers; both are accepted."""
    value = parameters.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return None


def _bot_id_of(token: str) -> int:
    prefix = token.partition(":")[0]
    return int(prefix) if prefix.isdigit() else 1


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
        self._received: dict[tuple[int, int], ReceivedMessage] = {}
        self._deleted: dict[tuple[int, int], DeletedMessage] = {}
        self._calls: list[ApiCall] = []
        self._recent_sends: deque[float] = deque()
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
        """Forget every message and call, and go back to the faults given at start."""
        with self._lock:
            self._reset_state(self._initial_faults)

    def received(self, chat_id: int | None = None) -> list[ReceivedMessage]:
        """What the chats got, in order; deleted messages included."""
        with self._lock:
            messages = list(self._received.values())
        return [m for m in messages if chat_id is None or m.chat_id == chat_id]

    def deleted(self) -> list[DeletedMessage]:
        with self._lock:
            return list(self._deleted.values())

    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def log_as_json(self, chat_id: int | None = None) -> dict[str, list[dict[str, object]]]:
        return {
            "messages": [asdict(m) for m in self.received(chat_id)],
            "deleted": [
                asdict(d) for d in self.deleted() if chat_id is None or d.chat_id == chat_id
            ],
            "calls": [asdict(c) for c in self.calls() if chat_id is None or c.chat_id == chat_id],
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
        chat_id = _integer_parameter(parameters, "chat_id")
        with self._lock:
            try:
                if token != self.token:
                    raise BotApiError(401, "Unauthorized")
                handler = self._methods.get(method.lower())
                if handler is None:
                    raise BotApiError(404, "Not Found")
                result = handler(parameters)
            except BotApiError as error:
                self._calls.append(
                    ApiCall(method, chat_id, error.status, error.description, self._clock())
                )
                raise
            self._calls.append(ApiCall(method, chat_id, 200, None, self._clock()))
            return result

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
            raise BotApiError(400, "Bad Request: chat_id is empty")
        chat_id = _integer_parameter(parameters, "chat_id")
        if chat_id is None or chat_id in self._faults.missing_chats:
            raise BotApiError(400, "Bad Request: chat not found")
        if chat_id in self._faults.blocked_chats:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _bot_user(self) -> dict[str, object]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Coursedesk Stand-in",
            "username": "coursedesk_standin_bot",
        }

    def _get_me(self, parameters: Parameters) -> object:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _send_message(self, parameters: Parameters) -> object:
        self._inject_random_faults()
        self._check_rate_limit()
        chat_id = self._existing_chat(parameters)
        text = parameters.get("text")
        if not isinstance(text, str) or not text:
            raise BotApiError(400, "Bad Request: message text is empty")
        raw_parse_mode = parameters.get("parse_mode")
        try:
            parse_mode = normalize_parse_mode(
                raw_parse_mode if isinstance(raw_parse_mode, str) else None
            )
            shown_text = plain_text(text, parse_mode)
        except FormattingError as error:
            raise BotApiError(400, f"Bad Request: {error}") from None
        self._last_message_ids[chat_id] += 1
        message = ReceivedMessage(
            chat_id, self._last_message_ids[chat_id], text, parse_mode, self._now()
        )
        self._received[(chat_id, message.message_id)] = message
        return {
            "message_id": message.message_id,
            "from": self._bot_user(),
            "chat": {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"},
            "date": int(message.sent_at),
            "text": shown_text,
        }

    def _delete_message(self, parameters: Parameters) -> object:
        self._inject_random_faults()
        chat_id = self._existing_chat(parameters)
        message_id = _integer_parameter(parameters, "message_id")
        if message_id is None:
            raise BotApiError(400, "Bad Request: message identifier is not specified")
        key = (chat_id, message_id)
        message = self._received.get(key)
        if message is None or key in self._deleted:
            raise BotApiError(400, "Bad Request: message to delete not found")
        if self._now() - message.sent_at > MESSAGE_DELETE_WINDOW_SECONDS:
            raise BotApiError(400, "Bad Request: message can't be deleted for everyone")
        self._deleted[key] = DeletedMessage(chat_id, message_id, self._now())
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
