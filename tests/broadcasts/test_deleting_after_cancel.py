"""Deleting reaches every delivered message: sends that land after a cancel, user_ids <= 0."""

from __future__ import annotations

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
from sqlalchemy import Engine, text

from coursedesk.broadcasts import deletions, deliveries, scheduler
from coursedesk.broadcasts.deletions import DeletionOutcome
from coursedesk.broadcasts.deliveries import DeliveryOutcome
from coursedesk.db.engine import Database
from coursedesk.telegram.standin import BotApiStandin


def _deletion_finished(engine: Engine, message_id: int) -> bool:
    query = "SELECT deleted_at FROM message_history WHERE id = :m"
    return scalar(engine, query, m=message_id) is not None


def _status(engine: Engine, message_id: int) -> str:
    return str(scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id))


def _in_chats(standin: BotApiStandin) -> set[tuple[int, int]]:
    return {(m.chat_id, m.message_id) for m in standin.received()}


def _deleted(standin: BotApiStandin) -> set[tuple[int, int]]:
    return {(d.chat_id, d.message_id) for d in standin.deleted()}


async def test_sends_landing_after_cancel_and_delete_are_deleted_before_it_reports_deleted(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    database: Database,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    # Every send takes 3 s to answer, longer than a lease: the worker always has sends on
    # their way, and must keep their leases while the deletion is quick to do the rest.
    standin.update_faults({"latency_ms": 3000})
    add_many_users(sync_engine, 10_001, 400)
    created = await send_broadcast(client, operator_headers, text="oops", audience={"type": "all"})
    message_id = created["message_id"]
    async with running_worker(start_worker, rate=100, in_flight=16, lease_seconds=1.0):
        await wait_for(lambda: len(standin.received()) >= 24, within=20, what="sending")
        cancel = await client.post(f"/api/messages/{message_id}/cancel", headers=operator_headers)
        assert cancel.status_code == 200
        standin.update_faults({"latency_ms": 0})
        async with database.primary.connect() as connection:
            under_way = await deliveries.sends_under_way(connection, message_id)
        delete = await client.post(f"/api/messages/{message_id}/delete", headers=operator_headers)
        assert delete.status_code == 202
        await wait_for(
            lambda: _deletion_finished(sync_engine, message_id),
            within=30,
            what="the deletion to finish",
        )
        # Reported deleted: every message that reached a chat is gone from it already.
        assert _deleted(standin) == _in_chats(standin)

    at_cancel = cancel.json()
    detail = (await client.get(f"/api/messages/{message_id}", headers=operator_headers)).json()
    landed_late = detail["successful_deliveries"] - at_cancel["successful_deliveries"]
    assert landed_late > 0, "no send landed after the cancel: the test proves nothing"
    assert landed_late <= 16 and under_way > 0
    assert detail["successful_deliveries"] > delete.json()["queued"]
    assert detail["deletion"] == "deleted"
    in_chats = len(_in_chats(standin))
    assert detail["deleted_deliveries"] == detail["successful_deliveries"] == in_chats
    assert detail["cancelled_deliveries"] == at_cancel["cancelled_deliveries"] - landed_late
    figures_agree(sync_engine, message_id)
    assert scalar(sync_engine, "SELECT count(*) FROM message_deletions") == 0


async def test_recipients_with_a_user_id_of_zero_or_below_are_deleted_too(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, -3, 7)
    created = await send_broadcast(client, operator_headers, text="oops", audience={"type": "all"})
    message_id = created["message_id"]
    async with running_worker(start_worker):
        await wait_for(lambda: _status(sync_engine, message_id) == "sent", within=20, what="sent")
        assert {m.chat_id for m in standin.received()} == set(range(-3, 4))
        answer = await client.post(f"/api/messages/{message_id}/delete", headers=operator_headers)
        assert answer.json()["queued"] == 7
        await wait_for(
            lambda: _deletion_finished(sync_engine, message_id),
            within=20,
            what="the deletion to finish",
        )
    assert _deleted(standin) == _in_chats(standin)
    statuses = rows(
        sync_engine,
        "SELECT DISTINCT delivery_status FROM message_recipients WHERE message_id = :m",
        m=message_id,
    )
    assert [row.delivery_status for row in statuses] == ["deleted"]
    figures_agree(sync_engine, message_id)


async def test_a_deletion_waits_for_a_leased_send_and_reopens_for_one_recorded_late(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    database: Database,
) -> None:
    """The writer's and the finishing side, step by step, with a worker that stalls."""
    add_many_users(sync_engine, 12_001, 2)
    created = await send_broadcast(
        client, operator_headers, text="hi", audience={"type": "users", "user_ids": [12001, 12002]}
    )
    message_id = created["message_id"]
    engine = database.primary
    owner = "stalled-worker"
    async with engine.begin() as connection:
        await scheduler.start_due_broadcasts(connection)
    async with engine.begin() as connection:
        first, second = sorted(
            await deliveries.claim_due_recipients(
                connection, message_id, owner=owner, limit=2, lease=60
            ),
            key=lambda claimed: claimed.user_id,
        )
    async with engine.begin() as connection:
        await deliveries.record_outcomes(
            connection,
            [DeliveryOutcome(first.recipient_id, message_id, "sent", 1, telegram_message_id=7)],
            [],
            owner=owner,
        )
    cancel = await client.post(f"/api/messages/{message_id}/cancel", headers=operator_headers)
    assert cancel.json()["cancelled_deliveries"] == 1
    delete = await client.post(f"/api/messages/{message_id}/delete", headers=operator_headers)
    assert delete.json()["queued"] == 1

    async with engine.begin() as connection:
        assert not await deletions.queue_next_chunk(connection, message_id, size=10)
    async with engine.begin() as connection:
        [claimed] = await deletions.claim_due_deletions(
            connection, message_id, owner=owner, limit=10, lease=60
        )
    async with engine.begin() as connection:
        deleted = DeletionOutcome(claimed.recipient_id, message_id, True, True, 1)
        # The second send is still on its way under a live lease: not finished yet.
        assert await deletions.record_outcomes(connection, [deleted], owner=owner) == []
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE message_recipients SET lease_expires_at = now() - interval '1 second' "
                "WHERE id = :r"
            ),
            {"r": second.recipient_id},
        )
    async with engine.begin() as connection:
        assert await deletions.finish_deletions(connection, [message_id]) == [message_id]

    # The worker had stalled past its lease; its send landed all the same.
    async with engine.begin() as connection:
        await deliveries.record_outcomes(
            connection,
            [DeliveryOutcome(second.recipient_id, message_id, "sent", 1, telegram_message_id=8)],
            [],
            owner=owner,
        )
    detail = (await client.get(f"/api/messages/{message_id}", headers=operator_headers)).json()
    assert (detail["deletion"], detail["successful_deliveries"]) == ("deleting", 2)
    queued = rows(sync_engine, "SELECT recipient_id FROM message_deletions")
    assert [row.recipient_id for row in queued] == [second.recipient_id]
    figures_agree(sync_engine, message_id)
