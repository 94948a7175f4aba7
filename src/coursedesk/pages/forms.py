"""What page forms share: reading posted fields into a model, and all-or-nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.errors import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)


# Where FastAPI found a field; a person only needs the field's name.
_PLACES = frozenset({"body", "query", "path", "form", "header", "cookie"})


def describe_errors(errors: Sequence[Mapping[str, object]]) -> str:
    """The first few validation errors as one line: `field: what is wrong; …`."""
    parts = []
    for detail in errors[:3]:
        location = detail.get("loc", ())
        places = location if isinstance(location, tuple | list) else ()
        field = ".".join(str(part) for part in places if part not in _PLACES)
        message = str(detail.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts) or "the input is not valid"


def parse_form(model: type[ModelT], values: Mapping[str, object]) -> ModelT:
    """The posted fields as `model`; what does not fit is an InvalidInput that says why."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise InvalidInput(describe_errors(exc.errors())) from None


@asynccontextmanager
async def all_or_nothing(session: AsyncSession) -> AsyncIterator[None]:
    """A savepoint around a service call: if it fails, none of its writes are kept.

    The request's own transaction goes on (it names the actor for the audit triggers),
    so the page can still answer with a message rather than an error.
    """
    async with session.begin_nested():
        yield
