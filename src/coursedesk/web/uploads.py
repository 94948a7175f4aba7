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
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from coursedesk.errors import InvalidInput, TooLarge, UnsupportedType

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


class _Parts:
    """The parser's callbacks: headers and data of each part, collected between feeds."""

    def __init__(self, boundary: bytes, field: str) -> None:
        self.field = field
        self.file_start: FilePartStart | None = None
        self.file_seen = False
        self.file_done = False
        self.data = bytearray()
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self._text_size = 0
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begins,
                "on_header_field": lambda data, start, end: self._header_name.extend(
                    data[start:end]
                ),
                "on_header_value": lambda data, start, end: self._header_value.extend(
                    data[start:end]
                ),
                "on_header_end": self._header_ends,
                "on_headers_finished": self._headers_end,
                "on_part_data": self._part_data,
                "on_part_end": self._part_ends,
                "on_end": self._ends,
            },
        )

    def _part_begins(self) -> None:
        self._headers = {}
        self._text_size = 0

    def _header_ends(self) -> None:
        self._headers[bytes(self._header_name).strip().lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_end(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        filename = options.get(b"filename")
        is_file = name is not None and name.decode("utf-8", "replace") == self.field
        self._in_file = is_file
        if not is_file:
            return
        if self.file_seen:
            raise InvalidInput(f"{self.field}: send one file")
        self.file_seen = True
        content_type = self._headers.get(b"content-type")
        self.file_start = FilePartStart(
            # Browsers send names in UTF-8; parse_options_header reads them as latin-1.
            filename.decode("utf-8", "replace") if filename is not None else None,
            content_type.decode("latin-1").strip() if content_type else None,
        )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.data += memoryview(data)[start:end]
            return
        self._text_size += end - start
        if self._text_size > MAX_TEXT_FIELD_BYTES:
            raise InvalidInput(
                f"a form field besides {self.field} is over {MAX_TEXT_FIELD_BYTES} bytes"
            )

    def _part_ends(self) -> None:
        if self._in_file:
            self.file_done = True
        self._in_file = False

    def _ends(self) -> None:
        self.ended = True


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
            parts.parser.write(chunk)
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
