"""A multipart/form-data body read part by part as it streams in.

python-multipart's parser reports headers and data in pieces through callbacks; PartReader
puts each part's headers together and hands its subclass whole events: a part's headers
(name, file name, type), its data as it arrives, its end. The app's upload route
(web/uploads.py) and the stand-in Bot API (telegram/standin/app.py) each keep what they
need of the parts and nothing else, so neither holds a file in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.multipart import MultipartParser, parse_options_header


@dataclass(frozen=True, slots=True)
class PartHeaders:
    """What a part says of itself before its data."""

    name: str | None
    filename: str | None
    """None for a text field; "" for a file sent without a name."""
    content_type: str | None


def _utf8(value: bytes | None) -> str | None:
    # parse_options_header reads the bytes as latin-1; browsers send names in UTF-8.
    return value.decode("utf-8", "replace") if value is not None else None


class PartReader:
    """Feed it the body with `write`; it calls the part_* methods, which subclasses define.

    `ended` turns true once the closing boundary was read: a body cut off before it never
    gets there. The parser's MultipartParseError, and whatever a part_* method raises,
    come out of `write`.
    """

    def __init__(self, boundary: bytes) -> None:
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._parser = MultipartParser(
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
                "on_part_data": lambda data, start, end: self.part_data(
                    memoryview(data)[start:end]
                ),
                "on_part_end": self.part_ends,
                "on_end": self._ends,
            },
        )

    def write(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def part_begins(self, headers: PartHeaders) -> None:
        """A part starts: its data follows."""

    def part_data(self, data: memoryview) -> None:
        """A piece of the current part's data; valid only during the call."""

    def part_ends(self) -> None:
        """The current part's data is complete."""

    def _part_begins(self) -> None:
        self._headers = {}

    def _header_ends(self) -> None:
        self._headers[bytes(self._header_name).strip().lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_end(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        content_type = self._headers.get(b"content-type")
        self.part_begins(
            PartHeaders(
                _utf8(options.get(b"name")),
                _utf8(options.get(b"filename")),
                content_type.decode("latin-1").strip() if content_type else None,
            )
        )

    def _ends(self) -> None:
        self.ended = True
