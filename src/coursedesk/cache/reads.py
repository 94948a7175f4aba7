"""Service reads through the answer cache: `await reads(service.top_events, 10)`.

A read is cached under its function's name and arguments, and its answer stored as
the JSON of the function's return type, read back through the same type.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Concatenate, ParamSpec, TypeVar, get_type_hints

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.cache.answers import AnswerCache

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class AnswerShape:
    name: str
    adapter: TypeAdapter[Any]

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The name and a digest of the arguments (dates, windows, numbers, names)."""
        arguments = repr((args, sorted(kwargs.items()))).encode()
        return f"{self.name}:{hashlib.blake2b(arguments, digest_size=16).hexdigest()}"


@cache
def answer_shape(query: Callable[..., Awaitable[Any]]) -> AnswerShape:
    """`analytics.top_events` and a reader of its return type, for a service function."""
    module = query.__module__.removeprefix("coursedesk.").removesuffix(".service")
    return AnswerShape(
        f"{module}.{query.__qualname__}", TypeAdapter(get_type_hints(query)["return"])
    )


class CachedReads:
    """Calls service reads with the request's read session, through the answer cache."""

    def __init__(self, session: AsyncSession, answers: AnswerCache) -> None:
        self._session = session
        self._answers = answers

    @property
    def session(self) -> AsyncSession:
        """The read session itself, for what must never come from the cache."""
        return self._session

    async def __call__(
        self,
        query: Callable[Concatenate[AsyncSession, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        shape = answer_shape(query)
        answer: T = await self._answers.answer(
            shape.name,
            shape.key(args, kwargs),
            shape.adapter,
            lambda: query(self._session, *args, **kwargs),
        )
        return answer
