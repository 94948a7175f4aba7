"""Audiences resolved exactly on a hand-built set of users: groups, ids, blocked, dry runs."""

from __future__ import annotations

import httpx
import pytest
from broadcast_helpers import UserRow, add_users, figures_agree, rows, scalar, send_broadcast
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coursedesk.broadcasts import audiences
from coursedesk.broadcasts.audiences import AllUsers
from coursedesk.broadcasts.service import create_broadcast
from coursedesk.db.engine import Database

CONFIRMED, PENDING, CANCELLED = 2, 1, -1

USERS = [
    UserRow(1, "alice", bookings=[("A", CONFIRMED)]),
    UserRow(2, "bob", bookings=[("A", PENDING), ("B", CANCELLED)]),
    UserRow(3, "carol", bookings=[("B", CANCELLED)]),
    UserRow(4, "dave", free_lesson=True),
    UserRow(5, event=True),
    UserRow(6, "erin", bookings=[("A", CONFIRMED)], blocked=True),
    UserRow(7, "frank", bookings=[("A", CANCELLED), ("C", PENDING)]),
    UserRow(8, "grace", bookings=[("C", CONFIRMED), ("C", PENDING)], event=True),
]


@pytest.fixture
def users(sync_engine: Engine) -> None:
    add_users(sync_engine, USERS)


def recipients_of(engine: Engine, message_id: int) -> dict[int, str | None]:
    found = rows(
        engine,
        "SELECT user_id, username, delivery_status FROM message_recipients "
        "WHERE message_id = :m ORDER BY user_id",
        m=message_id,
    )
    assert {row.delivery_status for row in found} == {"pending"}
    return {row.user_id: row.username for row in found}


@pytest.mark.parametrize(
    ("audience", "expected", "group"),
    [
        ({"type": "all"}, {1, 2, 3, 4, 5, 7, 8}, "all"),
        ({"type": "non_course"}, {2, 3, 4, 5, 7}, "non_course"),
        ({"type": "stream", "stream": "A"}, {1, 2}, "stream:A"),
        ({"type": "stream", "stream": "C"}, {7, 8}, "stream:C"),
    ],
)
async def test_group_audiences_leave_out_blocked_users(
    users: None,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    audience: dict[str, str],
    expected: set[int],
    group: str,
) -> None:
    answer = await send_broadcast(client, operator_headers, text="Hello", audience=audience)
    assert answer["total_recipients"] == len(expected)
    assert answer["invalid_user_ids"] == []
    assert answer["status"] == "scheduled"
    assert set(recipients_of(sync_engine, answer["message_id"])) == expected
    [message] = rows(
        sync_engine,
        "SELECT recipient_type, recipient_group, total_recipients, pending_deliveries "
        "FROM message_history WHERE id = :m",
        m=answer["message_id"],
    )
    assert tuple(message) == ("group", group, len(expected), len(expected))


async def test_listed_users_are_deduplicated_and_unknown_ids_reported(
    users: None, client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    answer = await send_broadcast(
        client,
        operator_headers,
        text="Hi",
        audience={"type": "users", "user_ids": [8, 1, 999, 6, 1, 4, 998, 999]},
    )
    assert answer["invalid_user_ids"] == [998, 999]
    assert answer["total_recipients"] == 3
    assert recipients_of(sync_engine, answer["message_id"]) == {1: "alice", 4: "dave", 8: "grace"}
    group = scalar(
        sync_engine,
        "SELECT recipient_type || '/' || coalesce(recipient_group, '-') FROM message_history "
        "WHERE id = :m",
        m=answer["message_id"],
    )
    assert group == "individual/-"


async def test_a_dry_run_counts_and_writes_nothing(
    users: None, client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    audit_before = scalar(sync_engine, "SELECT count(*) FROM audit_log")
    response = await client.post(
        "/api/messages/send",
        json={
            "text": "Hi",
            "audience": {"type": "users", "user_ids": [1, 2, 6, 404]},
            "dry_run": True,
        },
        headers=operator_headers,
    )
    assert response.status_code == 200
    assert response.json() == {"total_recipients": 2, "invalid_user_ids": [404]}
    all_users = await client.post(
        "/api/messages/send",
        json={"text": "Hi", "audience": {"type": "all"}, "dry_run": True},
        headers=operator_headers,
    )
    assert all_users.json()["total_recipients"] == 7
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0
    assert scalar(sync_engine, "SELECT count(*) FROM message_recipients") == 0
    assert scalar(sync_engine, "SELECT count(*) FROM audit_log") == audit_before


@pytest.mark.parametrize(
    "audience",
    [
        {"type": "stream", "stream": "B"},
        {"type": "stream", "stream": "nobody-here"},
        {"type": "users", "user_ids": [6]},
        {"type": "users", "user_ids": [404, 405]},
    ],
)
async def test_an_audience_with_nobody_in_it_is_refused(
    users: None,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    audience: dict[str, object],
) -> None:
    response = await client.post(
        "/api/messages/send", json={"text": "Hi", "audience": audience}, headers=operator_headers
    )
    assert response.status_code == 400
    assert "nobody would receive" in response.json()["error"]
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0
    assert scalar(sync_engine, "SELECT count(*) FROM message_recipients") == 0


async def test_creating_a_broadcast_is_audited(
    users: None, client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    answer = await send_broadcast(client, operator_headers, text="Hi", audience={"type": "all"})
    [entry] = rows(
        sync_engine,
        "SELECT actor, target_type, target_id, after FROM audit_log "
        "WHERE action = 'broadcast.create'",
    )
    assert entry.actor == "token:test-operator"
    assert (entry.target_type, entry.target_id) == ("message", str(answer["message_id"]))
    assert entry.after["total_recipients"] == 7
    assert entry.after["audience"] == {"type": "all"}


@pytest.mark.parametrize("may_skip_row_checks", [True, False])
async def test_recipients_are_counted_and_checked_whichever_way_they_are_inserted(
    users: None,
    database: Database,
    sync_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    may_skip_row_checks: bool,
) -> None:
    """A role that may not skip the foreign-key checks gets the plain insert, same result."""
    async with database.transaction() as session:
        role_may = await audiences.may_skip_row_triggers(session)
    if may_skip_row_checks and not role_may:
        pytest.skip("the test database's role may not set session_replication_role")
    if not may_skip_row_checks:

        async def may_not(session: AsyncSession) -> bool:
            return False

        monkeypatch.setattr(audiences, "may_skip_row_triggers", may_not)
    async with database.transaction() as session:
        created = await create_broadcast(
            session, text="Hi", audience=AllUsers(type="all"), actor="test"
        )
        role = await session.scalar(text("SHOW session_replication_role"))
    assert role == "origin"
    assert created.total_recipients == 7
    figures_agree(sync_engine, created.message_id)
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO message_recipients (message_id, user_id) VALUES (:m, 1)"),
            {"m": created.message_id + 1},
        )
    with sync_engine.begin() as connection:
        connection.execute(
            text("DELETE FROM message_history WHERE id = :m"), {"m": created.message_id}
        )
    assert scalar(sync_engine, "SELECT count(*) FROM message_recipients") == 0
