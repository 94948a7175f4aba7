"""Account fixtures: staff users made through the service, and signing in through /login."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_user
from coursedesk.db.engine import Database

PASSWORD = "correct horse battery staple"
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Staff:
    username: str
    password: str
    role: Role


MakeStaff = Callable[..., Awaitable[Staff]]


@pytest.fixture
def make_staff(database: Database) -> MakeStaff:
    """Add a staff user (committed) and answer their credentials."""

    async def make(
        username: str = "alice", role: Role = Role.admin, password: str = PASSWORD
    ) -> Staff:
        async with database.transaction() as session:
            await create_user(session, username, password, role, created_by="tests")
        return Staff(username, password, role)

    return make


def form_token(page: httpx.Response) -> str:
    found = _FORM_TOKEN.search(page.text)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture
def page_form_token() -> Callable[[httpx.Response], str]:
    """The CSRF token in the form of a page."""
    return form_token


Login = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def login() -> Login:
    """Open /login on `client` and post its form, as a browser does."""

    async def post_form(
        client: httpx.AsyncClient, username: str, password: str, **fields: str
    ) -> httpx.Response:
        page = await client.get("/login")
        assert page.status_code == 200
        data = {"username": username, "password": password, "csrf_token": form_token(page)}
        return await client.post("/login", data=data | fields)

    return post_form


SignIn = Callable[[httpx.AsyncClient, Staff], Awaitable[httpx.Response]]


@pytest.fixture
def signed_in(login: Login) -> SignIn:
    """Sign `staff` in on `client`, asserting that it worked."""

    async def run(client: httpx.AsyncClient, staff: Staff) -> httpx.Response:
        response = await login(client, staff.username, staff.password)
        assert response.status_code == 303, response.text
        return response

    return run
