"""Errors the database raises are the caller's or the server's, said so in the answer:
a value PostgreSQL cannot hold is a 400 that changes nothing, no free connection a 503."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine, text

from coursedesk.config import Settings
from coursedesk.db.engine import Database, create_app_engine
from coursedesk.web.app import create_app

NUL_REQUESTS = [
    ("GET", "/api/users/search", {"q": "an\x00na"}, None),
    ("GET", "/api/users", {"search": "a\x00b"}, None),
    ("GET", "/api/users", {"stream": "\x00"}, None),
    ("GET", "/api/messages/history", {"recipient_group": "\x00"}, None),
    ("PATCH", "/api/bookings/{booking}", None, {"referral_code": "\x00"}),
    ("PATCH", "/api/bookings/{booking}", None, {"course_stream": "PY\x00"}),
]


@pytest.fixture
def booking(sync_engine: Engine) -> int:
    with sync_engine.begin() as connection:
        booking_id: int = connection.scalar(
            text(
                "INSERT INTO bookings (user_id, course_id, course_stream, confirmed, referral_code)"
                " VALUES (77, 1, 'PY-1', 2, 'FRIEND') RETURNING id"
            )
        )
    return booking_id


def _bookings(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text("SELECT * FROM bookings"))]


@pytest.mark.parametrize(("method", "path", "params", "body"), NUL_REQUESTS)
async def test_a_nul_character_is_refused_with_400_and_changes_nothing(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    booking: int,
    method: str,
    path: str,
    params: dict[str, str] | None,
    body: dict[str, str] | None,
) -> None:
    before = _bookings(sync_engine)
    response = await client.request(
        method,
        path.format(booking=booking),
        params=params,
        json=body,
        headers=operator_headers,
    )
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["error"]
    assert _bookings(sync_engine) == before


@pytest.fixture
async def one_connection_app(
    settings: Settings, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    """The app with a pool of one connection that gives up waiting after a moment."""
    tight = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 0.3}
    )
    database = Database(create_app_engine(database_url, tight))
    app = create_app(tight, database=database)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, database
    await database.dispose()


async def test_no_free_connection_is_a_503_to_retry(
    one_connection_app: tuple[httpx.AsyncClient, Database], admin_headers: dict[str, str]
) -> None:
    client, database = one_connection_app
    async with database.primary.connect() as held:
        await held.execute(text("SELECT 1"))
        busy = await client.get("/api/stats", headers=admin_headers)
    assert busy.status_code == 503
    assert busy.json() == {"error": "the database is busy; try again shortly"}
    assert busy.headers["retry-after"] == "1"
    assert (await client.get("/api/stats", headers=admin_headers)).status_code == 200


async def test_no_page_loads_its_scripts_from_another_host(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc"):
        assert (await client.get(path)).status_code == 404
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "coursedesk"
