"""DATABASE_REPLICA_URL: analytics and student reads go to the replica, writes never do.

The replica here is a second database holding other rows than the primary, so every
answer tells which of the two served it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_token
from coursedesk.analytics.folding import fold_pending
from coursedesk.broadcasts.models import MessageHistory
from coursedesk.config import Settings
from coursedesk.db.engine import Database, create_tool_engine, open_database
from coursedesk.sources.models import Booking
from coursedesk.web.app import create_app

PRIMARY_USERS = (1,)
REPLICA_USERS = (11, 12, 13)


def add_bookings(engine: Engine, user_ids: tuple[int, ...]) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(Booking),
            [
                {"user_id": user_id, "confirmed": 1, "course_stream": "spring"}
                for user_id in user_ids
            ],
        )
    fold_pending(engine)


def read_one(engine: Engine, statement: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(statement).scalar_one()


def read_row(engine: Engine, statement: Any) -> tuple[Any, ...]:
    with engine.connect() as connection:
        return tuple(connection.execute(statement).one())


@pytest.fixture
def replica_engine(replica_database_url: str, settings: Settings) -> Iterator[Engine]:
    engine = create_tool_engine(replica_database_url, settings)
    yield engine
    engine.dispose()


@pytest.fixture
async def replicated(
    settings: Settings, replica_database_url: str, sync_engine: Engine, replica_engine: Engine
) -> AsyncIterator[Database]:
    """The app's engines as DATABASE_REPLICA_URL makes them, over two different data sets."""
    add_bookings(sync_engine, PRIMARY_USERS)
    add_bookings(replica_engine, REPLICA_USERS)
    database = open_database(
        settings.model_copy(update={"database_replica_url": replica_database_url})
    )
    yield database
    await database.dispose()


@pytest.fixture
async def client(settings: Settings, replicated: Database) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, database=replicated)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


@pytest.fixture
async def headers(replicated: Database) -> dict[str, str]:
    """An admin's token, kept where tokens live: on the primary."""
    async with replicated.transaction() as session:
        _, token = await create_token(session, Role.admin, "replica-test", created_by="tests")
    return {"Authorization": f"Bearer {token}"}


async def get_json(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    answer = await client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_analytics_and_student_reads_come_from_the_replica(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert (await get_json(client, "/api/stats", headers))["total_users"] == len(REPLICA_USERS)
    streams = await get_json(client, "/api/courses/streams", headers)
    assert streams["items"][0]["unique_users"] == len(REPLICA_USERS)
    users = await get_json(client, "/api/users", headers)
    assert sorted(user["user_id"] for user in users["items"]) == list(REPLICA_USERS)
    block = await client.get("/dashboard/blocks/stats", headers=headers)
    assert block.status_code == 200 and 'data-figure="total_users">3<' in block.text.replace(
        " ", ""
    )


async def test_edits_and_broadcasts_write_the_primary_only(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    sync_engine: Engine,
    replica_engine: Engine,
) -> None:
    booking_id = read_one(sync_engine, select(Booking.id).where(Booking.user_id == 1))
    edit = await client.patch(f"/api/bookings/{booking_id}", json={"confirmed": 2}, headers=headers)
    assert edit.status_code == 200, edit.text
    moved = await client.put(
        "/api/users/1/stream",
        json={"course_stream": "autumn", "create_stream": True},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    sent = await client.post(
        "/api/messages/send",
        json={"text": "Hello", "audience": {"type": "users", "user_ids": [1]}},
        headers=headers,
    )
    assert sent.status_code == 201, sent.text

    booking = select(Booking.confirmed, Booking.course_stream).where(Booking.id == booking_id)
    assert read_row(sync_engine, booking) == (2, "autumn")
    assert read_row(replica_engine, booking) == (1, "spring")
    messages = select(func.count()).select_from(MessageHistory)
    assert (read_one(sync_engine, messages), read_one(replica_engine, messages)) == (1, 0)


async def test_the_replica_engine_refuses_to_write(replicated: Database) -> None:
    assert replicated.replica_sessions is not None
    async with replicated.replica_sessions() as session:
        with pytest.raises(DBAPIError, match="read-only transaction"):
            await session.execute(text("INSERT INTO courses (id, name) VALUES (9, 'x')"))


async def test_query_and_pool_figures_name_the_replica(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await get_json(client, "/api/stats", headers)
    report = await get_json(client, "/api/system/queries", headers)
    assert {query["database"] for query in report["queries"]} == {"primary", "replica"}
    stats = [query for query in report["queries"] if "total_users" in query["statement"]]
    assert [query["database"] for query in stats] == ["replica"]
    assert [pool["database"] for pool in report["pools"]] == ["primary", "replica"]
