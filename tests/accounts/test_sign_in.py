"""Signing in and out through /login: hashes, cookies, sessions, redirects and the audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.accounts.secrets import verify_password
from coursedesk.config import Settings
from coursedesk.db.engine import Database
from coursedesk.web.app import create_app
from coursedesk.web.deps import SESSION_COOKIE

Fixture = Any


def _set_cookie(response: httpx.Response, name: str) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    return header


def _use_session_cookie(client: httpx.AsyncClient, value: str) -> None:
    """Make `value` the browser's one session cookie, as a planted or replayed one would be."""
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, value, domain="testserver.local")


def _attributes(set_cookie: str) -> set[str]:
    return {part.strip().lower() for part in set_cookie.split(";")[1:]}


@pytest.fixture
async def https_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


async def test_passwords_are_stored_as_argon2_hashes(
    make_staff: Fixture, sync_engine: Engine
) -> None:
    staff = await make_staff("Alice", Role.operator)
    with sync_engine.connect() as connection:
        username, stored = connection.execute(
            text("SELECT username, password_hash FROM staff_users")
        ).one()
    assert username == "alice"
    assert stored.startswith("$argon2id$")
    assert staff.password not in stored
    assert verify_password(stored, staff.password)


async def test_login_page_has_the_form(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for field in ('name="username"', 'name="password"', 'name="csrf_token"'):
        assert field in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert page.headers["cache-control"] == "no-store"


async def test_wrong_password_stays_on_login_with_a_message(
    client: httpx.AsyncClient, make_staff: Fixture, login: Fixture, sync_engine: Engine
) -> None:
    await make_staff("alice")
    response = await login(client, "alice", "not the password")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert 'name="password"' in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    with sync_engine.connect() as connection:
        row = connection.execute(
            text("SELECT actor, details FROM audit_log WHERE action = 'auth.login_failed'")
        ).one()
    assert row.actor == "anonymous"
    assert row.details["username"] == "alice"
    assert "not the password" not in str(row.details)


async def test_unknown_user_gets_the_same_answer(
    client: httpx.AsyncClient, make_staff: Fixture, login: Fixture
) -> None:
    await make_staff("alice")
    wrong_password = await login(client, "alice", "not the password")
    unknown_user = await login(client, "mallory", "not the password")
    assert unknown_user.status_code == wrong_password.status_code == 401
    assert "Wrong username or password." in unknown_user.text


async def test_right_password_signs_in_with_a_safe_cookie(
    client: httpx.AsyncClient, make_staff: Fixture, login: Fixture, sync_engine: Engine
) -> None:
    await make_staff("alice", Role.operator)
    response = await login(client, "ALICE", "correct horse battery staple")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = _set_cookie(response, SESSION_COOKIE)
    assert {"httponly", "samesite=lax", "path=/"} <= _attributes(cookie)
    assert "secure" not in _attributes(cookie)

    me = await client.get("/api/me")
    assert me.status_code == 200
    body = me.json()
    assert (body["name"], body["role"], body["via"]) == ("alice", "operator", "session")
    assert body["csrf_token"]
    with sync_engine.connect() as connection:
        actors = connection.execute(
            text("SELECT actor FROM audit_log WHERE action = 'auth.login'")
        ).scalars()
        assert list(actors) == ["alice"]


async def test_cookie_is_secure_over_https(
    https_client: httpx.AsyncClient, make_staff: Fixture, login: Fixture
) -> None:
    await make_staff("alice")
    response = await login(https_client, "alice", "correct horse battery staple")
    assert response.status_code == 303
    assert {"httponly", "secure", "samesite=lax"} <= _attributes(
        _set_cookie(response, SESSION_COOKIE)
    )


async def test_every_sign_in_gets_a_new_session_id(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture, sync_engine: Engine
) -> None:
    staff = await make_staff("alice")
    await signed_in(client, staff)
    first = client.cookies[SESSION_COOKIE]
    await signed_in(client, staff)
    second = client.cookies[SESSION_COOKIE]
    assert first != second

    # Signing in again from the same browser ends the session it had before.
    _use_session_cookie(client, first)
    assert (await client.get("/api/me")).status_code == 401
    _use_session_cookie(client, second)
    assert (await client.get("/api/me")).status_code == 200
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM web_sessions")) == 1


async def test_a_planted_session_id_is_not_taken_over(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture
) -> None:
    staff = await make_staff("alice")
    _use_session_cookie(client, "planted-by-an-attacker")
    assert (await client.get("/api/me")).status_code == 401
    await signed_in(client, staff)
    assert client.cookies[SESSION_COOKIE] != "planted-by-an-attacker"


async def test_a_cookie_with_a_forged_signature_is_refused(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture
) -> None:
    await signed_in(client, await make_staff("alice"))
    session_id, _, signature = client.cookies[SESSION_COOKIE].rpartition(".")
    forged = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    _use_session_cookie(client, f"{session_id}.{forged}")
    assert (await client.get("/api/me")).status_code == 401
    _use_session_cookie(client, session_id)
    assert (await client.get("/api/me")).status_code == 401


async def test_logout_ends_the_session(
    client: httpx.AsyncClient,
    make_staff: Fixture,
    signed_in: Fixture,
    page_form_token: Fixture,
    sync_engine: Engine,
) -> None:
    await signed_in(client, await make_staff("alice"))
    cookie = client.cookies[SESSION_COOKIE]
    home = await client.get("/")
    assert home.status_code == 200

    response = await client.post("/logout", data={"csrf_token": page_form_token(home)})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"

    _use_session_cookie(client, cookie)
    assert (await client.get("/api/me")).status_code == 401
    page = await client.get("/")
    assert page.status_code == 303 and page.headers["location"] == "/login"
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM web_sessions")) == 0
        assert connection.scalar(
            text("SELECT actor FROM audit_log WHERE action = 'auth.logout'")
        ) == ("alice")


async def test_home_page_shows_who_is_signed_in(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture
) -> None:
    anonymous = await client.get("/")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login"

    await signed_in(client, await make_staff("alice", Role.viewer))
    page = await client.get("/")
    assert page.status_code == 200
    assert "alice" in page.text and "viewer" in page.text
    assert 'action="/logout"' in page.text


@pytest.mark.parametrize(
    ("next_page", "location"),
    [
        ("/users?status=pending", "/users?status=pending"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
async def test_sign_in_goes_on_to_a_local_next_page_only(
    client: httpx.AsyncClient,
    make_staff: Fixture,
    login: Fixture,
    next_page: str,
    location: str,
) -> None:
    await make_staff("alice")
    response = await login(client, "alice", "correct horse battery staple", next=next_page)
    assert response.status_code == 303
    assert response.headers["location"] == location


async def test_pages_send_anonymous_visitors_to_login_with_next(
    client: httpx.AsyncClient, make_staff: Fixture, login: Fixture
) -> None:
    anonymous = await client.get("/", params={"range": "7"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2F%3Frange%3D7"

    await make_staff("alice")
    form = await client.get(anonymous.headers["location"])
    assert 'name="next" value="/?range=7"' in form.text


async def test_empty_fields_are_asked_for_again(
    client: httpx.AsyncClient, login: Fixture, sync_engine: Engine
) -> None:
    response = await login(client, "  ", "")
    assert response.status_code == 400
    assert "Enter your username and password." in response.text
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM login_attempts")) == 0


async def test_api_me_for_a_token_has_no_csrf_token(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    me = await client.get("/api/me", headers=operator_headers)
    assert me.status_code == 200
    assert me.json() == {
        "name": "test-operator",
        "role": "operator",
        "via": "token",
        "csrf_token": None,
    }


async def test_without_a_secret_key_signing_in_is_disabled(
    settings: Settings, database: Database, make_staff: Fixture
) -> None:
    await make_staff("alice")
    application = create_app(settings.model_copy(update={"secret_key": None}), database=database)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            page = await http.get("/login")
            assert page.status_code == 503
            assert "SECRET_KEY is not set" in page.text
            attempt = await http.post(
                "/login", data={"username": "alice", "password": "correct horse battery staple"}
            )
            assert attempt.status_code == 503
            assert SESSION_COOKIE not in http.cookies
