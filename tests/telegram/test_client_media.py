"""The client's media, albums, buttons, pins and callback answers, against the served stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coursedesk.telegram.client import (
    AlbumDelivered,
    AlbumItem,
    Answered,
    Blocked,
    CallbackButton,
    Delivered,
    InlineKeyboard,
    MediaKind,
    PermanentFailure,
    Pinned,
    RetryAfter,
    TelegramClient,
    TransientFailure,
    Upload,
    UrlButton,
)
from coursedesk.telegram.standin import BotApiStandin, InlineButton, StandinThread

KINDS: list[MediaKind] = ["photo", "video", "animation", "document"]
FILES = {
    "photo": Upload(b"\xff\xd8\xff\xe0" + os.urandom(4000), "poster.jpg"),
    "video": Upload(os.urandom(9000), "lesson.mp4"),
    "animation": Upload(b"GIF89a" + os.urandom(3000), "wave.gif"),
    "document": Upload(b"%PDF-1.7\n" + os.urandom(5000), 'Расписание "осень".pdf'),
}
MIME_TYPES = {
    "photo": "image/jpeg",
    "video": "video/mp4",
    "animation": "image/gif",
    "document": "application/pdf",
}
KEYBOARD: InlineKeyboard = [
    [UrlButton("Book a seat", "https://school.example/book?stream=autumn")],
    [CallbackButton("Remind me", "remind:42"), CallbackButton("No, thanks", "no")],
]


def _delivered(result: object) -> Delivered:
    assert isinstance(result, Delivered), result
    return result


@pytest.mark.parametrize("kind", KINDS)
async def test_an_upload_answers_the_file_id_that_sends_it_again(
    telegram_client: TelegramClient, standin: BotApiStandin, kind: MediaKind
) -> None:
    upload = FILES[kind]

    first = _delivered(await telegram_client.send_media(101, kind, upload))
    assert first.file_id is not None
    again = _delivered(await telegram_client.send_media(202, kind, first.file_id))

    assert again.file_id == first.file_id
    [uploaded] = standin.received(101)
    [reused] = standin.received(202)
    assert uploaded.kind == reused.kind == kind
    assert [(f.file_name, f.size, f.mime_type, f.uploaded) for f in uploaded.files] == [
        (upload.filename, len(upload.content), MIME_TYPES[kind], True)
    ]
    assert (reused.files[0].file_id, reused.files[0].uploaded) == (first.file_id, False)


async def test_each_named_method_sends_its_kind(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    await telegram_client.send_photo(1, FILES["photo"])
    await telegram_client.send_video(1, FILES["video"])
    await telegram_client.send_animation(1, FILES["animation"])
    await telegram_client.send_document(1, FILES["document"])

    assert [m.kind for m in standin.received(1)] == KINDS


async def test_a_photo_answers_its_largest_size(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    sent = _delivered(await telegram_client.send_photo(1, FILES["photo"]))

    # The stand-in makes three sizes of a photo; the upload itself is the largest.
    [received] = standin.received(1)
    assert sent.file_id == received.files[0].file_id
    assert received.files[0].size == len(FILES["photo"].content)


async def test_one_upload_serves_every_other_recipient(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    first = _delivered(await telegram_client.send_document(1, FILES["document"], "Plan"))
    assert first.file_id is not None

    results = await asyncio.gather(
        *(telegram_client.send_document(chat, first.file_id, "Plan") for chat in range(2, 42))
    )

    assert all(isinstance(r, Delivered) and r.file_id == first.file_id for r in results)
    files = [f for m in standin.received() for f in m.files]
    assert len(files) == 41
    assert [f.uploaded for f in files].count(True) == 1
    assert {f.file_id for f in files} == {first.file_id}


async def test_caption_markup_buttons_and_options_arrive_as_sent(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    result = await telegram_client.send_photo(
        7,
        FILES["photo"],
        "<b>Autumn stream</b> starts &lt;soon&gt;",
        "HTML",
        reply_markup=KEYBOARD,
        disable_notification=True,
        protect_content=True,
    )

    assert isinstance(result, Delivered)
    [received] = standin.received(7)
    assert (received.text, received.parse_mode, received.shown_text) == (
        "<b>Autumn stream</b> starts &lt;soon&gt;",
        "HTML",
        "Autumn stream starts <soon>",
    )
    assert received.buttons == (
        (InlineButton("Book a seat", url="https://school.example/book?stream=autumn"),),
        (
            InlineButton("Remind me", callback_data="remind:42"),
            InlineButton("No, thanks", callback_data="no"),
        ),
    )
    assert (received.disable_notification, received.protect_content) == (True, True)


async def test_send_message_takes_buttons_and_options(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    plain = await telegram_client.send_message(8, "See https://school.example")
    options = await telegram_client.send_message(
        8,
        "See https://school.example",
        reply_markup=KEYBOARD,
        disable_link_preview=True,
        disable_notification=True,
        protect_content=True,
    )

    assert (plain, options) == (Delivered(1), Delivered(2))
    first, second = standin.received(8)
    assert (first.buttons, first.link_preview_disabled, first.disable_notification) == (
        (),
        False,
        False,
    )
    assert len(second.buttons) == 2
    assert (
        second.link_preview_disabled,
        second.disable_notification,
        second.protect_content,
    ) == (True, True, True)


async def test_an_album_mixes_uploads_and_file_ids_with_the_caption_on_the_first(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    known = _delivered(await telegram_client.send_photo(1, FILES["photo"]))
    assert known.file_id is not None
    second_photo = Upload(os.urandom(2000), "hall.png")

    result = await telegram_client.send_media_group(
        9,
        [
            AlbumItem("video", FILES["video"]),
            AlbumItem("photo", known.file_id),
            AlbumItem("photo", second_photo),
        ],
        "*Open day* photos",
        "MarkdownV2",
        protect_content=True,
    )

    assert isinstance(result, AlbumDelivered)
    assert (result.message_ids, result.message_id) == ((1, 2, 3), 1)
    assert result.file_ids[1] == known.file_id
    assert None not in result.file_ids
    [album] = standin.received(9)
    assert (album.kind, album.message_ids, album.shown_text) == (
        "album",
        (1, 2, 3),
        "Open day photos",
    )
    assert [(f.kind, f.file_id, f.uploaded) for f in album.files] == [
        ("video", result.file_ids[0], True),
        ("photo", known.file_id, False),
        ("photo", result.file_ids[2], True),
    ]
    assert [f.file_name for f in album.files] == ["lesson.mp4", "poster.jpg", "hall.png"]
    assert album.protect_content

    video_id, photo_id, hall_id = result.file_ids
    assert video_id is not None and photo_id is not None and hall_id is not None
    again = await telegram_client.send_media_group(
        10,
        [AlbumItem("video", video_id), AlbumItem("photo", photo_id), AlbumItem("photo", hall_id)],
    )
    assert isinstance(again, AlbumDelivered)
    assert again.file_ids == result.file_ids
    assert not any(f.uploaded for f in standin.received(10)[0].files)


@pytest.mark.parametrize(
    ("count", "description"),
    [
        (1, "Bad Request: an album takes 2 to 10 media, not 1"),
        (11, "Bad Request: too much messages to send as an album"),
    ],
)
async def test_an_album_of_1_or_11_items_is_refused(
    telegram_client: TelegramClient, standin: BotApiStandin, count: int, description: str
) -> None:
    items = [AlbumItem("photo", FILES["photo"])] * count

    assert await telegram_client.send_media_group(1, items) == PermanentFailure(description)
    assert standin.received() == []


async def test_pin_chat_message(telegram_client: TelegramClient, standin: BotApiStandin) -> None:
    sent = _delivered(await telegram_client.send_message(3, "Pinned news"))

    assert await telegram_client.pin_chat_message(
        3, sent.message_id, disable_notification=True
    ) == (Pinned())
    assert await telegram_client.pin_chat_message(3, 99) == PermanentFailure(
        "Bad Request: message to pin not found"
    )
    standin.update_faults({"blocked_chats": [3]})
    assert isinstance(await telegram_client.pin_chat_message(3, sent.message_id), Blocked)
    [pin] = standin.pinned(3)
    assert (pin.message_id, pin.disable_notification) == (sent.message_id, True)
    assert standin.log_as_json(3)["messages"][0]["pinned"] is True


async def test_answer_callback_query_answers_a_press_once(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    sent = _delivered(await telegram_client.send_message(4, "Remind you?", reply_markup=KEYBOARD))
    update = standin.press_button(4, sent.message_id, "remind:42")
    query = update["callback_query"]
    assert isinstance(query, dict)

    assert await telegram_client.answer_callback_query(query["id"], "Done", show_alert=True) == (
        Answered()
    )
    assert await telegram_client.answer_callback_query(query["id"]) == PermanentFailure(
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )
    [answer] = standin.callback_answers(4)
    assert (answer.data, answer.text, answer.show_alert) == ("remind:42", "Done", True)


async def test_an_unknown_or_mismatched_file_id_is_a_permanent_failure(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    photo = _delivered(await telegram_client.send_photo(1, FILES["photo"]))
    assert photo.file_id is not None

    assert await telegram_client.send_video(1, "AgACAgIAAxkBAAI") == PermanentFailure(
        "Bad Request: wrong file identifier/HTTP URL specified"
    )
    assert await telegram_client.send_document(1, photo.file_id) == PermanentFailure(
        "Bad Request: type of file mismatch"
    )


async def test_over_long_caption_and_text_are_permanent_failures(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    assert isinstance(await telegram_client.send_photo(1, FILES["photo"], "я" * 1024), Delivered)
    assert await telegram_client.send_photo(1, FILES["photo"], "я" * 1025) == PermanentFailure(
        "Bad Request: message caption is too long"
    )
    assert await telegram_client.send_message(1, "я" * 4097) == PermanentFailure(
        "Bad Request: message is too long"
    )


async def test_uploads_over_telegrams_limits_are_permanent_failures(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    big_photo = Upload(bytes(10 * 2**20 + 1), "huge.jpg")
    too_big = Upload(bytes(50 * 2**20 + 1), "huge.zip")

    assert await telegram_client.send_photo(1, big_photo) == PermanentFailure(
        "Bad Request: file is too big"
    )
    assert await telegram_client.send_document(1, too_big) == PermanentFailure(
        "Request Entity Too Large"
    )
    assert isinstance(await telegram_client.send_document(1, big_photo), Delivered)


@pytest.fixture
async def known_document(telegram_client: TelegramClient, standin: BotApiStandin) -> str:
    """The file_id of a document uploaded before."""
    sent = _delivered(await telegram_client.send_document(1, FILES["document"]))
    assert sent.file_id is not None
    return sent.file_id


async def _send(client: TelegramClient, how: str, chat_id: int) -> object:
    """One media send: an upload, or an album of two uploads."""
    if how == "album":
        return await client.send_media_group(
            chat_id, [AlbumItem("photo", FILES["photo"]), AlbumItem("video", FILES["video"])]
        )
    return await client.send_media(chat_id, "photo", FILES["photo"], "Caption")


@pytest.mark.parametrize("how", ["photo", "album"])
async def test_flood_control_on_a_media_send_is_retry_after(
    telegram_client: TelegramClient, standin: BotApiStandin, how: str
) -> None:
    standin.update_faults({"flood_rate": 1.0, "flood_retry_after": 7})

    assert await _send(telegram_client, how, 5) == RetryAfter(7.0)
    standin.update_faults({"flood_rate": 0.0})
    # The same upload goes again after the wait.
    assert isinstance(await _send(telegram_client, how, 5), Delivered | AlbumDelivered)
    assert len(standin.received(5)) == 1


@pytest.mark.parametrize("how", ["photo", "album"])
async def test_the_rate_limit_on_media_sends_is_retry_after(
    telegram_client: TelegramClient, standin: BotApiStandin, how: str
) -> None:
    standin.update_faults({"rate_limit_per_second": 2})

    results = [await _send(telegram_client, how, chat) for chat in (1, 2, 3)]

    assert results[2] == RetryAfter(1.0)
    assert [type(r) for r in results[:2]] == [Delivered if how == "photo" else AlbumDelivered] * 2


@pytest.mark.parametrize("how", ["photo", "album"])
async def test_a_server_error_on_a_media_send_is_transient(
    telegram_client: TelegramClient, standin: BotApiStandin, how: str
) -> None:
    standin.update_faults({"server_error_rate": 1.0})

    result = await _send(telegram_client, how, 5)

    assert isinstance(result, TransientFailure)
    assert result.description in ("Bad Gateway", "Internal Server Error")


@pytest.mark.parametrize("how", ["photo", "album"])
async def test_a_blocked_chat_refuses_media_as_blocked(
    telegram_client: TelegramClient, standin: BotApiStandin, how: str
) -> None:
    standin.update_faults({"blocked_chats": [66], "missing_chats": [404]})

    assert await _send(telegram_client, how, 66) == Blocked(
        "Forbidden: bot was blocked by the user"
    )
    assert await _send(telegram_client, how, 404) == PermanentFailure("Bad Request: chat not found")
    assert standin.received() == []


async def test_a_media_send_slower_than_the_timeout_is_transient_but_arrives(
    bot_token: str, api_base_url: str, standin: BotApiStandin
) -> None:
    standin.update_faults({"latency_ms": 3000})

    async with TelegramClient(bot_token, api_base_url, timeout=0.3) as client:
        result = await client.send_photo(5, FILES["photo"], "slow")

    assert isinstance(result, TransientFailure)
    assert [m.kind for m in standin.received(5)] == ["photo"]


async def test_faults_reach_a_send_by_file_id_pins_and_callback_answers(
    telegram_client: TelegramClient, standin: BotApiStandin, known_document: str
) -> None:
    sent = _delivered(await telegram_client.send_message(5, "x", reply_markup=KEYBOARD))
    update = standin.press_button(5, sent.message_id, "no")
    query = update["callback_query"]
    assert isinstance(query, dict)
    standin.update_faults({"flood_rate": 1.0, "flood_retry_after": 4})

    assert await telegram_client.send_document(5, known_document) == RetryAfter(4.0)
    assert await telegram_client.pin_chat_message(5, sent.message_id) == RetryAfter(4.0)
    assert await telegram_client.answer_callback_query(query["id"]) == RetryAfter(4.0)
    standin.update_faults({"flood_rate": 0.0, "server_error_rate": 1.0})
    assert isinstance(await telegram_client.pin_chat_message(5, sent.message_id), TransientFailure)
    assert isinstance(await telegram_client.answer_callback_query(query["id"]), TransientFailure)
    standin.update_faults({"server_error_rate": 0.0})
    assert await telegram_client.answer_callback_query(query["id"]) == Answered()
    assert isinstance(await telegram_client.send_document(5, known_document), Delivered)


async def test_a_file_name_in_any_script_arrives_as_written(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    name = 'Программа "Осень"\\2025\r\n.pdf'

    await telegram_client.send_document(1, Upload(b"%PDF", name, "application/pdf"))

    [received] = standin.received(1)
    # A line break cannot go in a part header; it arrives as a space.
    assert received.files[0].file_name == 'Программа "Осень"\\2025  .pdf'
    assert received.files[0].mime_type == "application/pdf"


async def test_the_bytes_arrive_exactly(
    telegram_client: TelegramClient, standin: BotApiStandin
) -> None:
    content = os.urandom(3 * 2**20 + 17)

    sent = _delivered(await telegram_client.send_video(1, Upload(content, "clip.mp4")))

    [received] = standin.received(1)
    assert received.files[0].size == len(content)
    assert received.files[0].file_unique_id == "u" + hashlib.sha256(content).hexdigest()[:15]
    assert sent.file_id == received.files[0].file_id


def test_an_upload_shows_its_name_and_size_but_not_its_bytes() -> None:
    assert repr(Upload(b"x" * 5000, "a.pdf")) == "Upload('a.pdf', 5000 bytes)"


@pytest.mark.slow
def test_a_50_mb_upload_costs_the_client_far_less_memory_than_the_file(
    standin_server: StandinThread, standin: BotApiStandin, bot_token: str
) -> None:
    """The client's peak memory while uploading 50 MB, beyond the bytes it already holds.

    Measured in a process of its own (tests/telegram/upload_probe.py), as the growth of
    its peak resident memory over its resident memory just before the upload. Handing
    aiohttp the bytes in one piece costs about 1.8 times the file on Python 3.11 (asyncio
    copies what the socket did not take at once, then again into its buffer), and any
    one whole copy is the size of the file: the bound, a quarter of the file, fails both
    and leaves room for the allocator. Sending slices measures well under 1 MB.
    """
    if not Path("/proc/self/status").exists():
        pytest.skip("reading a process's peak memory needs Linux's /proc")
    size = 50 * 2**20
    probe = Path(__file__).with_name("upload_probe.py")

    finished = subprocess.run(
        [sys.executable, str(probe), standin_server.base_url, bot_token, str(size)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )

    report = json.loads(finished.stdout)
    if not report["peak_restarted"]:
        pytest.skip("this kernel does not let a process restart its peak memory figure")
    assert report["result"].startswith("Delivered(")
    [_warm_up, received] = standin.received(1)
    assert (received.files[0].file_name, received.files[0].size) == ("big.bin", size)
    assert received.files[0].file_unique_id == "u" + report["sha256"][:15]
    growth = (report["peak_kib"] - report["rss_before_kib"]) * 1024
    assert growth < size // 4, f"the upload raised the peak by {growth / 2**20:.1f} MB"


async def test_an_upload_the_server_stops_reading_fails_as_transient(bot_token: str) -> None:
    """Without a bound on writing, a server that takes the connection but no longer reads
    would hold the send for ever: the answer's timeout only starts once the body is out."""
    connections: list[asyncio.StreamWriter] = []

    async def accept_and_never_read(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept_and_never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with TelegramClient(bot_token, f"http://127.0.0.1:{port}", timeout=0.5) as client:
            started = asyncio.get_running_loop().time()
            result = await client.send_document(1, Upload(bytes(64 * 2**20), "stuck.bin"))
            took = asyncio.get_running_loop().time() - started
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()

    assert isinstance(result, TransientFailure)
    assert took < 30
    assert len(connections) == 1
