"""The files the stand-in was sent: uploads as read from the request, and the file_ids given them.

The stand-in never keeps a file's bytes, only their size and SHA-256 (read as the upload
streams in), so uploads of any size cost it no memory. It does not look inside a file
either: whatever is uploaded with sendPhoto is a photo, of a nominal 1280 × 960.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["photo", "video", "animation", "document"]
MEDIA_KINDS: tuple[MediaKind, ...] = ("photo", "video", "animation", "document")

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Telegram's limit on a file a bot uploads."""
MAX_PHOTO_BYTES = 10 * 1024 * 1024
"""Telegram's limit on a photo a bot uploads."""

_PHOTO_SIZES = ((90, 68, "s"), (320, 240, "m"), (1280, 960, ""))
"""The sizes Telegram makes of a photo, smallest first, as the Message lists them."""
_VIDEO_WIDTH, _VIDEO_HEIGHT = 1280, 720


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file part of a multipart request, as read: its size and digest, never its bytes."""

    field: str
    filename: str | None
    content_type: str | None
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the stand-in knows by file_id: an upload, or one size Telegram made of a photo."""

    kind: MediaKind
    file_id: str
    file_unique_id: str
    file_name: str | None
    mime_type: str | None
    size: int | None
    width: int
    height: int
    original: str
    """The file_id of the upload this is (a photo's every size names the same one)."""


class FileStore:
    """The stand-in's file_ids: each upload gets one (and a photo one per size), for good."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._photo_sizes: dict[str, list[StoredFile]] = {}
        self._uploads = 0

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def add_upload(self, kind: MediaKind, part: FilePart) -> StoredFile:
        """Give an upload its file_id: the same content uploaded again gets a new file_id
        but the same file_unique_id, as with Telegram. For a photo, the largest size."""
        self._uploads += 1
        file_id = f"{kind}-{self._uploads}-{part.sha256[:12]}"
        unique = f"u{part.sha256[:15]}"
        if kind != "photo":
            stored = StoredFile(
                kind,
                file_id,
                unique,
                part.filename,
                part.content_type,
                part.size,
                _VIDEO_WIDTH if kind in ("video", "animation") else 0,
                _VIDEO_HEIGHT if kind in ("video", "animation") else 0,
                file_id,
            )
            self._files[file_id] = stored
            return stored
        sizes = [
            StoredFile(
                "photo",
                f"{file_id}-{suffix}" if suffix else file_id,
                f"{unique}{suffix}",
                part.filename,
                part.content_type,
                part.size if not suffix else None,
                width,
                height,
                file_id,
            )
            for width, height, suffix in _PHOTO_SIZES
        ]
        for size in sizes:
            self._files[size.file_id] = size
        self._photo_sizes[file_id] = sizes
        return sizes[-1]

    def message_fields(self, stored: StoredFile) -> dict[str, object]:
        """The fields a Message carries for this file, as Telegram fills them."""
        if stored.kind == "photo":
            sizes = self._photo_sizes.get(stored.original, [stored])
            upto = [size for size in sizes if size.width <= stored.width]
            return {"photo": [_photo_size(size) for size in upto]}
        document = _document(stored)
        if stored.kind == "document":
            return {"document": document}
        media = {
            **document,
            "width": stored.width,
            "height": stored.height,
            "duration": 0,
        }
        if stored.kind == "video":
            return {"video": media}
        # An animation's message carries it as a document too, for older clients.
        return {"animation": media, "document": document}


def _photo_size(size: StoredFile) -> dict[str, object]:
    fields: dict[str, object] = {
        "file_id": size.file_id,
        "file_unique_id": size.file_unique_id,
        "width": size.width,
        "height": size.height,
    }
    if size.size is not None:
        fields["file_size"] = size.size
    return fields


def _document(stored: StoredFile) -> dict[str, object]:
    fields: dict[str, object] = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
    }
    if stored.file_name is not None:
        fields["file_name"] = stored.file_name
    if stored.mime_type is not None:
        fields["mime_type"] = stored.mime_type
    if stored.size is not None:
        fields["file_size"] = stored.size
    return fields
