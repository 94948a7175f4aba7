"""Files whose first bytes say what they are, and uploading them through the API."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(3000)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2000)
WEBP = b"RIFF\x00\x10\x00\x00WEBPVP8 " + os.urandom(2000)
GIF = b"GIF89a\x10\x00\x10\x00" + os.urandom(1500)
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + os.urandom(5000)
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + os.urandom(5000)
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + os.urandom(2000)
PDF = b"%PDF-1.7\n" + os.urandom(4000)

BOUNDARY = "coursedesk-test-boundary"


def multipart(
    content: bytes, filename: str = "file.bin", content_type: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with `content` in the field `file`, and its header."""
    head, tail = _framing(filename, content_type)
    return head + content + tail, _headers()


def _headers() -> dict[str, str]:
    return {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def _framing(filename: str, content_type: str | None) -> tuple[bytes, bytes]:
    part_type = f"Content-Type: {content_type}\r\n" if content_type else ""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"{part_type}\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


async def streamed_multipart(
    first: bytes, size: int, filename: str = "big.bin", piece: int = 64 * 1024
) -> AsyncIterator[bytes]:
    """A multipart body of `size` bytes of file, starting with `first`, made as it is sent
    (so the test itself never holds the file)."""
    head, tail = _framing(filename, None)
    yield head + first
    left = size - len(first)
    while left > 0:
        chunk = b"\x5a" * min(piece, left)
        left -= len(chunk)
        yield chunk
    yield tail


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    content: bytes,
    filename: str = "file.bin",
    content_type: str | None = None,
) -> httpx.Response:
    body, form_headers = multipart(content, filename, content_type)
    return await client.post("/api/media", content=body, headers=headers | form_headers)


async def uploaded(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    content: bytes,
    filename: str = "file.bin",
) -> dict[str, Any]:
    response = await upload(client, headers, content, filename)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def stream_headers() -> dict[str, str]:
    return _headers()
