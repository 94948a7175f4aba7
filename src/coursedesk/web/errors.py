"""Every error leaves the API as `{"error": "..."}` with a fitting status, never a trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from coursedesk.db.retry import is_lost_race, sqlstate
from coursedesk.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    TooLarge,
    UnsupportedType,
)
from coursedesk.web.retry import LostRace

log = logging.getLogger(__name__)


UNAVAILABLE = "the database is unavailable; try again shortly"
BUSY = "the database is busy; try again shortly"
# The value errors (SQLSTATE class 22) that a value sent by a client causes: too long,
# out of range, not valid for its type, not in the encoding. psycopg refuses a NUL
# character itself, before anything is sent, with no SQLSTATE.
_REFUSED_VALUES = {None, "22001", "22003", "22021", "22P02", "22P05"}


def database_failure(exc: Exception) -> tuple[int, str] | None:
    """The status and message for a database error that is no fault of the code: the
    server down or out of connections (503), or a value it cannot hold (400).
    None for every other error."""
    if isinstance(exc, DatabaseUnavailable | OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        log.warning("database unavailable: %s", exc)
        return 503, UNAVAILABLE
    if isinstance(exc, PoolTimeout):
        log.warning("no database connection free: %s", exc)
        return 503, BUSY
    if isinstance(exc, DataError) and sqlstate(exc) in _REFUSED_VALUES:
        return 400, f"a value cannot be stored: {str(exc.orig).splitlines()[0]}"
    return None


def error_response(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = error_response(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _describe_validation(exc))

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
        return error_response(400, str(exc), **exc.details)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, str(exc), **exc.details)

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge) -> JSONResponse:
        return error_response(413, str(exc))

    @app.exception_handler(UnsupportedType)
    async def unsupported_type(request: Request, exc: UnsupportedType) -> JSONResponse:
        return error_response(415, str(exc))

    @app.exception_handler(DatabaseUnavailable)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_lost_race(exc):
            raise LostRace from exc
        failure = database_failure(exc)
        if failure is None:
            log.exception("database error on %s %s", request.method, request.url.path)
            return error_response(500, "internal error")
        status, message = failure
        response = error_response(status, message)
        if status == 503:
            response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error")
