"""CSV downloads of any list, streamed, and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Literal, TypeVar

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from coursedesk.analytics.schemas import Items

ExportFormat = Literal["json", "csv"]
M = TypeVar("M", bound=BaseModel)

# A cell starting with one of these is run as a formula by spreadsheet programs
# (OWASP "CSV injection"); a leading apostrophe makes it plain text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FLUSH_AT = 64 * 1024


def safe_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
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


def csv_response(
    filename: str, header: Sequence[str], rows: AsyncIterable[Sequence[object]]
) -> StreamingResponse:
    return StreamingResponse(
        _csv_chunks(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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
