"""Numbered pages of a long list, with links that keep the list's filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request

PAGE_MAX = 100_000
PageNumber = Annotated[int, Query(ge=1, le=PAGE_MAX, description="1 for the first page")]


@dataclass(frozen=True)
class Pages:
    total: int
    limit: int
    offset: int
    previous_url: str | None
    next_url: str | None

    @property
    def first(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last(self) -> int:
        return min(self.offset + self.limit, self.total)


def url_with(request: Request, **changes: str | int | None) -> str:
    """This page's path and query with some parameters replaced (None or "" drops one)."""
    kept = [
        (name, value)
        for name, value in request.query_params.multi_items()
        if name not in changes and value != ""
    ]
    kept += [(name, str(value)) for name, value in changes.items() if value not in (None, "")]
    return request.url.path + (f"?{urlencode(kept)}" if kept else "")


def pages_of(request: Request, *, total: int, limit: int, page: int) -> Pages:
    offset = (page - 1) * limit
    return Pages(
        total=total,
        limit=limit,
        offset=offset,
        previous_url=url_with(request, page=page - 1 if page > 2 else None) if page > 1 else None,
        next_url=url_with(request, page=page + 1) if offset + limit < total else None,
    )
