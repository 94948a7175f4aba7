"""CSRF: cookie-borne mutations need the session's token; the sign-in form needs its nonce."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine, text

from coursedesk.web.deps import CSRF_HEADER, SESSION_COOKIE

Fixture = Any
DRY_RUN = {"sql": "SELECT 1", "description": "csrf check", "dry_run": True}


async def _session_csrf_token(client: httpx.AsyncClient) -> str:
    me = await client.get("/api/me")
    assert me.status_code == 200
    token: str = me.json()["csrf_token"]
    return token


async def test_cookie_mutation_without_the_token_is_refused(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture
) -> None:
    await signed_in(client, await make_staff("alice"))
    response = await client.post("/api/db-migrate", json=DRY_RUN)
    assert response.status_code == 403
    assert response.json() == {"error": "missing or wrong CSRF token"}


async def test_cookie_mutation_with_a_wrong_token_is_refused(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture, sync_engine: Engine
) -> None:
    await signed_in(client, await make_staff("alice"))
    token = await _session_csrf_token(client)
    response = await client.post(
        "/api/db-migrate", json=DRY_RUN, headers={CSRF_HEADER: token[:-1] + "x"}
    )
    assert response.status_code == 403
    with sync_engine.connect() as connection:
        assert (
            connection.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'db.migrate'"))
            == 0
        )


async def test_cookie_mutation_with_the_token_goes_through(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture
) -> None:
    await signed_in(client, await make_staff("alice"))
    token = await _session_csrf_token(client)
    response = await client.post("/api/db-migrate", json=DRY_RUN, headers={CSRF_HEADER: token})
    assert response.status_code == 200
    assert response.json()["dry_run"] is True


async def test_a_token_of_another_session_does_not_fit(
    app: Any, client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture
) -> None:
    staff = await make_staff("alice")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        await signed_in(other, staff)
        other_token = await _session_csrf_token(other)
    await signed_in(client, staff)
    response = await client.post(
        "/api/db-migrate", json=DRY_RUN, headers={CSRF_HEADER: other_token}
    )
    assert response.status_code == 403


async def test_bearer_tokens_need_no_csrf_token(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post("/api/db-migrate", json=DRY_RUN, headers=admin_headers)
    assert response.status_code == 200


async def test_logout_form_needs_the_token(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture
) -> None:
    await signed_in(client, await make_staff("alice"))
    refused = await client.post("/logout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert (await client.get("/api/me")).status_code == 200

    token = await _session_csrf_token(client)
    response = await client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert (await client.get("/api/me")).status_code == 401


async def test_sign_in_form_without_its_nonce_is_refused(
    app: Any,
    client: httpx.AsyncClient,
    make_staff: Fixture,
    page_form_token: Fixture,
    sync_engine: Engine,
) -> None:
    staff = await make_staff("alice")
    credentials = {"username": staff.username, "password": staff.password}

    no_nonce = await client.post("/login", data=credentials)
    assert no_nonce.status_code == 403
    assert "The sign-in form had expired" in no_nonce.text

    # A nonce fetched by another browser (an attacker's) does not fit this browser's cookie.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as attacker:
        foreign_nonce = page_form_token(await attacker.get("/login"))
    await client.get("/login")
    cross_site = await client.post("/login", data=credentials | {"csrf_token": foreign_nonce})
    assert cross_site.status_code == 403

    assert SESSION_COOKIE not in client.cookies
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM web_sessions")) == 0
        assert connection.scalar(text("SELECT count(*) FROM login_attempts")) == 0


async def test_the_login_nonce_cookie_is_strict_and_http_only(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    [cookie] = page.headers.get_list("set-cookie")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/login"} <= attributes
    again = await client.get("/login")
    assert "set-cookie" not in again.headers, "an open form in another tab must stay valid"


async def test_a_non_ascii_token_is_refused_not_an_error(
    client: httpx.AsyncClient, make_staff: Fixture, signed_in: Fixture
) -> None:
    await signed_in(client, await make_staff("alice"))
    response = await client.post("/api/db-migrate", json=DRY_RUN, headers={CSRF_HEADER: b"\xe9"})
    assert response.status_code == 403
    assert response.json() == {"error": "missing or wrong CSRF token"}


async def test_a_non_ascii_sign_in_nonce_is_refused_not_an_error(
    client: httpx.AsyncClient, make_staff: Fixture
) -> None:
    staff = await make_staff("alice")
    await client.get("/login")
    response = await client.post(
        "/login",
        data={"username": staff.username, "password": staff.password, "csrf_token": "é"},
    )
    assert response.status_code == 403
    assert "The sign-in form had expired" in response.text
    assert SESSION_COOKIE not in client.cookies
