"""Media files in PostgreSQL: written as an upload streams in, read back a slice at a time.

A file is kept as media_files (what it is) and media_chunks (its bytes in slices of
CHUNK_BYTES). Writing holds at most one slice beyond what the caller hands in; reading
fills one buffer of the file's exact size, a slice at a time, and hands that buffer over
without a copy, so a worker about to upload a 50 MB file holds it once.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from coursedesk.broadcasts.models import MediaChunk, MediaFile, MediaKind
from coursedesk.broadcasts.sniffing import MAX_PHOTO_BYTES, SNIFF_BYTES, Sniffed, sniff
from coursedesk.errors import CoursedeskError, InvalidInput, TooLarge

CHUNK_BYTES = 1024 * 1024
MAX_FILENAME_LENGTH = 255
DEFAULT_FILENAME = "file"
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f]")


class MediaTooLarge(TooLarge):
    """A file over Telegram's limit for its kind."""


@dataclass(frozen=True, slots=True)
class StoredMedia:
    media_id: int
    kind: MediaKind
    filename: str
    mime_type: str
    size: int


def clean_filename(name: str | None) -> str:
    """The name a chat shows: the last part of a path, without control characters, at
    most 255 characters; "file" when nothing is left."""
    base = re.split(r"[/\\]", name or "")[-1]
    cleaned = _UNSHOWABLE.sub("", base).strip()
    return cleaned[:MAX_FILENAME_LENGTH] or DEFAULT_FILENAME


def _megabytes(size: int) -> str:
    return f"{size // (1024 * 1024)} MB"


class MediaWriter:
    """One upload written into the caller's transaction as its bytes arrive.

    `write` the bytes in order, then `finish`; the kind is read from the first bytes,
    and a file past its kind's limit is refused (MediaTooLarge) as soon as it gets there.
    """

    def __init__(
        self, session: AsyncSession, *, filename: str | None, declared_type: str | None, actor: str
    ) -> None:
        self._session = session
        self._filename = clean_filename(filename)
        self._declared_type = declared_type
        self._actor = actor
        self._pending = bytearray()
        self._digest = hashlib.sha256()
        self._size = 0
        self._seq = 0
        self._sniffed: Sniffed | None = None
        self._media_id: int | None = None

    async def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        self._size += len(data)
        self._digest.update(data)
        self._pending += data
        if self._sniffed is None and len(self._pending) >= SNIFF_BYTES:
            await self._start()
        self._check_size()
        while self._sniffed is not None and len(self._pending) >= CHUNK_BYTES:
            await self._write_chunk(bytes(self._pending[:CHUNK_BYTES]))
            del self._pending[:CHUNK_BYTES]

    async def finish(self) -> StoredMedia:
        """The file as stored; an empty one is refused (InvalidInput)."""
        if self._size == 0:
            raise InvalidInput("file: is empty")
        if self._sniffed is None:
            await self._start()
        assert self._sniffed is not None and self._media_id is not None
        if self._pending:
            await self._write_chunk(bytes(self._pending))
            self._pending.clear()
        await self._session.execute(
            update(MediaFile)
            .where(MediaFile.id == self._media_id)
            .values(size=self._size, sha256=self._digest.hexdigest())
        )
        return StoredMedia(
            self._media_id,
            self._sniffed.kind,
            self._filename,
            self._sniffed.mime_type,
            self._size,
        )

    async def _start(self) -> None:
        self._sniffed = sniff(bytes(self._pending[:SNIFF_BYTES]), self._declared_type)
        self._check_size()
        self._media_id = await self._session.scalar(
            insert(MediaFile)
            .values(
                kind=self._sniffed.kind,
                filename=self._filename,
                mime_type=self._sniffed.mime_type,
                size=0,
                sha256="",
                created_by=self._actor,
            )
            .returning(MediaFile.id)
        )

    def _check_size(self) -> None:
        if self._sniffed is None or self._size <= self._sniffed.limit:
            return
        if self._sniffed.limit == MAX_PHOTO_BYTES:
            raise MediaTooLarge(
                f"file: a photo may be at most {_megabytes(MAX_PHOTO_BYTES)} (Telegram's limit)"
            )
        raise MediaTooLarge(
            f"file: a file may be at most {_megabytes(self._sniffed.limit)} (Telegram's limit)"
        )

    async def _write_chunk(self, data: bytes) -> None:
        await self._session.execute(
            insert(MediaChunk).values(media_id=self._media_id, seq=self._seq, data=data)
        )
        self._seq += 1


async def media_by_ids(session: AsyncSession, media_ids: Sequence[int]) -> dict[int, MediaFile]:
    """The media files with these ids that exist (no bytes read)."""
    rows = await session.scalars(select(MediaFile).where(MediaFile.id.in_(set(media_ids))))
    return {row.id: row for row in rows}


class MediaMissing(CoursedeskError):
    """A file's bytes are not all there (a slice deleted by hand)."""


async def read_media(connection: AsyncConnection, media_id: int, size: int) -> bytes:
    """The file's bytes, read a slice at a time into one buffer of its size."""
    buffer = io.BytesIO()
    if size:
        # Sized once up front, so that the writes below never grow it, and getvalue()
        # hands over this buffer itself rather than a copy.
        buffer.seek(size - 1)
        buffer.write(b"\0")
        buffer.seek(0)
    seq = 0
    while buffer.tell() < size:
        data = await connection.scalar(
            select(MediaChunk.data).where(MediaChunk.media_id == media_id, MediaChunk.seq == seq)
        )
        if data is None or buffer.tell() + len(data) > size:
            raise MediaMissing(f"media {media_id}: its content is not all in the database")
        buffer.write(data)
        seq += 1
    return buffer.getvalue()


async def media_slices(engine: AsyncEngine, media_id: int, size: int) -> AsyncIterator[bytes]:
    """The file's bytes a slice at a time, each read on a connection of its own while the
    answer streams (the request's session is gone by then)."""
    seq, sent = 0, 0
    while sent < size:
        async with engine.connect() as connection:
            data = await connection.scalar(
                select(MediaChunk.data).where(
                    MediaChunk.media_id == media_id, MediaChunk.seq == seq
                )
            )
        if data is None or sent + len(data) > size:
            raise MediaMissing(f"media {media_id}: its content is not all in the database")
        yield data
        sent += len(data)
        seq += 1
