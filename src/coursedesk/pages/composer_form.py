"""The composer's fields as posted and what they mean: audience, mode, time, preview, key."""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Form
from pydantic import TypeAdapter, ValidationError

from coursedesk.broadcasts.audiences import MAX_LISTED_USERS, USER_ID_MAX, Audience
from coursedesk.broadcasts.idempotency import KeyedRequest, checked_key, request_hash
from coursedesk.broadcasts.personalisation import escaper, parse_template
from coursedesk.broadcasts.schemas import MAX_SUBMITTED_TEXT
from coursedesk.broadcasts.service import checked_parse_mode
from coursedesk.errors import InvalidInput
from coursedesk.pages.forms import describe_errors
from coursedesk.telegram.formatting import FormattingError, plain_text, render_preview_html

AudienceType = Literal["all", "non_course", "stream", "users"]
AUDIENCE_CHOICES: tuple[tuple[AudienceType, str, str], ...] = (
    ("all", "Everyone", "Every student who has not blocked the bot"),
    ("non_course", "Not on a course", "Students without a confirmed booking"),
    ("stream", "One stream", "Students with a live booking in the stream"),
    ("users", "Chosen students", "Pick students by name, @username or id"),
)
AUDIENCE_TYPES = frozenset(value for value, _, _ in AUDIENCE_CHOICES)
PARSE_MODES = (("", "Plain text"), ("HTML", "HTML"), ("MarkdownV2", "MarkdownV2"))
_AUDIENCE = TypeAdapter[Audience](Audience)
_ID_SEPARATORS = re.compile(r"[\s,;]+")

LongText = Annotated[str, Form(max_length=MAX_SUBMITTED_TEXT)]
ShortText = Annotated[str, Form(max_length=200)]
IdList = Annotated[str, Form(max_length=2_500_000)]


def preview_of(text: str, parse_mode: str) -> dict[str, Any]:
    """The message as a chat would show it, or why Telegram would refuse it."""
    if not text.strip():
        return {"html": None, "error": None, "length": 0}
    try:
        mode = checked_parse_mode(parse_mode or None)
        template = parse_template(text, "text")
        if template.is_personal:
            text = template.with_names(escaper(mode))
        return {
            "html": render_preview_html(text, mode),
            "error": None,
            "length": len(plain_text(text, mode)),
        }
    except (FormattingError, InvalidInput) as exc:
        return {"html": None, "error": str(exc), "length": None}


def new_request_key() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Draft:
    """A broadcast being written, exactly as its form holds it.

    `request_key` is the form's Idempotency-Key, made when the composer is
    opened and carried through review to the confirm form: however often that form is
    posted (a double click, a reload after Back), it sends once.
    """

    text: str = ""
    parse_mode: str = ""
    audience_type: str = ""
    stream: str = ""
    user_ids: str = ""
    send_at: str = "now"
    scheduled_at: str = ""
    test_chat_id: str = ""
    request_key: str = ""

    def fields(self) -> dict[str, str]:
        return asdict(self)

    def with_new_key(self) -> Draft:
        return replace(self, request_key=new_request_key())

    def keyed(self, account: str, audience: Audience, timezone: ZoneInfo) -> KeyedRequest:
        """This draft as a request under its key; the key must be there."""
        return KeyedRequest(
            account,
            checked_key(self.request_key),
            request_hash(self.text, audience, self.parse_mode or None, self.schedule(timezone)),
        )

    def audience(self) -> Audience:
        if self.audience_type not in AUDIENCE_TYPES:
            raise InvalidInput("choose who receives the broadcast")
        if self.audience_type == "stream" and not self.stream.strip():
            raise InvalidInput("choose the stream the broadcast goes to")
        if self.audience_type == "users":
            described: dict[str, object] = {"type": "users", "user_ids": self.listed_ids()}
        else:
            described = {"type": self.audience_type, "stream": self.stream}
            if self.audience_type != "stream":
                described.pop("stream")
        try:
            return _AUDIENCE.validate_python(described)
        except ValidationError as exc:
            raise InvalidInput(f"audience: {describe_errors(exc.errors())}") from None

    def listed_ids(self) -> list[int]:
        parts = [part for part in _ID_SEPARATORS.split(self.user_ids) if part]
        if not parts:
            raise InvalidInput("choose at least one student")
        if len(parts) > MAX_LISTED_USERS:
            raise InvalidInput(f"at most {MAX_LISTED_USERS:,} students can be chosen")
        if not all(part.isascii() and part.isdigit() for part in parts):
            raise InvalidInput("student ids are whole numbers, separated by commas")
        return [int(part) for part in parts]

    def schedule(self, timezone: ZoneInfo) -> datetime | None:
        """None to send now, else the chosen local time in APP_TIMEZONE."""
        if self.send_at != "later":
            return None
        if not self.scheduled_at.strip():
            raise InvalidInput("choose when to send it, or send it now")
        try:
            local = datetime.fromisoformat(self.scheduled_at.strip())
        except ValueError:
            raise InvalidInput(f"{self.scheduled_at!r} is not a date and time") from None
        return local.replace(tzinfo=timezone) if local.tzinfo is None else local

    def test_chat(self) -> int:
        value = self.test_chat_id.strip()
        digits = value.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()) or int(digits) > USER_ID_MAX:
            raise InvalidInput("the test chat is a Telegram chat id, a whole number")
        return int(value)


async def posted_draft(
    text: LongText = "",
    parse_mode: ShortText = "",
    audience_type: ShortText = "",
    stream: ShortText = "",
    user_ids: IdList = "",
    send_at: ShortText = "now",
    scheduled_at: ShortText = "",
    test_chat_id: ShortText = "",
    request_key: ShortText = "",
) -> Draft:
    """The composer form as a dependency of the routes it posts to."""
    return Draft(
        # Browsers send a textarea's line breaks as CRLF; the chat shows plain newlines.
        text=text.replace("\r\n", "\n"),
        parse_mode=parse_mode,
        audience_type=audience_type,
        stream=stream,
        user_ids=user_ids,
        send_at=send_at,
        scheduled_at=scheduled_at,
        test_chat_id=test_chat_id,
        request_key=request_key,
    )
