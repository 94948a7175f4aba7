"""One file read from a multipart/form-data body as it streams in, handed on part by part.

Starlette's own form parsing spools every file to a temporary file before the route
sees it, whatever its size. Here the route gets the file's bytes as they arrive (a sink
it awaits between reads, so a slow sink slows the client down), and the body is refused
as soon as it passes `max_body` bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from coursedesk.errors import InvalidInput, TooLarge, UnsupportedType
from coursedesk.web.multipart import PartHeaders, PartReader

MAX_TEXT_FIELD_BYTES = 4096
"""Text fields beside the file (a CSRF token, say) are read and dropped, up to this long."""


class BodyTooLarge(TooLarge):
    """The body passed its limit while it was read."""


class NotMultipart(UnsupportedType):
    """The body is not multipart/form-data."""


@dataclass(frozen=True, slots=True)
class FilePartStart:
    """What the file part says of itself before its bytes."""

    filename: str | None
    content_type: str | None


FileSink = Callable[[FilePartStart], Awaitable["ChunkWriter"]]
ChunkWriter = Callable[[bytes], Awaitable[None]]


class _Parts(PartReader):
    """Keeps the data of the one file part named `field`, between feeds; text fields are
    read and dropped."""

    def __init__(self, boundary: bytes, field: str) -> None:
        super().__init__(boundary)
        self.field = field
        self.file_start: FilePartStart | None = None
        self.file_seen = False
        self.file_done = False
        self.data = bytearray()
        self._in_file = False
        self._text_size = 0

    def part_begins(self, headers: PartHeaders) -> None:
        self._text_size = 0
        self._in_file = headers.name == self.field
        if not self._in_file:
            return
        if self.file_seen:
            raise InvalidInput(f"{self.field}: send one file")
        self.file_seen = True
        self.file_start = FilePartStart(headers.filename, headers.content_type)

    def part_data(self, data: memoryview) -> None:
        if self._in_file:
            self.data += data
            return
        self._text_size += len(data)
        if self._text_size > MAX_TEXT_FIELD_BYTES:
            raise InvalidInput(
                f"a form field besides {self.field} is over {MAX_TEXT_FIELD_BYTES} bytes"
            )

    def part_ends(self) -> None:
        if self._in_file:
            self.file_done = True
        self._in_file = False


def _boundary(request: Request) -> bytes:
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise NotMultipart("send the file as multipart/form-data, in a field named file")
    return boundary


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def read_file_part(
    request: Request, *, field: str, max_body: int, open_sink: FileSink
) -> None:
    """Stream the file in `field` of the request's multipart body into the sink that
    `open_sink` answers once the part's headers are read.

    Refuses (before reading, where Content-Length says so) a body over `max_body`
    (BodyTooLarge), one that is not multipart/form-data (NotMultipart), and one that
    cannot be read, has no such file, or more than one (InvalidInput).
    """
    boundary = _boundary(request)
    length = declared_length(request)
    if length is not None and length > max_body:
        raise BodyTooLarge(f"the body is {length} bytes, over the {max_body} this route reads")
    parts = _Parts(boundary, field)
    writer: ChunkWriter | None = None
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise BodyTooLarge(f"the body is over the {max_body} bytes this route reads")
            parts.write(chunk)
            if parts.file_start is not None and writer is None:
                writer = await open_sink(parts.file_start)
            if writer is not None and parts.data:
                data = bytes(parts.data)
                parts.data.clear()
                await writer(data)
    except MultipartParseError as exc:
        raise InvalidInput(f"the body is not readable multipart/form-data: {exc}") from None
    except ClientDisconnect:
        raise InvalidInput("the upload was cut off before its end") from None
    if not parts.file_seen:
        raise InvalidInput(f"{field}: no file in the field named {field}")
    if not parts.file_done or not parts.ended:
        raise InvalidInput("the upload was cut off before its end")
