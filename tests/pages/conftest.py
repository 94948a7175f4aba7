"""Page fixtures: staff signed in through /login, each in a browser-like client of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from page_client import PASSWORD, STAFF_NAMES, SignIn, form_token

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_user
from coursedesk.db.engine import Database


@pytest.fixture
async def signed_in(app: FastAPI, database: Database) -> AsyncIterator[SignIn]:
    """A client signed in as a new staff user of the role given, as a browser would be."""
    clients: list[httpx.AsyncClient] = []

    async def sign_in(role: Role) -> httpx.AsyncClient:
        async with database.transaction() as session:
            await create_user(session, STAFF_NAMES[role], PASSWORD, role, created_by="tests")
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        form = await client.get("/login")
        answer = await client.post(
            "/login",
            data={
                "username": STAFF_NAMES[role],
                "password": PASSWORD,
                "csrf_token": form_token(form),
            },
        )
        assert answer.status_code == 303, answer.text
        return client

    yield sign_in
    for client in clients:
        await client.aclose()
