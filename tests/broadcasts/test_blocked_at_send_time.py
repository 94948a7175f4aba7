"""A user who blocks the bot after a broadcast was created is not sent it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from broadcast_helpers import (
    RunWorker,
    UserRow,
    add_many_users,
    add_users,
    figures_agree,
    rows,
    running_worker,
    scalar,
    send_broadcast,
    wait_for,
)
from sqlalchemy import Engine

from coursedesk.broadcasts.deliveries import NOT_SENT_BLOCKED
from coursedesk.telegram.standin import BotApiStandin


def _status(engine: Engine, message_id: int) -> str:
    return str(scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id))


def _recipients(engine: Engine, message_id: int) -> dict[int, tuple[str, str | None, int]]:
    found = rows(
        engine,
        "SELECT user_id, delivery_status, error, attempts FROM message_recipients "
        "WHERE message_id = :m",
        m=message_id,
    )
    return {row.user_id: (row.delivery_status, row.error, row.attempts) for row in found}


async def test_users_who_blocked_the_bot_after_the_broadcast_was_created_are_not_sent_to(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 13_001, 2)
    both = {"type": "users", "user_ids": [13_001, 13_002]}
    due = datetime.now(UTC) + timedelta(seconds=2)
    scheduled = await send_broadcast(
        client, operator_headers, text="later", audience=both, scheduled_at=due.isoformat()
    )
    only_blocked = await send_broadcast(
        client, operator_headers, text="now", audience={"type": "users", "user_ids": [13_002]}
    )
    assert (scheduled["total_recipients"], only_blocked["total_recipients"]) == (2, 1)
    # As the webhook records a private my_chat_member "kicked".
    add_users(sync_engine, [UserRow(13_002, blocked=True)])

    async with running_worker(start_worker):
        for created in (scheduled, only_blocked):
            await wait_for(
                lambda m=created["message_id"]: _status(sync_engine, m) == "sent",
                within=15,
                what="sent",
            )

    assert [m.chat_id for m in standin.received()] == [13_001]
    assert all(call.chat_id != 13_002 for call in standin.calls())
    assert _recipients(sync_engine, scheduled["message_id"]) == {
        13_001: ("sent", None, 1),
        13_002: ("failed", NOT_SENT_BLOCKED, 0),
    }
    assert _recipients(sync_engine, only_blocked["message_id"]) == {
        13_002: ("failed", NOT_SENT_BLOCKED, 0)
    }
    for created in (scheduled, only_blocked):
        figures_agree(sync_engine, created["message_id"])
    detail = (
        await client.get(f"/api/messages/{scheduled['message_id']}", headers=operator_headers)
    ).json()
    assert (detail["successful_deliveries"], detail["failed_deliveries"]) == (1, 1)
    assert (
        scalar(sync_engine, "SELECT count(*) FROM message_recipients WHERE lease_owner IS NOT NULL")
        == 0
    )
