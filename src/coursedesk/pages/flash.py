"""One-time messages carried across a redirect in a short-lived signed cookie."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.responses import RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer

FLASH_COOKIE = "coursedesk_flash"
_FLASH_SALT = "coursedesk.flash"
_FLASH_MAX_AGE_SECONDS = 120
_FLASH_MAX_CHARS = 600

FlashKind = Literal["success", "error", "info"]


@dataclass(frozen=True)
class Flash:
    kind: FlashKind
    text: str


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        secret_key, salt=_FLASH_SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )


def _secret_key(request: Request) -> str | None:
    key: str | None = request.app.state.settings.secret_key
    return key


def take_flash(request: Request) -> Flash | None:
    """The message left for this page by the previous request, if this app signed it."""
    cookie = request.cookies.get(FLASH_COOKIE)
    key = _secret_key(request)
    if not cookie or key is None:
        return None
    try:
        kind, text = _serializer(key).loads(cookie, max_age=_FLASH_MAX_AGE_SECONDS)
    except (BadSignature, ValueError, TypeError):
        return None
    if kind not in ("success", "error", "info") or not isinstance(text, str):
        return None
    return Flash(kind, text)


def redirect_with_flash(
    request: Request, location: str, text: str, kind: FlashKind = "success"
) -> RedirectResponse:
    """Post/redirect/get: go to `location` (a path on this site) and show `text` there once.

    Without SECRET_KEY there are no browser sessions, so the message is simply dropped.
    """
    response = RedirectResponse(location, status_code=303)
    key = _secret_key(request)
    if key is not None:
        response.set_cookie(
            FLASH_COOKIE,
            _serializer(key).dumps([kind, text[:_FLASH_MAX_CHARS]]),
            max_age=_FLASH_MAX_AGE_SECONDS,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )
    return response
