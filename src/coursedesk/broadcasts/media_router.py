"""`POST /api/media`: a photo, video, animation or document to send with broadcasts, and
`GET /api/media/{id}` to see it again (docs/reference.md §5.7)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from coursedesk.broadcasts.composition import MEDIA_ID_MAX
from coursedesk.broadcasts.media import MediaWriter, StoredContent, finish_upload, media_by_ids
from coursedesk.broadcasts.models import MAX_MEDIA_BYTES, MediaKind
from coursedesk.db.engine import Database
from coursedesk.errors import NotFound
from coursedesk.web.deps import Operator, Session, Viewer, get_database
from coursedesk.web.uploads import ChunkWriter, FilePartStart, read_file_part

router = APIRouter(prefix="/api/media", tags=["broadcasts"])

FILE_FIELD = "file"
MULTIPART_ALLOWANCE = 64 * 1024
"""What a multipart body may hold beside the file: its boundaries, headers, a field or two."""


class MediaAnswer(BaseModel):
    media_id: int
    kind: MediaKind
    filename: str
    size: int
    mime_type: str


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FILE_FIELD],
                "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
            }
        }
    },
}


@router.post(
    "",
    status_code=201,
    summary="Upload a file to send with broadcasts (operator)",
    description=(
        "multipart/form-data with one file in the field `file`. Its `kind` is read from its "
        "first bytes: JPEG, PNG and WebP are photos, MP4 and QuickTime videos, GIF "
        "animations, anything else a document. Photos may be at most 10 MB, other files "
        "50 MB (Telegram's limits for a bot's uploads). A session-cookie caller sends its "
        "CSRF token in the `X-CSRF-Token` header. Send it with `media` in "
        "`POST /api/messages/send`."
    ),
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        413: {"description": "The file is over Telegram's limit for its kind"},
        415: {"description": "The body is not multipart/form-data"},
    },
)
async def upload_media(request: Request, principal: Operator, session: Session) -> MediaAnswer:
    writer: MediaWriter | None = None

    async def open_sink(part: FilePartStart) -> ChunkWriter:
        nonlocal writer
        writer = MediaWriter(
            session,
            filename=part.filename,
            declared_type=part.content_type,
            actor=principal.actor,
        )
        return writer.write

    limit = MAX_MEDIA_BYTES + MULTIPART_ALLOWANCE
    await read_file_part(request, field=FILE_FIELD, max_body=limit, open_sink=open_sink)
    assert writer is not None, "read_file_part refuses a body without the file"
    stored = await finish_upload(session, writer, principal.actor)
    return MediaAnswer(
        media_id=stored.media_id,
        kind=stored.kind,
        filename=stored.filename,
        size=stored.size,
        mime_type=stored.mime_type,
    )


SHOWN_INLINE = frozenset({"photo", "video", "animation"})
"""Kinds a browser shows as they are; anything else is only ever downloaded, so that a
document uploaded as HTML or SVG can never run as a page of this site."""


@router.get(
    "/{media_id}",
    summary="A file uploaded for broadcasts, as it was stored (viewer)",
    description=(
        "Photos, videos and animations come with their own type, to be shown; other files "
        "as a download. Read a slice at a time from the database."
    ),
    response_class=StreamingResponse,
    responses={404: {"description": "No file with this id"}},
)
async def media_content(
    media_id: Annotated[int, Path(ge=1, le=MEDIA_ID_MAX)],
    _: Viewer,
    session: Session,
    database: Annotated[Database, Depends(get_database)],
) -> StreamingResponse:
    found = (await media_by_ids(session, [media_id])).get(media_id)
    if found is None:
        raise NotFound(f"no media with id {media_id}")
    inline = found.kind in SHOWN_INLINE
    disposition = "inline" if inline else "attachment"
    return StreamingResponse(
        StoredContent(database.primary, media_id, found.size).chunks(),
        media_type=found.mime_type if inline else "application/octet-stream",
        headers={
            "Content-Length": str(found.size),
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(found.filename)}",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400, immutable",
        },
    )
