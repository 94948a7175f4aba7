"""The composer's fields as posted, and what they mean: the audience, the mode, the time."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import Form
from pydantic import TypeAdapter, ValidationError

from coursedesk.broadcasts.audiences import MAX_LISTED_USERS, USER_ID_MAX, Audience
from coursedesk.broadcasts.schemas import MAX_SUBMITTED_TEXT
from coursedesk.errors import InvalidInput
from coursedesk.pages.forms import describe_errors

AudienceType = Literal["all", "non_course", "stream", "users"]
AUDIENCE_CHOICES: tuple[tuple[AudienceType, str, str], ...] = (
    ("all", "Everyone", "Every student who has not blocked the bot"),
    ("non_course", "Not on a course", "Students without a confirmed booking"),
    ("stream", "One stream", "Students with a live booking in the stream"),
    ("users", "Chosen students", "Pick students by name, @username or id"),
)
PARSE_MODES = (("", "Plain text"), ("HTML", "HTML"), ("MarkdownV2", "MarkdownV2"))
_AUDIENCE = TypeAdapter[Audience](Audience)
_ID_SEPARATORS = re.compile(r"[\s,;]+")

LongText = Annotated[str, Form(max_length=MAX_SUBMITTED_TEXT)]
ShortText = Annotated[str, Form(max_length=200)]
IdList = Annotated[str, Form(max_length=2_500_000)]


@dataclass(frozen=True)
class Draft:
    """A broadcast being written, exactly as its form holds it."""

    text: str = ""
    parse_mode: str = ""
    audience_type: str = "all"
    stream: str = ""
    user_ids: str = ""
    send_at: str = "now"
    scheduled_at: str = ""
    test_chat_id: str = ""

    def fields(self) -> dict[str, str]:
        return asdict(self)

    def audience(self) -> Audience:
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
    audience_type: ShortText = "all",
    stream: ShortText = "",
    user_ids: IdList = "",
    send_at: ShortText = "now",
    scheduled_at: ShortText = "",
    test_chat_id: ShortText = "",
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
    )
