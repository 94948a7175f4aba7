"""Cookies signed with SECRET_KEY: the session cookie and the sign-in form's CSRF nonce."""

from __future__ import annotations

import hashlib
import secrets

from itsdangerous import BadSignature, Signer, TimestampSigner

# The session id alone is unguessable and only its digest is stored; the signature is
# defence in depth: a cookie not made by this app is refused before any database lookup.
_SESSION_SALT = "coursedesk.session"
_LOGIN_NONCE_SALT = "coursedesk.login-nonce"
LOGIN_NONCE_MAX_AGE_SECONDS = 2 * 60 * 60


def _signer(secret_key: str, salt: str) -> Signer:
    return Signer(secret_key, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)


def _timestamp_signer(secret_key: str, salt: str) -> TimestampSigner:
    return TimestampSigner(
        secret_key, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256
    )


def sign_session_id(secret_key: str, session_id: str) -> str:
    return _signer(secret_key, _SESSION_SALT).sign(session_id).decode()


def session_id_from_cookie(secret_key: str | None, cookie: str) -> str | None:
    """The session id in a cookie this app signed, or None for anything else."""
    if secret_key is None:
        return None
    try:
        return _signer(secret_key, _SESSION_SALT).unsign(cookie).decode()
    except (BadSignature, UnicodeError):
        return None


def new_login_nonce(secret_key: str) -> tuple[str, str]:
    """A fresh nonce for the sign-in form and the signed cookie that carries it."""
    nonce = secrets.token_urlsafe(24)
    return nonce, _timestamp_signer(secret_key, _LOGIN_NONCE_SALT).sign(nonce).decode()


def login_nonce_from_cookie(secret_key: str, cookie: str) -> str | None:
    """The nonce in a sign-in cookie this app signed less than two hours ago."""
    try:
        value = _timestamp_signer(secret_key, _LOGIN_NONCE_SALT).unsign(
            cookie, max_age=LOGIN_NONCE_MAX_AGE_SECONDS
        )
    except (BadSignature, UnicodeError):
        return None
    return value.decode()
