"""The composer's fields as posted and what they mean: audience, mode, time, content,
preview, key."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Form
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData

from coursedesk.broadcasts.audiences import MAX_LISTED_USERS, USER_ID_MAX, Audience
from coursedesk.broadcasts.composition import (
    MAX_BUTTON_ROWS,
    MAX_BUTTONS_IN_A_ROW,
    MAX_MEDIA,
    MAX_SUBMITTED_MEDIA,
    MEDIA_ID_MAX,
    Button,
    ContentRequest,
    MediaChoice,
    Options,
)
from coursedesk.broadcasts.idempotency import KeyedRequest, checked_key, request_hash
from coursedesk.broadcasts.models import MAX_HOLDOUT_PERCENT
from coursedesk.broadcasts.personalisation import Profile, escaper, parse_template
from coursedesk.broadcasts.schemas import MAX_SUBMITTED_TEXT
from coursedesk.broadcasts.service import checked_parse_mode
from coursedesk.errors import InvalidInput
from coursedesk.pages.forms import describe_errors
from coursedesk.telegram.formatting import (
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    FormattingError,
    plain_text,
    render_preview_html,
)

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
MAX_SHORT_TEXT = 200
MAX_ID_LIST = 2_500_000
ShortText = Annotated[str, Form(max_length=MAX_SHORT_TEXT)]
IdList = Annotated[str, Form(max_length=MAX_ID_LIST)]
MAX_POSTED_BUTTONS = MAX_BUTTON_ROWS * MAX_BUTTONS_IN_A_ROW + 1
"""The builder's buttons and its blank one for a new button."""


def preview_of(
    text: str,
    parse_mode: str,
    *,
    profile: Profile | None = None,
    caption: bool = False,
) -> dict[str, Any]:
    """The message as a chat would show it, or why Telegram would refuse it: the
    variables filled with `profile`'s values when given, else shown by their names."""
    limit = MAX_CAPTION_LENGTH if caption else MAX_MESSAGE_LENGTH
    if not text.strip():
        return {"html": None, "error": None, "length": 0, "limit": limit}
    try:
        mode = checked_parse_mode(parse_mode or None)
        template = parse_template(text, "text")
        if template.is_personal:
            escape = escaper(mode)
            text = (
                template.with_names(escape) if profile is None else template.fill(profile, escape)
            )
        return {
            "html": render_preview_html(text, mode),
            "error": None,
            "length": len(plain_text(text, mode)),
            "limit": limit,
        }
    except (FormattingError, InvalidInput) as exc:
        return {"html": None, "error": str(exc), "length": None, "limit": limit}


def new_request_key() -> str:
    return secrets.token_urlsafe(24)


OPTION_NAMES = ("disable_link_preview", "protect_content", "silent", "pin")
BUTTON_KINDS = ("url", "callback")
_HIGHEST_ROW = 999
"""A button's row number is a place in the builder's order, not an index: any up to this."""
_SAVED_TEXT = ("text", "parse_mode", "audience_type", "stream", "user_ids", "send_at")
_SAVED_MORE = (
    "scheduled_at",
    "test_chat_id",
    "media_ids",
    "preview_user_id",
    "track_links",
    "holdout_percent",
)


@dataclass(frozen=True)
class ButtonField:
    """One button as the composer's builder holds it: its row, text, kind and target."""

    row: str = "0"
    text: str = ""
    kind: str = "url"
    value: str = ""

    @property
    def is_blank(self) -> bool:
        return not self.text.strip() and not self.value.strip()

    def button(self) -> Button:
        if self.kind not in BUTTON_KINDS:
            raise InvalidInput(f"buttons: a button opens a link or sends data, not {self.kind!r}")
        target = self.value.strip()
        values = {"text": self.text, "url" if self.kind == "url" else "callback_data": target}
        try:
            return Button.model_validate(values)
        except ValidationError as exc:
            raise InvalidInput(f"buttons: {describe_errors(exc.errors())}") from None


@dataclass(frozen=True)
class Draft:
    """A broadcast being written, exactly as its form holds it.

    `request_key` is the form's Idempotency-Key, made when the composer is
    opened and carried through review to the confirm form: however often that form is
    posted (a double click, a reload after Back), it sends once. `draft_id` and
    `draft_version` name the saved draft it was opened from, if any (broadcasts/drafts.py).
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
    media_ids: str = ""
    buttons: tuple[ButtonField, ...] = ()
    disable_link_preview: bool = False
    protect_content: bool = False
    silent: bool = False
    pin: bool = False
    preview_user_id: str = ""
    draft_id: str = ""
    draft_version: str = ""
    track_links: str = "1"
    """"1" (checked) or "": on by default; the page offers it only with PUBLIC_BASE_URL."""
    holdout_percent: str = "0"
    """The control group's share of the audience, as typed (broadcasts/holdout.py)."""

    def fields(self) -> list[tuple[str, str]]:
        """The draft as the hidden fields of a form that posts it again."""
        fields = [
            (name, value)
            for name, value in asdict(self).items()
            if isinstance(value, str) and name != "request_key"
        ]
        fields += [(name, "1") for name in OPTION_NAMES if getattr(self, name)]
        for button in self.buttons:
            fields += [
                ("button_row", button.row),
                ("button_text", button.text),
                ("button_kind", button.kind),
                ("button_value", button.value),
            ]
        return fields

    def saved(self) -> dict[str, Any]:
        """What a saved draft keeps: the whole composition, not the form's key."""
        kept: dict[str, Any] = {name: getattr(self, name) for name in _SAVED_TEXT + _SAVED_MORE}
        kept["options"] = [name for name in OPTION_NAMES if getattr(self, name)]
        kept["buttons"] = [asdict(button) for button in self.buttons]
        return kept

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any], *, draft_id: int, version: int) -> Draft:
        strings: dict[str, Any] = {
            name: str(saved[name])
            for name in _SAVED_TEXT + _SAVED_MORE
            if isinstance(saved.get(name), str)
        }
        options = saved.get("options") or []
        buttons = tuple(
            ButtonField(**{k: str(v) for k, v in button.items() if k in _BUTTON_FIELDS})
            for button in saved.get("buttons") or []
            if isinstance(button, dict)
        )
        opened = cls(buttons=buttons, draft_id=str(draft_id), draft_version=str(version))
        return replace(opened, **strings).with_options(lambda name: name in options)

    def with_options(self, chosen: Callable[[str], bool]) -> Draft:
        """This draft with each of OPTION_NAMES on where `chosen` says so."""
        options: dict[str, Any] = {name: chosen(name) for name in OPTION_NAMES}
        return replace(self, **options)

    def with_new_key(self) -> Draft:
        return replace(self, request_key=new_request_key())

    def keyed(self, account: str, audience: Audience, timezone: ZoneInfo) -> KeyedRequest:
        """This draft as a request under its key; the key must be there."""
        return KeyedRequest(
            account,
            checked_key(self.request_key),
            request_hash(
                self.text,
                audience,
                self.parse_mode or None,
                self.schedule(timezone),
                self.content(),
            ),
        )

    def listed_media(self) -> list[int]:
        """The chosen files' ids, in album order."""
        parts = id_parts(self.media_ids)
        if len(parts) > MAX_SUBMITTED_MEDIA:
            raise InvalidInput(f"media: at most {MAX_MEDIA} files go in one message")
        ids = [whole_number(part, MEDIA_ID_MAX) for part in parts]
        if not all(ids):
            raise InvalidInput("media: the files' ids are whole numbers, separated by commas")
        return [media_id for media_id in ids if media_id]

    def button_groups(self) -> list[list[ButtonField]]:
        """The builder's buttons in their rows, for the form to show again."""
        rows: dict[str, list[ButtonField]] = {}
        for button in self.buttons:
            if not button.is_blank:
                rows.setdefault(button.row, []).append(button)
        numbers = {row: whole_number(row, _HIGHEST_ROW) for row in rows}
        order = sorted(rows, key=lambda row: (numbers[row] is None, numbers[row] or 0))
        return [rows[row] for row in order]

    def button_rows(self) -> list[list[Button]]:
        """The buttons in rows, by row number; a button left blank is no button."""
        rows: dict[int, list[Button]] = {}
        for button in self.buttons:
            if button.is_blank:
                continue
            number = whole_number(button.row, _HIGHEST_ROW)
            if number is None:
                raise InvalidInput(f"buttons: a row is a whole number, not {button.row[:20]!r}")
            rows.setdefault(number, []).append(button.button())
        return [rows[number] for number in sorted(rows)]

    def options(self) -> Options:
        return Options(**{name: getattr(self, name) for name in OPTION_NAMES})

    def content(self) -> ContentRequest:
        """Media, buttons and options as the send request takes them."""
        return ContentRequest(
            media=[MediaChoice(media_id=media_id) for media_id in self.listed_media()],
            buttons=self.button_rows(),
            options=self.options(),
            track_links=_flag(self.track_links),
            holdout_percent=self.holdout(),
        )

    def holdout(self) -> int:
        typed = self.holdout_percent.strip() or "0"
        percent = whole_number(typed, MAX_HOLDOUT_PERCENT)
        if percent is None:
            raise InvalidInput(
                f"control group: a whole number from 0 to {MAX_HOLDOUT_PERCENT} %, "
                f"not {typed[:20]!r}"
            )
        return percent

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
        parts = id_parts(self.user_ids)
        if not parts:
            raise InvalidInput("choose at least one student")
        if len(parts) > MAX_LISTED_USERS:
            raise InvalidInput(f"at most {MAX_LISTED_USERS:,} students can be chosen")
        ids = [whole_number(part, USER_ID_MAX) for part in parts]
        if None in ids:
            raise InvalidInput("student ids are whole numbers, separated by commas")
        return [user_id for user_id in ids if user_id is not None]

    def preview_user(self) -> int | None:
        """The student the preview is shown as, if one is chosen."""
        value = self.preview_user_id.strip()
        if not value:
            return None
        user_id = whole_number(value, USER_ID_MAX)
        if user_id is None:
            raise InvalidInput("the preview's student is a user id, a whole number")
        return user_id

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
        chat = whole_number(value.removeprefix("-"), USER_ID_MAX)
        if chat is None:
            raise InvalidInput("the test chat is a Telegram chat id, a whole number")
        return -chat if value.startswith("-") else chat


_BUTTON_FIELDS = frozenset(field.name for field in dataclass_fields(ButtonField))


def posted_buttons(
    rows: Sequence[str], texts: Sequence[str], kinds: Sequence[str], values: Sequence[str]
) -> tuple[ButtonField, ...]:
    """The builder's buttons: four lists posted side by side, one entry per button."""
    if not len(rows) == len(texts) == len(kinds) == len(values):
        raise InvalidInput("buttons: each button needs its row, text, kind and target")
    if len(rows) > MAX_POSTED_BUTTONS:
        raise InvalidInput(
            f"buttons: at most {MAX_BUTTON_ROWS} rows of {MAX_BUTTONS_IN_A_ROW} buttons"
        )
    return tuple(ButtonField(*four) for four in zip(rows, texts, kinds, values, strict=True))


def id_parts(listed: str) -> list[str]:
    """The ids of a field that lists them, between commas, semicolons or spaces."""
    return [part for part in _ID_SEPARATORS.split(listed) if part]


def whole_number(text: str, highest: int) -> int | None:
    """`text` as a whole number from 0 to `highest`; None when it is not one. Its length
    is checked first: int() refuses a string of over 4,300 digits with a ValueError."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(highest)):
        return None
    number = int(text)
    return number if number <= highest else None


def _flag(value: str) -> bool:
    return value not in ("", "0", "off", "false")


ButtonList = Annotated[list[str], Form(max_length=MAX_POSTED_BUTTONS + 1)]


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
    media_ids: ShortText = "",
    button_row: ButtonList = [],  # noqa: B006 - FastAPI copies a default, never shares it
    button_text: ButtonList = [],  # noqa: B006
    button_kind: ButtonList = [],  # noqa: B006
    button_value: ButtonList = [],  # noqa: B006
    disable_link_preview: ShortText = "",
    protect_content: ShortText = "",
    silent: ShortText = "",
    pin: ShortText = "",
    preview_user_id: ShortText = "",
    draft_id: ShortText = "",
    draft_version: ShortText = "",
    track_links: ShortText = "",
    holdout_percent: ShortText = "0",
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
        media_ids=media_ids,
        buttons=posted_buttons(button_row, button_text, button_kind, button_value),
        disable_link_preview=_flag(disable_link_preview),
        protect_content=_flag(protect_content),
        silent=_flag(silent),
        pin=_flag(pin),
        preview_user_id=preview_user_id,
        draft_id=draft_id,
        draft_version=draft_version,
        track_links="1" if _flag(track_links) else "",
        holdout_percent=holdout_percent,
    )


async def draft_from_form(form: FormData) -> Draft:
    """The composer form read from a parsed body (one posted with a file)."""

    def one(name: str, default: str = "") -> str:
        value = form.get(name, default)
        return value if isinstance(value, str) else default

    def many(name: str) -> list[str]:
        return [value for value in form.getlist(name) if isinstance(value, str)]

    # The limits the form's own routes have FastAPI check (LongText, IdList, ShortText).
    limits = {"text": MAX_SUBMITTED_TEXT, "user_ids": MAX_ID_LIST}
    for name in (*_POSTED_STRINGS, "send_at"):
        limit = limits.get(name, MAX_SHORT_TEXT)
        if len(one(name)) > limit:
            raise InvalidInput(f"{name}: at most {limit:,} characters")
    return await posted_draft(
        **{name: one(name) for name in _POSTED_STRINGS},
        send_at=one("send_at", "now"),
        button_row=many("button_row"),
        button_text=many("button_text"),
        button_kind=many("button_kind"),
        button_value=many("button_value"),
    )


_POSTED_STRINGS = (
    "text",
    "parse_mode",
    "audience_type",
    "stream",
    "user_ids",
    "scheduled_at",
    "test_chat_id",
    "request_key",
    "media_ids",
    "disable_link_preview",
    "protect_content",
    "silent",
    "pin",
    "preview_user_id",
    "draft_id",
    "draft_version",
    "track_links",
    "holdout_percent",
)
