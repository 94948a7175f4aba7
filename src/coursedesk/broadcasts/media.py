"""Media files in PostgreSQL: written as an upload streams in, read back a slice at a time.

A file is kept as media_files (what it is) and media_chunks (its bytes in slices of
CHUNK_BYTES). Writing holds at most one slice beyond what the caller hands in; reading
(StoredContent) yields one slice at a time, each read when the one before has been
sent, so a worker uploading a 50 MB file, or an album of ten, holds a slice or two of
each, never a file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from coursedesk.audit.service import record
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


async def finish_upload(session: AsyncSession, writer: MediaWriter, actor: str) -> StoredMedia:
    """The file staff uploaded, stored, and audited as `media.upload`, in the caller's
    transaction (POST /api/media and the composer's attach without a script)."""
    stored = await writer.finish()
    await record(
        session,
        actor,
        "media.upload",
        "media",
        stored.media_id,
        after={
            "kind": stored.kind,
            "filename": stored.filename,
            "mime_type": stored.mime_type,
            "size": stored.size,
        },
    )
    return stored


class MediaMissing(CoursedeskError):
    """A file's bytes are not all there (a slice deleted by hand)."""


async def check_complete(connection: AsyncConnection, media_id: int, size: int) -> None:
    """MediaMissing unless the file's slices are all there and add up to its size.

    Asked before a send streams the file, so that a damaged file fails its send for
    good rather than midway, as a network error would. Reads no bytes: a slice's
    length comes from its TOAST pointer.
    """
    row = (
        await connection.execute(
            select(
                func.count(),
                func.coalesce(func.max(MediaChunk.seq), -1),
                func.coalesce(func.sum(func.octet_length(MediaChunk.data)), 0),
            ).where(MediaChunk.media_id == media_id)
        )
    ).one()
    slices, last_seq, total = row
    if slices != last_seq + 1 or total != size:
        raise MediaMissing(f"media {media_id}: its content is not all in the database")


@dataclass(frozen=True, slots=True)
class StoredContent:
    """A stored file's bytes as an upload reads them (a telegram.transport.FileStream).

    Each call of `chunks()` reads the file from its first slice, one slice per query on
    a connection taken from the pool for that query alone, so that an upload held up by
    a slow Bot API holds no database connection, and a request sent again after a 429
    or a 5xx reads the file again instead of keeping it.
    """

    engine: AsyncEngine
    media_id: int
    size: int

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        read, seq = 0, 0
        while read < self.size:
            async with self.engine.connect() as connection:
                data = await connection.scalar(
                    select(MediaChunk.data).where(
                        MediaChunk.media_id == self.media_id, MediaChunk.seq == seq
                    )
                )
            if data is None or read + len(data) > self.size:
                raise MediaMissing(f"media {self.media_id}: its content is not all in the database")
            read += len(data)
            seq += 1
            yield data
