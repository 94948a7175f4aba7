"""Signing in and out (`/login`, `/logout`) and `/api/me`."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from coursedesk.accounts.roles import Role
from coursedesk.accounts.secrets import secrets_match
from coursedesk.accounts.service import SESSION_LIFETIME, Principal, end_session
from coursedesk.accounts.sign_in import SignedIn, WrongCredentials, sign_in, sign_out
from coursedesk.accounts.signing import (
    LOGIN_NONCE_MAX_AGE_SECONDS,
    login_nonce_from_cookie,
    new_login_nonce,
    sign_session_id,
)
from coursedesk.config import Settings
from coursedesk.pages.rendering import PAGE_HEADERS, templates
from coursedesk.web.deps import (
    SESSION_COOKIE,
    Session,
    Viewer,
    check_csrf,
    get_settings,
    optional_principal,
    session_id_of,
)

router = APIRouter(tags=["accounts"])

# Carries the nonce that the sign-in form must echo: a form posted from another site
# comes without it, so nobody can sign a victim's browser into the attacker's account.
LOGIN_NONCE_COOKIE = "coursedesk_login"

AppSettings = Annotated[Settings, Depends(get_settings)]


def safe_next(value: str | None) -> str:
    """`value` if it is a path on this site, else `/`: never a redirect to another host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.isprintable():
        return "/"
    return value


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(
    request: Request,
    settings: Settings,
    *,
    status_code: int = 200,
    message: str | None = None,
    username: str = "",
    next_page: str = "/",
    headers: dict[str, str] | None = None,
    fresh_nonce: bool = False,
) -> HTMLResponse:
    """The sign-in form, reusing the browser's nonce so that two open tabs both work."""
    secret_key = settings.secret_key
    nonce: str | None = None
    new_cookie: str | None = None
    if secret_key is None:
        status_code = 503
        message = "Signing in is disabled: SECRET_KEY is not set on the server."
    else:
        cookie = request.cookies.get(LOGIN_NONCE_COOKIE)
        if cookie and not fresh_nonce:
            nonce = login_nonce_from_cookie(secret_key, cookie)
        if nonce is None:
            nonce, new_cookie = new_login_nonce(secret_key)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "csrf_token": nonce,
            "message": message,
            "username": username,
            "next_page": safe_next(next_page),
        },
        status_code=status_code,
        headers=PAGE_HEADERS | (headers or {}),
    )
    if new_cookie is not None:
        response.set_cookie(
            LOGIN_NONCE_COOKIE,
            new_cookie,
            max_age=LOGIN_NONCE_MAX_AGE_SECONDS,
            path="/login",
            secure=_is_https(request),
            httponly=True,
            samesite="strict",
        )
    return response


@router.get("/login", include_in_schema=False)
async def login_form(
    request: Request,
    settings: AppSettings,
    next_page: Annotated[str, Query(alias="next", max_length=2048)] = "/",
) -> HTMLResponse:
    return _login_page(request, settings, next_page=next_page)


def _sent_nonce_is_valid(request: Request, settings: Settings, sent: str) -> bool:
    cookie = request.cookies.get(LOGIN_NONCE_COOKIE)
    if settings.secret_key is None or not cookie or not sent:
        return False
    nonce = login_nonce_from_cookie(settings.secret_key, cookie)
    return nonce is not None and secrets_match(sent, nonce)


def _signed_in_response(
    request: Request, settings: Settings, signed_in: SignedIn, next_page: str
) -> RedirectResponse:
    assert settings.secret_key is not None, "a sign-in needs the key its nonce was signed with"
    response = RedirectResponse(safe_next(next_page), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sign_session_id(settings.secret_key, signed_in.session_id),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=_is_https(request),
        httponly=True,
        # Lax, not Strict: a link to a page from mail or chat should open signed in; every
        # mutation needs the CSRF token on top, which no other site can read.
        samesite="lax",
    )
    response.delete_cookie(LOGIN_NONCE_COOKIE, path="/login")
    return response


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    session: Session,
    settings: AppSettings,
    username: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
    next_page: Annotated[str, Form(alias="next", max_length=2048)] = "/",
) -> Response:
    """Sign in: a new session id in a signed HttpOnly cookie, then on to `next`."""
    if not _sent_nonce_is_valid(request, settings, csrf_token):
        return _login_page(
            request,
            settings,
            status_code=403,
            message="The sign-in form had expired. Please try again.",
            username=username,
            next_page=next_page,
            fresh_nonce=True,
        )
    if not username.strip() or not password:
        return _login_page(
            request,
            settings,
            status_code=400,
            message="Enter your username and password.",
            username=username,
            next_page=next_page,
        )
    previous_session_id = session_id_of(request)
    outcome = await sign_in(session, username, password, _client_address(request))
    if isinstance(outcome, WrongCredentials):
        return _login_page(
            request,
            settings,
            status_code=401,
            message="Wrong username or password.",
            username=username,
            next_page=next_page,
        )
    if not isinstance(outcome, SignedIn):
        return _login_page(
            request,
            settings,
            status_code=429,
            message=outcome.reason,
            username=username,
            next_page=next_page,
            headers={"Retry-After": str(outcome.retry_after_seconds)},
        )
    if previous_session_id is not None:
        await end_session(session, previous_session_id)
    return _signed_in_response(request, settings, outcome, next_page)


@router.post("/logout", include_in_schema=False)
async def logout(
    request: Request,
    session: Session,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> RedirectResponse:
    """End the browser's session (CSRF-checked) and go back to /login."""
    session_id = session_id_of(request)
    if principal is not None and principal.via == "session" and session_id is not None:
        await check_csrf(request, principal)
        await sign_out(session, principal, session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


class Me(BaseModel):
    name: str
    role: Role
    via: str
    csrf_token: str | None


@router.get(
    "/api/me",
    summary="Who is calling",
    description=(
        "The caller's name and role. A browser session also gets its `csrf_token`, which "
        "page scripts send as the `X-CSRF-Token` header on every POST, PUT, PATCH and DELETE."
    ),
)
async def me(principal: Viewer) -> Me:
    return Me(
        name=principal.name,
        role=principal.role,
        via=principal.via,
        csrf_token=principal.csrf_token,
    )
