"""Broadcasts with media: refused up front when Telegram could not take them, else each file
uploaded once and sent by file_id to everyone else, by one worker or several."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections import Counter
from typing import Any

import httpx
import pytest
from broadcast_helpers import (
    RunWorker,
    add_many_users,
    figures_agree,
    rows,
    running_worker,
    scalar,
    send_broadcast,
    wait_for,
)
from media_samples import (
    GIF,
    JPEG,
    MOV,
    MP4,
    PDF,
    PNG,
    stream_headers,
    streamed_multipart,
    uploaded,
)
from sqlalchemy import Engine, text

from coursedesk.broadcasts.contents import UploadedFiles, remember_file_ids
from coursedesk.broadcasts.media import CHUNK_BYTES
from coursedesk.db.engine import Database
from coursedesk.telegram.standin import BotApiStandin


def status_of(engine: Engine, message_id: int) -> str:
    return str(scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id))


def uploads(standin: BotApiStandin) -> list[tuple[int, str]]:
    """(chat, file name) of every file the chats got as bytes rather than by file_id."""
    return [
        (message.chat_id, file.file_name or "")
        for message in standin.received()
        for file in message.files
        if file.uploaded
    ]


async def _media_ids(
    client: httpx.AsyncClient, headers: dict[str, str], *files: tuple[bytes, str]
) -> list[int]:
    return [int((await uploaded(client, headers, *file))["media_id"]) for file in files]


async def test_bad_media_requests_are_refused_naming_the_fault_and_nothing_is_queued(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    add_many_users(sync_engine, 1, 3)
    photo, video, clip, gif, pdf = await _media_ids(
        client,
        operator_headers,
        (JPEG, "a.jpg"),
        (MP4, "b.mp4"),
        (MOV, "c.mov"),
        (GIF, "d.gif"),
        (PDF, "e.pdf"),
    )
    everyone = {"type": "all"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"media": [{"media_id": 999_999}]}, "media[0]: no media with id 999999"),
        ({"media": [{"media_id": photo}, {"media_id": 999_998}]}, "media[1]: no media with id"),
        (
            {"media": [{"media_id": pdf}, {"media_id": photo}]},
            f"media[0]: an album holds photos and videos only, and media {pdf} goes as a document",
        ),
        ({"media": [{"media_id": photo}, {"media_id": gif}]}, "goes as an animation"),
        (
            {"media": [{"media_id": photo}, {"media_id": video, "kind": "document"}]},
            "media[1]: an album holds photos and videos only",
        ),
        (
            {"media": [{"media_id": photo}] * 11},
            "at most 10 files go in one message (an album), not 11",
        ),
        (
            {"media": [{"media_id": photo, "kind": "video"}]},
            f"media[0]: media {photo} is a photo (image/jpeg); it may be sent as photo or "
            "document, not as a video",
        ),
        ({"media": [{"media_id": clip, "kind": "animation"}]}, "not as an animation"),
        ({"media": [{"media_id": pdf, "kind": "photo"}]}, "it may be sent as document"),
        (
            {"media": [{"media_id": photo}], "text": "x" * 1025},
            "text: caption is too long: 1025 characters after formatting, the limit is 1024",
        ),
        ({"media": [{"media_id": photo}], "text": "<b>open", "parse_mode": "HTML"}, "text: "),
    ]
    for extra, fragment in cases:
        body = {"text": "hello", "audience": everyone} | extra
        for dry_run in (False, True):
            response = await client.post(
                "/api/messages/send", json=body | {"dry_run": dry_run}, headers=operator_headers
            )
            assert response.status_code == 400, (extra, response.text)
            assert fragment in response.json()["error"], (extra, response.json())
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0
    assert scalar(sync_engine, "SELECT count(*) FROM broadcast_media") == 0
    malformed = await client.post(
        "/api/messages/send",
        json={"text": "x", "audience": everyone, "media": [{"media_id": photo, "size": 1}]},
        headers=operator_headers,
    )
    assert malformed.status_code == 422


async def test_media_that_fits_is_accepted_with_an_empty_caption_and_shown_on_the_broadcast(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    add_many_users(sync_engine, 1, 3)
    photo, video = await _media_ids(client, operator_headers, (JPEG, "a.jpg"), (MP4, "b.mp4"))
    dry = await client.post(
        "/api/messages/send",
        json={"text": "", "audience": {"type": "all"}, "media": [{"media_id": photo}],
              "dry_run": True},
        headers=operator_headers,
    )  # fmt: skip
    assert dry.json() == {"total_recipients": 3, "invalid_user_ids": []}
    created = await send_broadcast(
        client, operator_headers, text="x" * 1024, audience={"type": "all"},
        media=[{"media_id": video, "kind": "animation"}, ],
    )  # fmt: skip
    album = await send_broadcast(
        client, operator_headers, text="", audience={"type": "all"},
        media=[{"media_id": photo}, {"media_id": video}, {"media_id": photo}],
    )  # fmt: skip

    detail = (
        await client.get(f"/api/messages/{created['message_id']}", headers=operator_headers)
    ).json()
    assert detail["media"] == [
        {"media_id": video, "kind": "animation", "filename": "b.mp4", "size": len(MP4),
         "uploaded": False},
    ]  # fmt: skip
    kept = rows(
        sync_engine,
        "SELECT position, media_id, kind FROM broadcast_media WHERE message_id = :m ORDER BY 1",
        m=album["message_id"],
    )
    assert [tuple(row) for row in kept] == [
        (0, photo, "photo"),
        (1, video, "video"),
        (2, photo, "photo"),
    ]
    audited = scalar(
        sync_engine,
        "SELECT after -> 'media' FROM audit_log WHERE action = 'broadcast.create' "
        "AND target_id = :m",
        m=str(created["message_id"]),
    )
    assert audited == [{"media_id": video, "kind": "animation"}]


async def _send_and_wait(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: Engine,
    start_worker: RunWorker,
    workers: int = 1,
    **body: Any,
) -> int:
    created = await send_broadcast(client, headers, audience={"type": "all"}, **body)
    message_id = int(created["message_id"])
    handles = [await start_worker() for _ in range(workers)]
    try:
        await wait_for(lambda: status_of(engine, message_id) == "sent", within=60, what="sent")
    finally:
        await asyncio.gather(*(handle.stopped() for handle in handles))
    return message_id


@pytest.mark.parametrize(
    ("content", "filename", "kind", "sent_as"),
    [
        (JPEG, "poster.jpg", None, "photo"),
        (MP4, "lesson.mp4", None, "video"),
        (MP4, "loop.mp4", "animation", "animation"),
        (GIF, "wave.gif", None, "animation"),
        (PDF, "plan.pdf", None, "document"),
        (PNG, "chart.png", "document", "document"),
    ],
)
async def test_one_file_is_uploaded_once_and_sent_by_file_id_to_everyone_else(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
    content: bytes,
    filename: str,
    kind: str | None,
    sent_as: str,
) -> None:
    add_many_users(sync_engine, 1001, 40)
    [media_id] = await _media_ids(client, operator_headers, (content, filename))
    choice = {"media_id": media_id} | ({"kind": kind} if kind else {})
    message_id = await _send_and_wait(
        client, operator_headers, sync_engine, start_worker,
        text="<b>Autumn</b> stream", parse_mode="HTML", media=[choice],
    )  # fmt: skip

    received = standin.received()
    assert sorted(m.chat_id for m in received) == list(range(1001, 1041))
    assert {m.kind for m in received} == {sent_as}
    assert {(m.text, m.shown_text) for m in received} == {("<b>Autumn</b> stream", "Autumn stream")}
    assert len(uploads(standin)) == 1
    [(first_chat, name)] = uploads(standin)
    assert name == filename
    [first] = standin.received(first_chat)
    file_id = first.files[0].file_id
    assert {m.files[0].file_id for m in received} == {file_id}
    assert (
        scalar(
            sync_engine, "SELECT file_id FROM broadcast_media WHERE message_id = :m", m=message_id
        )
        == file_id
    )
    assert (
        scalar(
            sync_engine,
            "SELECT media_upload_owner FROM message_history WHERE id = :m",
            m=message_id,
        )
        is None
    )
    figures_agree(sync_engine, message_id)


async def test_an_album_uploads_each_file_once_with_the_caption_on_the_first(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 2001, 25)
    photo, video, chart = await _media_ids(
        client, operator_headers, (JPEG, "one.jpg"), (MP4, "two.mp4"), (PNG, "three.png")
    )
    message_id = await _send_and_wait(
        client, operator_headers, sync_engine, start_worker,
        text="Our *week*", parse_mode="MarkdownV2",
        media=[{"media_id": photo}, {"media_id": video}, {"media_id": chart}],
    )  # fmt: skip

    received = standin.received()
    assert len(received) == 25 and {m.kind for m in received} == {"album"}
    assert all([f.kind for f in m.files] == ["photo", "video", "photo"] for m in received)
    assert all((m.text, m.shown_text) == ("Our *week*", "Our week") for m in received)
    assert all(m.files[0].caption == "Our *week*" and m.files[1].caption is None for m in received)
    assert sorted(name for _, name in uploads(standin)) == ["one.jpg", "three.png", "two.mp4"]
    assert len({chat for chat, _ in uploads(standin)}) == 1
    assert len({tuple(f.file_id for f in m.files) for m in received}) == 1
    first_ids = rows(
        sync_engine,
        "SELECT recipient.telegram_message_id FROM message_recipients AS recipient "
        "WHERE message_id = :m",
        m=message_id,
    )
    assert {row.telegram_message_id for row in first_ids} == {m.message_id for m in received}
    figures_agree(sync_engine, message_id)


async def test_a_refused_first_send_hands_the_upload_to_the_next_recipient(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 3001, 20)
    standin.update_faults({"blocked_chats": [3001, 3002], "missing_chats": [3003]})
    [media_id] = await _media_ids(client, operator_headers, (JPEG, "a.jpg"))
    message_id = await _send_and_wait(
        client, operator_headers, sync_engine, start_worker,
        text="hi", media=[{"media_id": media_id}],
    )  # fmt: skip

    assert sorted(m.chat_id for m in standin.received()) == list(range(3004, 3021))
    assert len(uploads(standin)) == 1
    failed = dict(
        rows(
            sync_engine,
            "SELECT user_id, error FROM message_recipients "
            "WHERE message_id = :m AND delivery_status = 'failed'",
            m=message_id,
        )
    )
    assert set(failed) == {3001, 3002, 3003}


async def test_two_workers_starting_together_upload_the_file_once(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 4001, 300)
    standin.update_faults({"latency_ms": 30})
    [media_id] = await _media_ids(client, operator_headers, (MP4, "lesson.mp4"))
    created = await send_broadcast(
        client, operator_headers, text="", audience={"type": "all"},
        media=[{"media_id": media_id}],
    )  # fmt: skip
    message_id = created["message_id"]
    async with running_worker(start_worker), running_worker(start_worker):
        await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=60, what="sent")

    received = standin.received()
    assert Counter(m.chat_id for m in received) == Counter(range(4001, 4301))
    assert len(uploads(standin)) == 1
    assert len({m.files[0].file_id for m in received}) == 1
    figures_agree(sync_engine, message_id)


async def test_when_two_uploads_raced_the_file_id_written_first_stays(
    sync_engine: Engine, database: Database
) -> None:
    """Two uploads that raced (a worker stalled past its lease) both sent the same file:
    the file_id recorded first is kept, the other dropped."""
    with sync_engine.begin() as connection:
        message_id = connection.execute(
            text(
                "INSERT INTO message_history (message_text, recipient_type, audience) "
                "VALUES ('x', 'group', '{}') RETURNING id"
            )
        ).scalar_one()
        media_id = connection.execute(
            text(
                "INSERT INTO media_files (kind, filename, mime_type, size, sha256) "
                "VALUES ('photo', 'a.jpg', 'image/jpeg', 1, '') RETURNING id"
            )
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO broadcast_media (message_id, position, media_id, kind) "
                "VALUES (:m, 0, :f, 'photo')"
            ),
            {"m": message_id, "f": media_id},
        )
    found = []
    for file_id in ("first", "second"):
        async with database.primary.begin() as connection:
            found.append(
                await remember_file_ids(connection, [UploadedFiles(message_id, (file_id,))])
            )

    assert found == [[message_id], []]
    assert scalar(sync_engine, "SELECT file_id FROM broadcast_media") == "first"


async def test_a_worker_uploads_an_album_of_large_files_a_slice_at_a_time(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    """Two 21 MB videos in one album, read from the database as the upload is written:
    the worker's Python memory grows by a few slices, not by the 42 MB it sends."""
    add_many_users(sync_engine, 5001, 3)
    size = 21 * 1024 * 1024
    media_ids = []
    for name in ("one.mp4", "two.mp4"):
        response = await client.post(
            "/api/media",
            content=streamed_multipart(MP4, size, name),
            headers=operator_headers | stream_headers(),
        )
        assert response.status_code == 201, response.text
        media_ids.append(response.json()["media_id"])
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        message_id = await _send_and_wait(
            client, operator_headers, sync_engine, start_worker,
            text="Recordings", media=[{"media_id": m} for m in media_ids],
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    received = standin.received()
    assert sorted(m.chat_id for m in received) == [5001, 5002, 5003]
    assert sorted(name for _, name in uploads(standin)) == ["one.mp4", "two.mp4"]
    assert all([f.size for f in m.files] == [size, size] for m in received if m.files[0].uploaded)
    assert peak - before < 12 * CHUNK_BYTES, f"sending peaked at {(peak - before) / 2**20:.1f} MB"
    figures_agree(sync_engine, message_id)


async def test_a_file_missing_a_slice_fails_its_sends_for_good_before_any_is_written(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 6001, 3)
    [media_id] = await _media_ids(client, operator_headers, (MP4 + bytes(3 * CHUNK_BYTES), "a.mp4"))
    with sync_engine.begin() as connection:
        connection.execute(
            text("DELETE FROM media_chunks WHERE media_id = :m AND seq = 1"), {"m": media_id}
        )
    message_id = await _send_and_wait(
        client, operator_headers, sync_engine, start_worker,
        text="hi", media=[{"media_id": media_id}],
    )  # fmt: skip

    assert standin.received() == []
    assert [call.method for call in standin.calls() if call.method != "getMe"] == []
    errors = rows(
        sync_engine,
        "SELECT DISTINCT delivery_status, error FROM message_recipients WHERE message_id = :m",
        m=message_id,
    )
    assert [tuple(row) for row in errors] == [
        ("failed", f"not sent: media {media_id}: its content is not all in the database")
    ]
