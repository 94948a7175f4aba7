"""CSV downloads of any list, streamed, and safe to open in a spreadsheet.

Every download starts with a UTF-8 byte-order mark, which is how Excel knows the file is
UTF-8 (without it, Cyrillic names come out garbled); `?bom=0` leaves it out for tools
that mind. Nothing is sent until the first chunk is made, so a query that fails (a
value PostgreSQL refuses, say) is the route's error answer, not a 200 cut short.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import date, datetime
from typing import Literal, TypeVar
from urllib.parse import parse_qsl

from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from coursedesk.analytics.schemas import Items

ExportFormat = Literal["json", "csv"]
M = TypeVar("M", bound=BaseModel)

# A cell starting with one of these is run as a formula by spreadsheet programs
# (OWASP "CSV injection"); a leading apostrophe makes it plain text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FLUSH_AT = 64 * 1024
BYTE_ORDER_MARK = "\ufeff"
_BOM_CHOICES = {"1": True, "true": True, "0": False, "false": False}


def safe_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    return str(value)


async def _csv_chunks(
    header: Sequence[str], rows: AsyncIterable[Sequence[object]]
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    async for row in rows:
        writer.writerow([safe_cell(value) for value in row])
        if buffer.tell() >= _FLUSH_AT:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def wants_byte_order_mark(scope: Scope) -> bool:
    """The request's `bom` choice: on unless `bom=0` (or `false`); anything else is a 400."""
    choices = [value for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
               if name == "bom"]  # fmt: skip
    if not choices:
        return True
    if len(choices) > 1 or choices[0].lower() not in _BOM_CHOICES:
        raise HTTPException(status_code=400, detail="bom: give 1 or 0")
    return _BOM_CHOICES[choices[0].lower()]


async def _then(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for chunk in rest:
        yield chunk


class CsvResponse(StreamingResponse):
    """A streamed CSV that makes its first chunk before it answers anything."""

    def __init__(self, filename: str, chunks: AsyncIterator[str]) -> None:
        super().__init__(
            chunks,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Raised here, before the response starts, an error is answered by the app's
        # error handlers like any route's.
        mark = BYTE_ORDER_MARK if wants_byte_order_mark(scope) else ""
        first = await anext(self._chunks, "")
        self.body_iterator = _then(mark + first, self._chunks)
        await super().__call__(scope, receive, send)


def csv_response(
    filename: str, header: Sequence[str], rows: AsyncIterable[Sequence[object]]
) -> StreamingResponse:
    return CsvResponse(filename, _csv_chunks(header, rows))


async def _model_rows(
    fields: Sequence[str], items: Iterable[BaseModel]
) -> AsyncIterator[Sequence[object]]:
    for item in items:
        dumped = item.model_dump(mode="json", by_alias=True)
        yield [dumped[field] for field in fields]


def models_csv(
    filename: str, model: type[BaseModel], items: Iterable[BaseModel]
) -> StreamingResponse:
    """A CSV of already loaded items, one column per field of `model`."""
    fields = [field.serialization_alias or name for name, field in model.model_fields.items()]
    return csv_response(filename, fields, _model_rows(fields, items))


def listed(
    items: list[M], output: ExportFormat, filename: str, model: type[M]
) -> Items[M] | StreamingResponse:
    """A list route's answer: `{"items": …}`, or a CSV download named `filename`."""
    if output == "csv":
        return models_csv(filename, model, items)
    return Items(items=items)
