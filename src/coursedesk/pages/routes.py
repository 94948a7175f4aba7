"""Page routes whose errors come out as a message in HTML, never as JSON or a trace."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import suppress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import Principal
from coursedesk.errors import Conflict, InvalidInput, NotFound
from coursedesk.pages.forms import describe_errors
from coursedesk.pages.rendering import PAGE_HEADERS, templates
from coursedesk.web.deps import Session, require_page_role
from coursedesk.web.errors import database_failure

log = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_TITLES = {
    400: "That did not work",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "That cannot be done now",
    422: "Some of what was sent is not valid",
    500: "Something went wrong",
    503: "The database is unavailable",
}
_UNAVAILABLE = "The database cannot be reached right now; try again in a moment."
_EXPIRED_FORM = (
    "This form had expired, or was sent from somewhere else. Reload the page and try again."
)

PageOperator = Annotated[Principal, Depends(require_page_role(Role.operator))]


async def page_unit_of_work(request: Request, session: Session) -> AsyncIterator[None]:
    """The request's unit of work, committed before the page answers.

    The app's session dependency commits once the response has gone out; a page that
    redirects after a change must commit first, or the page the browser goes on to may
    be read before the change is. An error page rolls the work back instead.
    """
    request.state.page_session = session
    yield
    await session.commit()


def _as_sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def _status_and_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, HTTPException):
        if exc.status_code == 403 and "CSRF" in str(exc.detail):
            return 403, _EXPIRED_FORM
        return exc.status_code, str(exc.detail)
    if isinstance(exc, RequestValidationError):
        return 422, describe_errors(exc.errors())
    if isinstance(exc, NotFound):
        return 404, str(exc)
    if isinstance(exc, InvalidInput):
        return 400, str(exc)
    if isinstance(exc, Conflict):
        return 409, str(exc)
    failure = database_failure(exc)
    if failure is not None:
        status, message = failure
        return status, _UNAVAILABLE if status == 503 else message
    return 500, "The error has been logged. Please try again, or tell whoever runs coursedesk."


async def error_page(request: Request, exc: Exception, *, fragment: bool) -> Response:
    """What a page (or a piece of one) shows when its handler fails; nothing it did is kept."""
    session: AsyncSession | None = getattr(request.state, "page_session", None)
    if session is not None:
        with suppress(DBAPIError):
            await session.rollback()
    if isinstance(exc, HTTPException) and exc.status_code == 303 and exc.headers:
        if not fragment:
            return RedirectResponse(exc.headers["Location"], status_code=303)
        exc = HTTPException(401, "Your session has ended: reload the page to sign in again.")
    status, message = _status_and_message(exc)
    if status == 500:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response: HTMLResponse = templates.TemplateResponse(
        request,
        "fragments/error.html" if fragment else "error.html",
        {
            "status": status,
            "title": _TITLES.get(status, "That did not work"),
            "message": _as_sentence(message),
        },
        status_code=status,
        headers=PAGE_HEADERS,
    )
    return response


class PageRoute(APIRoute):
    """A whole page: failures render the error page (anonymous visitors go to /login)."""

    fragment = False

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        fragment = self.fragment

        async def handle_showing_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:  # every failure becomes a page with a message
                return await error_page(request, exc, fragment=fragment)

        return handle_showing_errors


class FragmentRoute(PageRoute):
    """A piece of a page fetched by its script: failures render a message in its place."""

    fragment = True


def page_router(*, fragments: bool = False) -> APIRouter:
    """A router of pages (or of fragments), kept out of the OpenAPI document."""
    return APIRouter(
        route_class=FragmentRoute if fragments else PageRoute,
        dependencies=[Depends(page_unit_of_work, scope="function")],
        include_in_schema=False,
        default_response_class=HTMLResponse,
    )
