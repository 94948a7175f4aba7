"""The stand-in's media, buttons, pins and button presses: what it takes, refuses and logs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from coursedesk.telegram.standin import BotApiStandin, InlineButton
from coursedesk.telegram.standin.core import BotApiError
from coursedesk.telegram.standin.files import FilePart

TOKEN = "42:media-token"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def _part(field: str, content: bytes = PHOTO, filename: str = "photo.png") -> FilePart:
    return FilePart(field, filename, "image/png", len(content), hashlib.sha256(content).hexdigest())


def _ok(standin: BotApiStandin, method: str, parameters: dict[str, object]) -> Any:
    return standin.call(TOKEN, method, parameters)


def _refusal(standin: BotApiStandin, method: str, parameters: dict[str, object]) -> str:
    with pytest.raises(BotApiError) as raised:
        standin.call(TOKEN, method, parameters)
    return raised.value.description


def _post(http: httpx.Client, token: str, method: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    answer = http.post(f"/bot{token}/{method}", **kwargs)
    return answer.status_code, answer.json()


def test_an_upload_gets_photo_sizes_and_a_file_id_that_works_from_then_on(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    status, body = _post(
        http,
        bot_token,
        "sendPhoto",
        data={"chat_id": "5", "caption": "<b>New</b> course", "parse_mode": "HTML"},
        files={"photo": ("poster.png", PHOTO, "image/png")},
    )

    assert status == 200
    sizes = body["result"]["photo"]
    assert [(s["width"], s["height"]) for s in sizes] == [(90, 68), (320, 240), (1280, 960)]
    assert sizes[-1]["file_size"] == len(PHOTO)
    assert body["result"]["caption"] == "New course"
    largest = sizes[-1]["file_id"]

    again = http.post(f"/bot{bot_token}/sendPhoto", json={"chat_id": 6, "photo": largest})
    smaller = http.post(
        f"/bot{bot_token}/sendPhoto", json={"chat_id": 7, "photo": sizes[0]["file_id"]}
    )

    assert again.json()["result"]["photo"][-1]["file_id"] == largest
    assert [s["width"] for s in smaller.json()["result"]["photo"]] == [90]
    [first, second, third] = standin.received()
    assert (first.kind, first.text, first.shown_text) == (
        "photo",
        "<b>New</b> course",
        "New course",
    )
    assert [(f.file_name, f.size, f.mime_type, f.uploaded) for f in first.files] == [
        ("poster.png", len(PHOTO), "image/png", True)
    ]
    assert (second.files[0].file_id, second.files[0].uploaded) == (largest, False)
    assert third.files[0].file_id == sizes[0]["file_id"]


def test_the_same_content_uploaded_twice_gets_two_file_ids_of_one_unique_id() -> None:
    standin = BotApiStandin(TOKEN)

    first = _ok(standin, "sendDocument", {"chat_id": 1, "document": _part("document")})
    second = _ok(standin, "sendDocument", {"chat_id": 1, "document": _part("document")})

    assert first["document"]["file_id"] != second["document"]["file_id"]
    assert first["document"]["file_unique_id"] == second["document"]["file_unique_id"]
    assert first["document"]["file_name"] == "photo.png"


def test_each_media_kind_answers_with_its_own_field() -> None:
    standin = BotApiStandin(TOKEN)

    video = _ok(standin, "sendVideo", {"chat_id": 1, "video": _part("video")})
    animation = _ok(standin, "sendAnimation", {"chat_id": 1, "animation": _part("animation")})

    assert {"video"} <= video.keys() and "document" not in video
    assert video["video"]["duration"] == 0
    # Telegram gives an animation's message its file as a document too.
    assert animation["animation"]["file_id"] == animation["document"]["file_id"]
    assert [m.kind for m in standin.received()] == ["video", "animation"]


def test_a_file_may_be_attached_under_another_name() -> None:
    standin = BotApiStandin(TOKEN)

    sent = _ok(
        standin, "sendPhoto", {"chat_id": 1, "photo": "attach://poster", "poster": _part("poster")}
    )

    assert sent["photo"][-1]["file_size"] == len(PHOTO)
    assert _refusal(standin, "sendPhoto", {"chat_id": 1, "photo": "attach://absent"}) == (
        "Bad Request: there is no photo in the request"
    )


@pytest.mark.parametrize(
    ("method", "parameters", "description"),
    [
        ("sendPhoto", {}, "Bad Request: there is no photo in the request"),
        ("sendVideo", {"video": ""}, "Bad Request: there is no video in the request"),
        (
            "sendDocument",
            {"document": "no-such-file"},
            "Bad Request: wrong file identifier/HTTP URL specified",
        ),
        ("sendPhoto", {"photo": _part("photo", b"")}, "Bad Request: file must be non-empty"),
        (
            "sendPhoto",
            {"photo": FilePart("photo", "big.jpg", "image/jpeg", 10 * 2**20 + 1, "0" * 64)},
            "Bad Request: file is too big",
        ),
        (
            "sendDocument",
            {"document": FilePart("document", "big.zip", None, 50 * 2**20 + 1, "0" * 64)},
            "Request Entity Too Large",
        ),
        (
            "sendPhoto",
            {"photo": _part("photo"), "caption": "x" * 1025},
            ("Bad Request: message caption is too long"),
        ),
        (
            "sendPhoto",
            {"photo": _part("photo"), "caption": "<b>x", "parse_mode": "HTML"},
            "Bad Request: can't parse entities: "
            'Can\'t find end tag corresponding to start tag "b"',
        ),
        ("sendMessage", {"text": "y" * 4097}, "Bad Request: message is too long"),
    ],
)
def test_what_telegram_refuses_in_a_send_is_refused(
    method: str, parameters: dict[str, object], description: str
) -> None:
    standin = BotApiStandin(TOKEN)

    assert _refusal(standin, method, {"chat_id": 1, **parameters}) == description
    assert standin.received() == []


def test_a_file_id_of_one_kind_is_refused_for_another() -> None:
    standin = BotApiStandin(TOKEN)
    photo = _ok(standin, "sendPhoto", {"chat_id": 1, "photo": _part("photo")})["photo"][-1]

    assert _refusal(standin, "sendDocument", {"chat_id": 1, "document": photo["file_id"]}) == (
        "Bad Request: type of file mismatch"
    )


def test_a_1024_character_caption_is_taken_and_an_empty_one_left_out() -> None:
    standin = BotApiStandin(TOKEN)

    long = _ok(standin, "sendPhoto", {"chat_id": 1, "photo": _part("photo"), "caption": "é" * 1024})
    bare = _ok(standin, "sendPhoto", {"chat_id": 1, "photo": _part("photo"), "caption": ""})

    assert len(long["caption"]) == 1024
    assert "caption" not in bare


_BUTTONS = [
    [{"text": "Book", "url": "https://example.com/book"}],
    [{"text": "Yes", "callback_data": "yes"}],
]


@pytest.mark.parametrize(
    "markup",
    [
        pytest.param({"inline_keyboard": _BUTTONS}, id="object"),
        pytest.param(json.dumps({"inline_keyboard": _BUTTONS}), id="json-text"),
    ],
)
def test_inline_buttons_are_taken_as_an_object_or_as_json_text(markup: object) -> None:
    standin = BotApiStandin(TOKEN)

    sent = _ok(standin, "sendMessage", {"chat_id": 1, "text": "Pick", "reply_markup": markup})

    assert sent["reply_markup"] == {"inline_keyboard": _BUTTONS}
    assert standin.received()[0].buttons == (
        (InlineButton("Book", url="https://example.com/book"),),
        (InlineButton("Yes", callback_data="yes"),),
    )


@pytest.mark.parametrize(
    ("markup", "description"),
    [
        ("{not json", "can't parse reply keyboard markup JSON object"),
        ("[]", "object expected as reply markup"),
        (
            {"inline_keyboard": [{"text": "x"}]},
            ('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'),
        ),
        (
            {"inline_keyboard": [["Book"]]},
            ("can't parse inline keyboard button: InlineKeyboardButton must be an Object"),
        ),
        (
            {"inline_keyboard": [[{"url": "https://example.com"}]]},
            ("can't parse inline keyboard button: Can't find field \"text\""),
        ),
        (
            {"inline_keyboard": [[{"text": "Plain"}]]},
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        ({"inline_keyboard": [[{"text": "x", "callback_data": "d" * 65}]]}, "BUTTON_DATA_INVALID"),
        ({"inline_keyboard": [[{"text": "x", "callback_data": "я" * 33}]]}, "BUTTON_DATA_INVALID"),
        (
            {"inline_keyboard": [[{"text": "x", "url": "javascript:alert(1)"}]]},
            "BUTTON_URL_INVALID",
        ),
        ({"inline_keyboard": [[{"text": "x", "url": "https://"}]]}, "BUTTON_URL_INVALID"),
        (
            {"inline_keyboard": [[{"text": "x", "callback_data": "d"}] * 9]},
            "reply markup is too long",
        ),
        (
            {"inline_keyboard": [[{"text": "x", "callback_data": "d"}] * 5] * 21},
            ("reply markup is too long"),
        ),
    ],
)
def test_an_inline_keyboard_of_the_wrong_shape_is_refused(markup: object, description: str) -> None:
    standin = BotApiStandin(TOKEN)

    sends: list[tuple[str, dict[str, object]]] = [
        ("sendMessage", {"text": "Pick"}),
        ("sendPhoto", {"photo": _part("photo")}),
    ]
    for method, parameters in sends:
        refusal = _refusal(standin, method, {"chat_id": 1, "reply_markup": markup, **parameters})
        assert refusal == f"Bad Request: {description}", method
    assert standin.received() == []


def test_the_widest_keyboards_telegram_takes_are_taken() -> None:
    standin = BotApiStandin(TOKEN)
    row = [{"text": f"b{n}", "callback_data": str(n)} for n in range(8)]

    _ok(
        standin,
        "sendMessage",
        {"chat_id": 1, "text": "x", "reply_markup": {"inline_keyboard": [row]}},
    )
    _ok(
        standin,
        "sendMessage",
        {"chat_id": 1, "text": "x", "reply_markup": {"inline_keyboard": [row[:5]] * 20}},
    )
    _ok(
        standin,
        "sendMessage",
        {
            "chat_id": 1,
            "text": "x",
            "reply_markup": {"inline_keyboard": [[{"text": "t", "url": "tg://resolve?domain=x"}]]},
        },
    )


def test_a_text_message_records_its_options() -> None:
    standin = BotApiStandin(TOKEN)

    _ok(
        standin,
        "sendMessage",
        {
            "chat_id": "1",
            "text": "See https://example.com",
            "link_preview_options": '{"is_disabled": true}',
            "disable_notification": "true",
            "protect_content": "True",
        },
    )
    _ok(standin, "sendMessage", {"chat_id": 1, "text": "old way", "disable_web_page_preview": True})

    first, second = standin.received()
    assert (first.link_preview_disabled, first.disable_notification, first.protect_content) == (
        True,
        True,
        True,
    )
    assert (second.link_preview_disabled, second.disable_notification) == (True, False)


def test_an_album_is_one_message_per_item_and_one_log_entry(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    poster = _post(
        http, bot_token, "sendPhoto", data={"chat_id": "9"}, files={"photo": ("p.png", PHOTO)}
    )[1]["result"]["photo"][-1]["file_id"]
    media = [
        {
            "type": "photo",
            "media": "attach://first",
            "caption": "*Two* new streams",
            "parse_mode": "MarkdownV2",
        },
        {"type": "video", "media": "attach://clip"},
        {"type": "photo", "media": poster},
    ]

    status, body = _post(
        http,
        bot_token,
        "sendMediaGroup",
        data={"chat_id": "9", "media": json.dumps(media), "protect_content": "true"},
        files={
            "first": ("a.jpg", b"a" * 10, "image/jpeg"),
            "clip": ("c.mp4", b"c" * 20, "video/mp4"),
        },
    )

    assert status == 200
    messages = body["result"]
    assert [m["message_id"] for m in messages] == [2, 3, 4]
    assert len({m["media_group_id"] for m in messages}) == 1
    assert [m.get("caption") for m in messages] == ["Two new streams", None, None]
    assert all(m["has_protected_content"] for m in messages)
    assert "video" in messages[1]
    album = standin.received(9)[-1]
    assert (album.kind, album.message_id, album.message_ids) == ("album", 2, (2, 3, 4))
    assert (album.text, album.shown_text, album.parse_mode) == (
        "*Two* new streams",
        "Two new streams",
        "MarkdownV2",
    )
    assert [(f.kind, f.file_name, f.size, f.uploaded) for f in album.files] == [
        ("photo", "a.jpg", 10, True),
        ("video", "c.mp4", 20, True),
        ("photo", "p.png", len(PHOTO), False),
    ]
    assert album.protect_content


@pytest.mark.parametrize(
    ("media", "description"),
    [
        (None, 'parameter "media" is required'),
        ("[{", "can't parse media JSON object"),
        ({"type": "photo"}, "expected an Array of InputMedia"),
        ([{"type": "photo", "media": "attach://a"}], "an album takes 2 to 10 media, not 1"),
        ([{"type": "photo", "media": "attach://a"}] * 11, "too much messages to send as an album"),
        (
            [{"type": "photo", "media": "attach://a"}, {"type": "document", "media": "attach://a"}],
            "can't use the media of the specified type in the album",
        ),
        (
            [
                {"type": "photo", "media": "attach://a"},
                {"type": "animation", "media": "attach://a"},
            ],
            "can't use the media of the specified type in the album",
        ),
        (
            [{"type": "photo", "media": "attach://a"}, {"type": "photo", "media": "attach://b"}],
            "can't parse InputMedia: media not found",
        ),
        (
            [{"type": "photo", "media": "attach://a"}, {"type": "photo", "media": "nope"}],
            "wrong file identifier/HTTP URL specified",
        ),
        (
            [
                {"type": "photo", "media": "attach://a", "caption": "c" * 1025},
                {"type": "photo", "media": "attach://a"},
            ],
            "message caption is too long",
        ),
        (["attach://a", "attach://a"], "can't parse InputMedia: InputMedia must be an Object"),
    ],
)
def test_an_album_telegram_would_refuse_is_refused(media: object, description: str) -> None:
    standin = BotApiStandin(TOKEN)
    parameters: dict[str, object] = {"chat_id": 1, "a": _part("a")}
    if media is not None:
        parameters["media"] = media if isinstance(media, str) else json.dumps(media)

    assert _refusal(standin, "sendMediaGroup", parameters) == f"Bad Request: {description}"
    assert standin.received() == []


def test_an_album_carries_no_buttons_even_when_sent_some() -> None:
    standin = BotApiStandin(TOKEN)
    media = [{"type": "photo", "media": "attach://a"}, {"type": "photo", "media": "attach://a"}]

    answer = _ok(
        standin,
        "sendMediaGroup",
        {
            "chat_id": 1,
            "media": media,
            "a": _part("a"),
            "reply_markup": {"inline_keyboard": _BUTTONS},
        },
    )

    assert all("reply_markup" not in message for message in answer)
    # One part attached twice is one upload.
    assert answer[0]["photo"][-1]["file_id"] == answer[1]["photo"][-1]["file_id"]
    assert standin.received()[0].buttons == ()


def test_pins_need_a_message_the_chat_has() -> None:
    standin = BotApiStandin(TOKEN)
    _ok(standin, "sendMessage", {"chat_id": 1, "text": "one"})
    _ok(standin, "sendMessage", {"chat_id": 1, "text": "two"})
    _ok(standin, "deleteMessage", {"chat_id": 1, "message_id": 2})

    assert _ok(
        standin, "pinChatMessage", {"chat_id": 1, "message_id": 1, "disable_notification": True}
    )
    assert _ok(standin, "pinChatMessage", {"chat_id": 1, "message_id": "1"})
    for message_id in (2, 3):
        assert _refusal(standin, "pinChatMessage", {"chat_id": 1, "message_id": message_id}) == (
            "Bad Request: message to pin not found"
        )
    assert _refusal(standin, "pinChatMessage", {"chat_id": 2, "message_id": 1}) == (
        "Bad Request: message to pin not found"
    )
    assert _refusal(standin, "pinChatMessage", {"chat_id": 1}) == (
        "Bad Request: message identifier is not specified"
    )
    [pin] = standin.pinned()
    assert (pin.chat_id, pin.message_id, pin.disable_notification) == (1, 1, True)


def test_a_button_press_is_answered_once(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    _post(
        http,
        bot_token,
        "sendMessage",
        json={"chat_id": 4, "text": "Join?", "reply_markup": {"inline_keyboard": _BUTTONS}},
    )

    pressed = http.post(
        "/_control/press", json={"chat_id": 4, "message_id": 1, "callback_data": "yes"}
    )

    assert pressed.status_code == 200
    update = pressed.json()
    query = update["callback_query"]
    assert (query["data"], query["from"]["id"], query["message"]["message_id"]) == ("yes", 4, 1)
    assert query["message"]["reply_markup"] == {"inline_keyboard": _BUTTONS}
    answer = {"callback_query_id": query["id"], "text": "Booked!", "show_alert": True}
    assert _post(http, bot_token, "answerCallbackQuery", json=answer) == (
        200,
        {"ok": True, "result": True},
    )
    status, again = _post(http, bot_token, "answerCallbackQuery", json=answer)
    assert (status, again["description"]) == (
        400,
        "Bad Request: query is too old and response timeout expired or query ID is invalid",
    )
    [answered] = standin.callback_answers(4)
    assert (
        answered.chat_id,
        answered.message_id,
        answered.data,
        answered.text,
        answered.show_alert,
    ) == (
        4,
        1,
        "yes",
        "Booked!",
        True,
    )
    assert [c.chat_id for c in standin.calls() if c.method == "answerCallbackQuery"] == [4, None]
    for wrong, status in [
        ({"chat_id": 4, "message_id": 1, "callback_data": "no"}, 404),
        ({"chat_id": 4, "message_id": 9, "callback_data": "yes"}, 404),
        ({"chat_id": "4", "message_id": 1, "callback_data": "yes"}, 400),
    ]:
        assert http.post("/_control/press", json=wrong).status_code == status, wrong


def test_a_callback_answer_longer_than_200_characters_is_refused_and_can_be_tried_again() -> None:
    standin = BotApiStandin(TOKEN)
    _ok(
        standin,
        "sendMessage",
        {"chat_id": 1, "text": "Q", "reply_markup": {"inline_keyboard": _BUTTONS}},
    )
    query_id = standin.press_button(1, 1, "yes")["callback_query"]["id"]  # type: ignore[index]

    assert _refusal(
        standin, "answerCallbackQuery", {"callback_query_id": query_id, "text": "t" * 201}
    ) == ("Bad Request: MESSAGE_TOO_LONG")
    assert _ok(standin, "answerCallbackQuery", {"callback_query_id": query_id, "text": "t" * 200})


@pytest.mark.parametrize(
    ("method", "parameters"),
    [
        ("sendPhoto", {"chat_id": 1, "photo": _part("photo")}),
        ("sendVideo", {"chat_id": 1, "video": _part("video")}),
        ("sendAnimation", {"chat_id": 1, "animation": _part("animation")}),
        ("sendDocument", {"chat_id": 1, "document": _part("document")}),
        (
            "sendMediaGroup",
            {
                "chat_id": 1,
                "a": _part("a"),
                "media": [{"type": "photo", "media": "attach://a"}] * 2,
            },
        ),
        ("pinChatMessage", {"chat_id": 1, "message_id": 1}),
        ("answerCallbackQuery", {"callback_query_id": "x"}),
    ],
)
@pytest.mark.parametrize(
    ("faults", "status"),
    [
        ({"flood_rate": 1.0, "flood_retry_after": 9}, 429),
        ({"server_error_rate": 1.0}, {500, 502}),
    ],
)
def test_random_faults_reach_every_new_method(
    method: str, parameters: dict[str, object], faults: dict[str, object], status: int | set[int]
) -> None:
    standin = BotApiStandin(TOKEN)
    _ok(standin, "sendMessage", {"chat_id": 1, "text": "to pin"})
    standin.update_faults(faults)

    with pytest.raises(BotApiError) as raised:
        standin.call(TOKEN, method, parameters)

    assert raised.value.status in (status if isinstance(status, set) else {status})
    if raised.value.status == 429:
        assert raised.value.retry_after == 9
    assert len(standin.received()) == 1


def test_the_rate_limit_counts_every_send_method_and_an_album_once() -> None:
    standin = BotApiStandin(TOKEN)
    standin.update_faults({"rate_limit_per_second": 3})
    album = {"a": _part("a"), "media": [{"type": "photo", "media": "attach://a"}] * 3}

    _ok(standin, "sendPhoto", {"chat_id": 1, "photo": _part("photo")})
    _ok(standin, "sendMediaGroup", {"chat_id": 2, **album})
    _ok(standin, "sendMessage", {"chat_id": 3, "text": "x"})

    assert _refusal(standin, "sendDocument", {"chat_id": 4, "document": _part("document")}) == (
        "Too Many Requests: retry after 1"
    )


def test_blocked_and_missing_chats_refuse_media_and_pins() -> None:
    standin = BotApiStandin(TOKEN)
    _ok(standin, "sendMessage", {"chat_id": 66, "text": "before"})
    standin.update_faults({"blocked_chats": [66], "missing_chats": [404]})

    calls: list[tuple[str, dict[str, object]]] = [
        ("sendPhoto", {"photo": _part("photo")}),
        (
            "sendMediaGroup",
            {"a": _part("a"), "media": [{"type": "video", "media": "attach://a"}] * 2},
        ),
        ("pinChatMessage", {"message_id": 1}),
    ]
    for method, parameters in calls:
        with pytest.raises(BotApiError) as blocked:
            standin.call(TOKEN, method, {"chat_id": 66, **parameters})
        assert (blocked.value.status, blocked.value.description) == (
            403,
            "Forbidden: bot was blocked by the user",
        )
        assert _refusal(standin, method, {"chat_id": 404, **parameters}) == (
            "Bad Request: chat not found"
        )


def test_reset_forgets_the_files(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    file_id = _post(
        http, bot_token, "sendDocument", data={"chat_id": "1"}, files={"document": ("a.txt", b"a")}
    )[1]["result"]["document"]["file_id"]

    http.post("/_control/reset")

    status, body = _post(http, bot_token, "sendDocument", json={"chat_id": 1, "document": file_id})
    assert (status, body["description"]) == (
        400,
        "Bad Request: wrong file identifier/HTTP URL specified",
    )


def test_the_log_shows_per_chat_what_arrived(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    _post(
        http,
        bot_token,
        "sendDocument",
        data={
            "chat_id": "3",
            "caption": "Schedule",
            "reply_markup": json.dumps({"inline_keyboard": _BUTTONS}),
            "disable_notification": "true",
        },
        files={"document": ("Расписание.pdf", b"%PDF-1.4 ...", "application/pdf")},
    )
    _post(http, bot_token, "sendMessage", json={"chat_id": 8, "text": "other chat"})
    _post(http, bot_token, "pinChatMessage", json={"chat_id": 3, "message_id": 1})
    query = http.post(
        "/_control/press", json={"chat_id": 3, "message_id": 1, "callback_data": "yes"}
    )
    _post(
        http,
        bot_token,
        "answerCallbackQuery",
        json={"callback_query_id": query.json()["callback_query"]["id"], "text": "Noted"},
    )

    log = http.get("/_control/log", params={"chat_id": 3}).json()

    [message] = log["messages"]
    assert {
        k: message[k] for k in ("kind", "text", "shown_text", "pinned", "disable_notification")
    } == {
        "kind": "document",
        "text": "Schedule",
        "shown_text": "Schedule",
        "pinned": True,
        "disable_notification": True,
    }
    [document] = message["files"]
    assert (document["file_name"], document["size"], document["uploaded"]) == (
        "Расписание.pdf",
        len(b"%PDF-1.4 ..."),
        True,
    )
    assert document["file_id"].startswith("document-")
    assert message["buttons"] == [
        [{"text": "Book", "url": "https://example.com/book", "callback_data": None}],
        [{"text": "Yes", "url": None, "callback_data": "yes"}],
    ]
    assert [(p["chat_id"], p["message_id"]) for p in log["pinned"]] == [(3, 1)]
    assert [(a["data"], a["text"]) for a in log["callback_answers"]] == [("yes", "Noted")]
    assert [c["method"] for c in log["calls"]] == [
        "sendDocument",
        "pinChatMessage",
        "answerCallbackQuery",
    ]


def test_a_broken_multipart_body_is_400(
    http: httpx.Client, bot_token: str, standin: BotApiStandin
) -> None:
    for content_type, body in [
        ("multipart/form-data", b"--x\r\n"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nunfinished',
        ),
    ]:
        answer = http.post(
            f"/bot{bot_token}/sendPhoto", content=body, headers={"content-type": content_type}
        )
        assert answer.status_code == 400, content_type
        assert answer.json()["description"] == "Bad Request: can't parse multipart/form-data"
