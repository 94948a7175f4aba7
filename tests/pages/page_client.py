"""Signing in as staff through /login, the way a browser does, for the page tests."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx

from coursedesk.accounts.roles import Role

PASSWORD = "correct horse battery staple"
STAFF_NAMES = {Role.viewer: "vera", Role.operator: "olga", Role.admin: "ada"}
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

SignIn = Callable[[Role], Awaitable[httpx.AsyncClient]]


def form_token(page: httpx.Response) -> str:
    """The CSRF token of the first form on a page."""
    found = _FORM_TOKEN.search(page.text)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)
