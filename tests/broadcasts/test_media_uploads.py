"""POST /api/media: kinds read from the content, limits, refusals, and bounded memory."""

from __future__ import annotations

import hashlib
import tracemalloc

import httpx
import pytest
from broadcast_helpers import rows, scalar
from media_samples import (
    GIF,
    JPEG,
    M4A,
    MOV,
    MP4,
    PDF,
    PNG,
    WEBP,
    multipart,
    stream_headers,
    streamed_multipart,
    upload,
)
from sqlalchemy import Engine

from coursedesk.broadcasts.media import CHUNK_BYTES, StoredContent
from coursedesk.broadcasts.sniffing import MAX_PHOTO_BYTES
from coursedesk.db.engine import Database


@pytest.mark.parametrize(
    ("content", "filename", "declared", "kind", "mime_type"),
    [
        (JPEG, "poster.jpg", None, "photo", "image/jpeg"),
        (PNG, "chart.png", "application/octet-stream", "photo", "image/png"),
        (WEBP, "sticker.webp", None, "photo", "image/webp"),
        (GIF, "wave.gif", None, "animation", "image/gif"),
        (MP4, "lesson.mp4", None, "video", "video/mp4"),
        (MOV, "clip.mov", None, "video", "video/quicktime"),
        (M4A, "talk.m4a", "audio/mp4", "document", "audio/mp4"),
        (PDF, "Расписание.pdf", "application/pdf", "document", "application/pdf"),
        (JPEG[3:], "not-really.jpg", "image/jpeg", "document", "image/jpeg"),
        (b"plain words", "notes.txt", "text/plain; charset=utf-8", "document", "text/plain"),
        (b"x" * 20, "odd", "not a type", "document", "application/octet-stream"),
    ],
)
async def test_the_kind_comes_from_the_content(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    content: bytes,
    filename: str,
    declared: str | None,
    kind: str,
    mime_type: str,
) -> None:
    response = await upload(client, operator_headers, content, filename, declared)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer == {
        "media_id": answer["media_id"],
        "kind": kind,
        "filename": filename,
        "size": len(content),
        "mime_type": mime_type,
    }
    [stored] = rows(
        sync_engine,
        "SELECT kind, mime_type, size, sha256, created_by FROM media_files WHERE id = :m",
        m=answer["media_id"],
    )
    assert tuple(stored) == (
        kind,
        mime_type,
        len(content),
        hashlib.sha256(content).hexdigest(),
        "token:test-operator",
    )
    kept = scalar(
        sync_engine,
        "SELECT string_agg(data, ''::bytea ORDER BY seq) FROM media_chunks WHERE media_id = :m",
        m=answer["media_id"],
    )
    assert bytes(kept) == content


async def test_a_file_is_kept_in_slices_and_read_back_whole(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    database: Database,
) -> None:
    content = MP4 + bytes(range(256)) * (CHUNK_BYTES * 3 // 256 + 77)
    answer = (await upload(client, operator_headers, content, "long.mp4")).json()

    slices = rows(
        sync_engine,
        "SELECT seq, length(data) AS size FROM media_chunks WHERE media_id = :m ORDER BY seq",
        m=answer["media_id"],
    )
    assert [row.seq for row in slices] == [0, 1, 2, 3]
    assert all(row.size == CHUNK_BYTES for row in slices[:3]) and slices[3].size > 0
    stored = StoredContent(database.primary, answer["media_id"], len(content))
    assert b"".join([chunk async for chunk in stored.chunks()]) == content
    assert b"".join([chunk async for chunk in stored.chunks()]) == content, "read again"


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        (*multipart(b"", "empty.jpg"), 400, "file: is empty"),
        (b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n",
         {"Content-Type": "multipart/form-data; boundary=b"}, 400, "no file in the field"),
        (b"--b\r\nnot a header line at all", {"Content-Type": "multipart/form-data; boundary=b"},
         400, "multipart"),
        (JPEG, {"Content-Type": "image/jpeg"}, 415, "multipart/form-data"),
        (b'{"file": 1}', {"Content-Type": "application/json"}, 415, "multipart/form-data"),
    ],
)  # fmt: skip
async def test_what_is_no_upload_is_refused_and_nothing_kept(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    body: bytes,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    response = await client.post("/api/media", content=body, headers=operator_headers | headers)

    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert scalar(sync_engine, "SELECT count(*) FROM media_files") == 0


async def test_two_files_in_one_upload_are_refused(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    one, headers = multipart(JPEG, "a.jpg")
    closing = b"--coursedesk-test-boundary--\r\n"
    part = one.removesuffix(closing)
    two = part + part.removeprefix(b"\r\n") + closing
    response = await client.post("/api/media", content=two, headers=operator_headers | headers)

    assert response.status_code == 400
    assert "send one file" in response.json()["error"]
    assert scalar(sync_engine, "SELECT count(*) FROM media_files") == 0


async def test_a_photo_over_10_mb_is_refused_while_it_streams(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    body = streamed_multipart(JPEG, MAX_PHOTO_BYTES + 1, "huge.jpg")
    response = await client.post(
        "/api/media", content=body, headers=operator_headers | stream_headers()
    )

    assert response.status_code == 413
    assert response.json() == {"error": "file: a photo may be at most 10 MB (Telegram's limit)"}
    assert scalar(sync_engine, "SELECT count(*) FROM media_chunks") == 0


async def test_a_photo_of_exactly_10_mb_is_taken(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    body = streamed_multipart(JPEG, MAX_PHOTO_BYTES, "full.jpg")
    response = await client.post(
        "/api/media", content=body, headers=operator_headers | stream_headers()
    )

    assert response.status_code == 201, response.text
    assert (response.json()["kind"], response.json()["size"]) == ("photo", MAX_PHOTO_BYTES)


async def test_a_body_declared_over_50_mb_is_refused_before_it_is_read(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    body, headers = multipart(PDF, "small.pdf")
    response = await client.post(
        "/api/media",
        content=body,
        headers=operator_headers | headers | {"Content-Length": str(60 * 1024 * 1024)},
    )

    assert response.status_code == 413
    assert "over the" in response.json()["error"]


async def test_a_viewer_may_not_upload(
    client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    response = await upload(client, viewer_headers, JPEG, "a.jpg")

    assert response.status_code == 403


async def test_an_upload_streams_to_the_database_in_bounded_memory(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    database: Database,
    sync_engine: Engine,
) -> None:
    """A 24 MB upload, sent without a Content-Length, raises this process's Python memory
    by a few slices, never by the file: neither the route, the retrying middleware nor
    the writer holds it. Reading it back for a send holds a slice or two, not the file."""
    size = 24 * 1024 * 1024
    tracemalloc.start()
    try:
        response = await client.post(
            "/api/media",
            content=streamed_multipart(MP4, size, "talk.mp4"),
            headers=operator_headers | stream_headers(),
        )
        _, upload_peak = tracemalloc.get_traced_memory()
        stored = StoredContent(database.primary, response.json()["media_id"], size)
        read, digest = 0, hashlib.sha256()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        async for chunk in stored.chunks():
            read += len(chunk)
            digest.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 201, response.text
    assert read == size
    kept = scalar(
        sync_engine, "SELECT sha256 FROM media_files WHERE id = :m", m=response.json()["media_id"]
    )
    assert digest.hexdigest() == kept
    assert upload_peak < 8 * CHUNK_BYTES, f"the upload peaked at {upload_peak / 2**20:.1f} MB"
    assert read_peak - before < 4 * CHUNK_BYTES, (
        f"reading peaked at {(read_peak - before) / 2**20:.1f} MB over the start"
    )
