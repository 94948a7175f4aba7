"""A worker in this process against the stand-in: outcomes, pauses, schedules, cancel, delete."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
from broadcast_helpers import (
    RunWorker,
    add_many_users,
    figures_agree,
    rows,
    running_worker,
    scalar,
    send_broadcast,
    wait_for,
)
from sqlalchemy import Engine
from sqlalchemy import text as sql_text

from coursedesk.telegram.standin import BotApiStandin


def status_of(engine: Engine, message_id: int) -> str:
    return str(scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id))


def received_chats(standin: BotApiStandin) -> Counter[int]:
    return Counter(message.chat_id for message in standin.received())


async def test_every_outcome_is_recorded_and_figures_agree(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 2001, 300)
    standin.update_faults(
        {
            "seed": 7,
            "blocked_chats": [2005, 2010],
            "missing_chats": [2007],
            "server_error_rate": 0.2,
            "flood_rate": 0.01,
            "flood_retry_after": 1,
        }
    )
    created = await send_broadcast(
        client, operator_headers, text="Hello *there*", parse_mode="MarkdownV2",
        audience={"type": "all"},
    )  # fmt: skip
    message_id = created["message_id"]
    async with running_worker(start_worker):
        await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=60, what="sent")

    deliverable = set(range(2001, 2301)) - {2005, 2007, 2010}
    got = received_chats(standin)
    assert set(got) == deliverable
    assert set(got.values()) == {1}
    assert {m.text for m in standin.received()} == {"Hello *there*"}
    figures_agree(sync_engine, message_id)
    failed = {
        row.user_id: row.error
        for row in rows(
            sync_engine,
            "SELECT user_id, error FROM message_recipients "
            "WHERE message_id = :m AND delivery_status = 'failed'",
            m=message_id,
        )
    }
    assert set(failed) == {2005, 2007, 2010}
    assert "blocked" in failed[2005] and "chat not found" in failed[2007]
    blocked = rows(sync_engine, "SELECT user_id FROM bot_users WHERE is_blocked ORDER BY 1")
    assert [row.user_id for row in blocked] == [2005, 2010]

    calls = [c for c in standin.calls() if c.method == "sendMessage"]
    assert any(c.status == 429 for c in calls) and any(c.status >= 500 for c in calls)
    tries_not_429 = Counter(c.chat_id for c in calls if c.status != 429)
    attempts = dict(
        rows(
            sync_engine,
            "SELECT user_id, attempts FROM message_recipients WHERE message_id = :m",
            m=message_id,
        )
    )
    assert attempts == dict(tries_not_429)
    [message] = rows(
        sync_engine, "SELECT started_at, sent_at FROM message_history WHERE id = :m", m=message_id
    )
    assert message.started_at <= message.sent_at


async def test_a_429_pauses_every_worker(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 3001, 800)
    created = await send_broadcast(client, operator_headers, text="hi", audience={"type": "all"})
    in_flight = 16
    async with (
        running_worker(start_worker, in_flight=in_flight),
        running_worker(start_worker, in_flight=in_flight),
    ):
        await wait_for(lambda: len(standin.received()) >= 100, within=20, what="sending")
        standin.update_faults({"flood_rate": 1.0, "flood_retry_after": 2})
        await wait_for(
            lambda: any(c.status == 429 for c in standin.calls()), within=5, what="a 429"
        )
        standin.update_faults({"flood_rate": 0.0})

        def pause_ends() -> float:
            return float(
                scalar(
                    sync_engine,
                    "SELECT extract(epoch FROM paused_until) FROM broadcast_sender_state",
                )
            )

        await wait_for(lambda: pause_ends() > time.time() + 1, within=5, what="the pause")
        paused_at = pause_ends() - 2
        await asyncio.sleep(max(0.0, pause_ends() + 0.5 - time.time()))
        # Unpaused, the two workers would send some 650 messages in this window; only
        # those already on their way when the pause began may land in it (the stand-in
        # shares this process, so it may take them in late).
        during_pause = [
            c
            for c in standin.calls()
            if c.method == "sendMessage"
            and c.status == 200
            and paused_at + 0.25 < c.at < paused_at + 2
        ]
        assert len(during_pause) <= 2 * in_flight
        await wait_for(
            lambda: status_of(sync_engine, created["message_id"]) == "sent", within=30, what="sent"
        )
    assert set(received_chats(standin)) == set(range(3001, 3801))
    figures_agree(sync_engine, created["message_id"])
    tries_not_429 = Counter(
        c.chat_id for c in standin.calls() if c.method == "sendMessage" and c.status != 429
    )
    attempts = dict(
        rows(
            sync_engine,
            "SELECT user_id, attempts FROM message_recipients WHERE message_id = :m",
            m=created["message_id"],
        )
    )
    assert attempts == dict(tries_not_429)


async def test_a_scheduled_broadcast_goes_out_when_due(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 4001, 20)
    async with running_worker(start_worker, poll_seconds=30):
        due = datetime.now(UTC) + timedelta(seconds=2)
        created = await send_broadcast(
            client, operator_headers, text="later", audience={"type": "all"},
            scheduled_at=due.isoformat(),
        )  # fmt: skip
        message_id = created["message_id"]
        await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=10, what="sent")
    first = min(message.sent_at for message in standin.received())
    assert due.timestamp() <= first < due.timestamp() + 5
    assert len(standin.received()) == 20


async def test_cancelling_a_scheduled_broadcast_sends_nothing(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 5001, 20)
    async with running_worker(start_worker):
        due = datetime.now(UTC) + timedelta(seconds=1)
        created = await send_broadcast(
            client, operator_headers, text="never", audience={"type": "all"},
            scheduled_at=due.isoformat(),
        )  # fmt: skip
        cancel = await client.post(
            f"/api/messages/{created['message_id']}/cancel", headers=operator_headers
        )
        assert cancel.status_code == 200
        await asyncio.sleep(2)
    assert standin.received() == []
    assert status_of(sync_engine, created["message_id"]) == "cancelled"
    figures_agree(sync_engine, created["message_id"])


async def test_cancelling_while_sending_stops_the_rest(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 6001, 600)
    created = await send_broadcast(client, operator_headers, text="stop", audience={"type": "all"})
    message_id = created["message_id"]
    async with running_worker(start_worker, rate=100, in_flight=16):
        await wait_for(lambda: len(standin.received()) >= 50, within=20, what="sending")
        cancel = await client.post(f"/api/messages/{message_id}/cancel", headers=operator_headers)
        assert cancel.status_code == 200
        at_cancel = len(standin.received())
        await asyncio.sleep(1.5)
    delivered = received_chats(standin)
    assert len(delivered) - at_cancel <= 16
    assert set(delivered.values()) == {1}
    assert status_of(sync_engine, message_id) == "cancelled"
    figures_agree(sync_engine, message_id)
    statuses = dict(
        rows(
            sync_engine,
            "SELECT delivery_status, count(*) FROM message_recipients WHERE message_id = :m "
            "GROUP BY 1",
            m=message_id,
        )
    )
    assert statuses == {"sent": len(delivered), "cancelled": 600 - len(delivered)}
    again = await client.post(f"/api/messages/{message_id}/cancel", headers=operator_headers)
    assert again.status_code == 409


async def _send_to_all(
    client: httpx.AsyncClient, headers: dict[str, str], engine: Engine, start: RunWorker
) -> int:
    created = await send_broadcast(client, headers, text="oops", audience={"type": "all"})
    async with running_worker(start):
        await wait_for(
            lambda: status_of(engine, created["message_id"]) == "sent", within=20, what="sent"
        )
    return int(created["message_id"])


def _deletion_finished(engine: Engine, message_id: int) -> bool:
    query = "SELECT deleted_at FROM message_history WHERE id = :m"
    return scalar(engine, query, m=message_id) is not None


async def test_deleting_a_broadcast_removes_it_from_every_chat(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 7001, 40)
    message_id = await _send_to_all(client, operator_headers, sync_engine, start_worker)
    standin.update_faults({"missing_chats": [7003, 7004], "server_error_rate": 0.2, "seed": 3})
    answer = await client.post(f"/api/messages/{message_id}/delete", headers=operator_headers)
    assert answer.status_code == 202
    assert answer.json() == {"message_id": message_id, "deletion": "deleting", "queued": 40}
    busy = await client.post(f"/api/messages/{message_id}/delete", headers=operator_headers)
    assert busy.status_code == 409
    async with running_worker(start_worker):
        await wait_for(
            lambda: _deletion_finished(sync_engine, message_id),
            within=20,
            what="the deletion to finish",
        )
    detail = (await client.get(f"/api/messages/{message_id}", headers=operator_headers)).json()
    assert detail["deletion"] == "deleted"
    assert (detail["deleted_deliveries"], detail["delete_refused"]) == (38, 2)
    assert detail["successful_deliveries"] == 40
    assert {(d.chat_id, d.message_id) for d in standin.deleted()} == {
        (m.chat_id, m.message_id) for m in standin.received() if m.chat_id not in (7003, 7004)
    }
    refused = await client.get(
        f"/api/messages/{message_id}/recipients", params={"status": "sent"},
        headers=operator_headers,
    )  # fmt: skip
    assert [item["user_id"] for item in refused.json()["items"]] == [7003, 7004]
    assert all("not deleted" in item["error"] for item in refused.json()["items"])
    figures_agree(sync_engine, message_id)
    assert scalar(sync_engine, "SELECT count(*) FROM message_deletions") == 0
    assert (
        scalar(sync_engine, "SELECT count(*) FROM audit_log WHERE action = 'broadcast.delete'") == 1
    )


async def test_messages_too_old_to_delete_are_reported(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 8001, 10)
    message_id = await _send_to_all(client, operator_headers, sync_engine, start_worker)
    standin.update_faults({"clock_offset_seconds": 49 * 3600})
    await client.post(f"/api/messages/{message_id}/delete", headers=operator_headers)
    async with running_worker(start_worker):
        await wait_for(
            lambda: _deletion_finished(sync_engine, message_id),
            within=20,
            what="the deletion to finish",
        )
    detail = (await client.get(f"/api/messages/{message_id}", headers=operator_headers)).json()
    assert (detail["deleted_deliveries"], detail["delete_refused"]) == (0, 10)
    errors = {
        row.error
        for row in rows(
            sync_engine, "SELECT error FROM message_recipients WHERE message_id = :m", m=message_id
        )
    }
    assert errors == {"not deleted: Bad Request: message can't be deleted for everyone"}
    assert standin.deleted() == []


async def test_a_stopped_worker_gives_back_its_claims_and_another_finishes(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 9001, 400)
    created = await send_broadcast(client, operator_headers, text="hi", audience={"type": "all"})
    message_id = created["message_id"]
    first = await start_worker(rate=100)
    await wait_for(lambda: len(standin.received()) >= 100, within=20, what="sending")
    await first.stopped()
    held = scalar(
        sync_engine,
        "SELECT count(*) FROM message_recipients WHERE message_id = :m AND lease_owner IS NOT NULL",
        m=message_id,
    )
    assert held == 0
    sent = scalar(
        sync_engine,
        "SELECT count(*) FROM message_recipients "
        "WHERE message_id = :m AND delivery_status = 'sent'",
        m=message_id,
    )
    assert sent == len(standin.received())
    async with running_worker(start_worker):
        await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=20, what="sent")
    got = received_chats(standin)
    assert set(got) == set(range(9001, 9401)) and set(got.values()) == {1}
    figures_agree(sync_engine, message_id)


async def test_a_broadcast_that_cannot_be_read_keeps_no_other_from_going_out(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    """Its buttons were changed behind the API's back to something no worker can read."""
    add_many_users(sync_engine, 610_001, 3)
    broken, fine = [
        (await send_broadcast(client, operator_headers, text=text, audience={"type": "all"}))[
            "message_id"
        ]
        for text in ("first", "second")
    ]
    with sync_engine.begin() as connection:
        connection.execute(
            sql_text("""UPDATE message_history SET buttons = '[[{"nope": 1}]]' WHERE id = :m"""),
            {"m": broken},
        )
    async with running_worker(start_worker):
        await wait_for(
            lambda: (
                scalar(sync_engine, "SELECT status FROM message_history WHERE id = :m", m=fine)
                == "sent"
            ),
            within=30,
            what="the readable broadcast sent",
        )
    assert sorted(m.text for m in standin.received()) == ["second"] * 3
    assert scalar(sync_engine, "SELECT status FROM message_history WHERE id = :m", m=broken) == (
        "sending"
    )
