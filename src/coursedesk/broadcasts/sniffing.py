"""What an uploaded file is, read from its first bytes: the kind Telegram sends it as.

Only the content decides, never the name or the type a browser claims:

- JPEG (`FF D8 FF`), PNG (`89 50 4E 47 0D 0A 1A 0A`), WebP (`RIFF`, 4 bytes, `WEBP`):
  a photo (image/jpeg, image/png, image/webp);
- an ISO media file (`ftyp` at offset 4) of an MP4 or QuickTime brand: a video
  (video/mp4, video/quicktime);
- GIF (`GIF87a`, `GIF89a`): an animation (image/gif);
- anything else: a document, of the type it was uploaded with when that reads as one,
  else application/octet-stream.

A video without sound may also be sent as an animation, but only when the broadcast
asks for it (`kind` in its media item): telling a silent MP4 from one with sound means
reading its tracks, and a guess would turn lessons into looping clips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from coursedesk.broadcasts.models import MAX_MEDIA_BYTES, MediaKind

SNIFF_BYTES: Final = 16
"""How many first bytes decide a file's kind."""
MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024
"""Telegram's limit on a photo a bot uploads."""
DEFAULT_DOCUMENT_TYPE: Final = "application/octet-stream"

# ISO base media brands of video files: MP4 (ISO, 3GPP, Apple's M4V, DASH, Flash) and
# QuickTime. Audio-only (M4A, M4B) and still images (HEIC, AVIF) are not among them.
_MP4_BRANDS = frozenset(
    {
        b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1",
        b"M4V ", b"M4VH", b"M4VP", b"dash", b"mmp4", b"f4v ", b"3gp4", b"3gp5", b"3gp6",
    }
)  # fmt: skip
_QUICKTIME_BRAND = b"qt  "
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


@dataclass(frozen=True, slots=True)
class Sniffed:
    kind: MediaKind
    mime_type: str

    @property
    def limit(self) -> int:
        """The largest file of this kind Telegram takes from a bot."""
        return MAX_PHOTO_BYTES if self.kind == "photo" else MAX_MEDIA_BYTES


def sniff(head: bytes, declared_type: str | None = None) -> Sniffed:
    """The kind of a file that starts with `head` (its first SNIFF_BYTES, or all of it)."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("photo", "image/jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("photo", "image/png")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("photo", "image/webp")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("animation", "image/gif")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _MP4_BRANDS:
            return Sniffed("video", "video/mp4")
        if brand == _QUICKTIME_BRAND:
            return Sniffed("video", "video/quicktime")
    return Sniffed("document", document_type(declared_type))


def document_type(declared_type: str | None) -> str:
    """The type a document was uploaded with, if it is one; else application/octet-stream."""
    if declared_type:
        candidate = declared_type.split(";", 1)[0].strip().lower()
        if _MIME_TYPE.fullmatch(candidate):
            return candidate
    return DEFAULT_DOCUMENT_TYPE


def kinds_it_may_go_as(kind: MediaKind, mime_type: str) -> tuple[MediaKind, ...]:
    """The kinds a file of `kind` may be sent as, its own first.

    Any file may go as a document (sent as a file, uncompressed); an MP4 video also as an
    animation (Telegram plays it silent and looping); nothing else may change kind.
    """
    if kind == "document":
        return ("document",)
    if kind == "video" and mime_type == "video/mp4":
        return ("video", "animation", "document")
    return (kind, "document")
