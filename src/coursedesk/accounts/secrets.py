"""Password hashing (argon2), random tokens stored only as digests, and comparing secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

TOKEN_PREFIX = "cd_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps a login for an unknown user as slow as for a known one."""
    return _hasher.hash("not a real password")


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """The stored form of a token or session id: unguessable tokens need no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def secrets_match(given: str, expected: str) -> bool:
    """Whether a secret sent by a client equals the expected one, in constant time, so the
    answer's timing tells nothing about the secret. Compared as UTF-8 bytes: compare_digest
    refuses str with non-ASCII characters, which anyone may send."""
    return hmac.compare_digest(given.encode(), expected.encode())
