"""Reading Bot API parameters as Telegram does, whichever body they came in.

A JSON body carries numbers, booleans and objects as themselves; a query string, an
urlencoded or a multipart form carries every value as text, objects as JSON text.
Each reader here takes both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

Parameters = Mapping[str, object]

MAX_BUTTONS_IN_A_ROW = 8
MAX_BUTTONS = 100
MAX_CALLBACK_DATA_BYTES = 64

_INTEGER = re.compile(r"-?[0-9]{1,19}")
_TRUE = frozenset({"true", "yes", "1"})
_URL_SCHEMES = frozenset({"http", "https", "tg"})


class ParameterError(ValueError):
    """A parameter Telegram would refuse; the message is its description, after "Bad Request: "."""


@dataclass(frozen=True, slots=True)
class InlineButton:
    """One inline keyboard button: a link (`url`) or a callback (`callback_data`)."""

    text: str
    url: str | None = None
    callback_data: str | None = None

    def as_json(self) -> dict[str, str]:
        if self.url is not None:
            return {"text": self.text, "url": self.url}
        return {"text": self.text, "callback_data": self.callback_data or ""}


Keyboard = tuple[tuple[InlineButton, ...], ...]


def integer_parameter(parameters: Parameters, name: str) -> int | None:
    value = parameters.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return None


def text_parameter(parameters: Parameters, name: str) -> str | None:
    """A text parameter; a number in a JSON body counts as its digits."""
    value = parameters.get(name)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def bool_parameter(parameters: Parameters, name: str) -> bool:
    """True for JSON true, or text "true", "yes" or "1" in any case; anything else is false."""
    value = parameters.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return False


def json_parameter(parameters: Parameters, name: str, unreadable: str) -> object:
    """An object parameter: as sent in a JSON body, or parsed from JSON text.

    None when absent or empty; ParameterError(`unreadable`) when the text is not JSON.
    """
    value = parameters.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ParameterError(unreadable) from None


def link_preview_disabled(parameters: Parameters) -> bool:
    """link_preview_options.is_disabled, or the older disable_web_page_preview."""
    options = json_parameter(
        parameters, "link_preview_options", "can't parse link preview options JSON object"
    )
    if options is not None:
        if not isinstance(options, dict):
            raise ParameterError("object expected as link preview options")
        return options.get("is_disabled") is True
    return bool_parameter(parameters, "disable_web_page_preview")


def inline_keyboard(parameters: Parameters) -> Keyboard:
    """The inline keyboard of `reply_markup`, checked as Telegram checks it; () without one.

    Only link and callback buttons are understood; a reply markup of another kind (a
    reply keyboard, its removal, a forced reply) is taken as no inline keyboard.
    """
    markup = json_parameter(
        parameters, "reply_markup", "can't parse reply keyboard markup JSON object"
    )
    if markup is None:
        return ()
    if not isinstance(markup, dict):
        raise ParameterError("object expected as reply markup")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return ()
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ParameterError(
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
        )
    keyboard = tuple(tuple(_button(button) for button in row) for row in rows if row)
    if any(len(row) > MAX_BUTTONS_IN_A_ROW for row in keyboard) or (
        sum(len(row) for row in keyboard) > MAX_BUTTONS
    ):
        raise ParameterError("reply markup is too long")
    return keyboard


def _button(button: object) -> InlineButton:
    if not isinstance(button, dict):
        raise ParameterError(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    text = button.get("text")
    if not isinstance(text, str):
        raise ParameterError("can't parse inline keyboard button: Can't find field \"text\"")
    if not text.strip():
        raise ParameterError("can't parse inline keyboard button: button text must be non-empty")
    url = button.get("url")
    if isinstance(url, str) and url:
        if not _is_button_url(url):
            raise ParameterError("BUTTON_URL_INVALID")
        return InlineButton(text, url=url)
    data = button.get("callback_data")
    if isinstance(data, str) and data:
        if len(data.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
            raise ParameterError("BUTTON_DATA_INVALID")
        return InlineButton(text, callback_data=data)
    raise ParameterError(
        "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
    )


def _is_button_url(url: str) -> bool:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in _URL_SCHEMES:
        return False
    return scheme == "tg" or bool(parts.hostname)
