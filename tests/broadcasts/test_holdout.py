"""The control group: its exact size, drawn at random, never sent, cancelled or deleted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
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

from coursedesk.broadcasts.holdout import holdout_size
from coursedesk.telegram.standin import BotApiStandin


def _held_out(engine: Engine, message_id: int) -> set[int]:
    found = rows(
        engine,
        "SELECT user_id FROM message_recipients "
        "WHERE message_id = :m AND delivery_status = 'holdout'",
        m=message_id,
    )
    return {row.user_id for row in found}


def _status_of(engine: Engine, message_id: int) -> str:
    return str(scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id))


@pytest.mark.parametrize(
    ("audience", "percent", "expected"),
    [(200, 15, 30), (33, 10, 3), (25, 10, 3), (35, 10, 4), (1, 49, 0), (3, 50, 2), (7, 0, 0)],
)
def test_the_size_is_the_percentage_rounded_half_up(
    audience: int, percent: int, expected: int
) -> None:
    assert holdout_size(audience, percent) == expected


async def test_exactly_that_share_is_held_out_at_random(
    sync_engine: Engine, client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    add_many_users(sync_engine, 1001, 200)
    first = await send_broadcast(
        client, operator_headers, text="a", audience={"type": "all"}, holdout_percent=15
    )
    second = await send_broadcast(
        client, operator_headers, text="b", audience={"type": "all"}, holdout_percent=15
    )
    drawn = [_held_out(sync_engine, created["message_id"]) for created in (first, second)]
    assert [len(group) for group in drawn] == [30, 30]
    assert all(group <= set(range(1001, 1201)) for group in drawn)
    # Not the first, nor the last, 30 ids, and another draw for another broadcast.
    assert all(group not in (set(range(1001, 1031)), set(range(1171, 1201))) for group in drawn)
    assert drawn[0] != drawn[1]
    assert first["total_recipients"] == 200

    detail = await client.get(f"/api/messages/{first['message_id']}", headers=operator_headers)
    assert detail.status_code == 200
    body = detail.json()
    assert (body["holdout_percent"], body["holdout_count"]) == (15, 30)
    assert (body["total_recipients"], body["pending_deliveries"]) == (200, 170)
    listed = await client.get(
        f"/api/messages/{first['message_id']}/recipients",
        params={"status": "holdout", "limit": 1000},
        headers=operator_headers,
    )
    assert listed.json()["total"] == 30
    assert {item["user_id"] for item in listed.json()["items"]} == drawn[0]
    figures_agree(sync_engine, first["message_id"])

    # Rounded half up: 10 % of 25 is 2.5, so 3; a list of ids may have a control group too.
    listed_users = await send_broadcast(
        client, operator_headers, text="c", holdout_percent=10,
        audience={"type": "users", "user_ids": list(range(1001, 1026))},
    )  # fmt: skip
    assert len(_held_out(sync_engine, listed_users["message_id"])) == 3
    figures_agree(sync_engine, listed_users["message_id"])


@pytest.mark.parametrize("percent", [-1, 51, 100])
async def test_a_percentage_outside_0_to_50_is_refused(
    sync_engine: Engine, client: httpx.AsyncClient, operator_headers: dict[str, str], percent: int
) -> None:
    add_many_users(sync_engine, 3001, 5)
    for dry_run in (False, True):
        answer = await client.post(
            "/api/messages/send",
            json={"text": "hi", "audience": {"type": "all"}, "holdout_percent": percent,
                  "dry_run": dry_run},
            headers=operator_headers,
        )  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("holdout_percent: "), answer.text
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_a_control_group_that_leaves_nobody_to_send_to_is_refused(
    sync_engine: Engine, client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    add_many_users(sync_engine, 3101, 1)
    body = {"text": "hi", "audience": {"type": "users", "user_ids": [3101]}, "holdout_percent": 50}
    for dry_run in (False, True):
        answer = await client.post(
            "/api/messages/send", json=body | {"dry_run": dry_run}, headers=operator_headers
        )
        assert answer.status_code == 400, answer.text
        assert "nobody to send to" in answer.json()["error"]
    assert scalar(sync_engine, "SELECT count(*) FROM message_recipients") == 0
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_the_same_key_with_another_control_group_is_another_request(
    sync_engine: Engine, client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    add_many_users(sync_engine, 3201, 10)
    headers = operator_headers | {"Idempotency-Key": "holdout-key"}
    body = {"text": "hi", "audience": {"type": "all"}}
    first = await client.post("/api/messages/send", json=body, headers=headers)
    assert first.status_code == 201
    other = await client.post(
        "/api/messages/send", json=body | {"holdout_percent": 20}, headers=headers
    )
    assert other.status_code == 409
    again = await client.post(
        "/api/messages/send", json=body | {"holdout_percent": 0}, headers=headers
    )
    assert again.status_code == 201
    assert again.json()["message_id"] == first.json()["message_id"]


async def test_the_control_group_is_never_sent_and_a_delete_leaves_it_alone(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 4001, 120)
    created = await send_broadcast(
        client, operator_headers, text="offer", audience={"type": "all"}, holdout_percent=25
    )
    message_id = created["message_id"]
    held_out = _held_out(sync_engine, message_id)
    assert len(held_out) == 30
    async with running_worker(start_worker):
        await wait_for(
            lambda: _status_of(sync_engine, message_id) == "sent", within=30, what="sent"
        )
    received = {message.chat_id for message in standin.received()}
    assert received == set(range(4001, 4121)) - held_out
    assert len(standin.received()) == 90
    figures_agree(sync_engine, message_id)

    deleting = await client.post(f"/api/messages/{message_id}/delete", headers=operator_headers)
    assert deleting.status_code == 202
    assert deleting.json()["queued"] == 90
    async with running_worker(start_worker):
        await wait_for(
            lambda: (
                scalar(
                    sync_engine,
                    "SELECT deleted_at FROM message_history WHERE id = :m",
                    m=message_id,
                )
                is not None
            ),
            within=30,
            what="the deletion",
        )
    assert {deleted.chat_id for deleted in standin.deleted()} == received
    assert _held_out(sync_engine, message_id) == held_out
    statuses = dict(
        rows(
            sync_engine,
            "SELECT delivery_status, count(*) FROM message_recipients WHERE message_id = :m "
            "GROUP BY 1",
            m=message_id,
        )
    )
    assert statuses == {"deleted": 90, "holdout": 30}
    figures_agree(sync_engine, message_id)


async def test_a_cancel_leaves_the_control_group_as_it_is(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 5001, 40)
    due = datetime.now(UTC) + timedelta(hours=1)
    created = await send_broadcast(
        client, operator_headers, text="later", audience={"type": "all"},
        scheduled_at=due.isoformat(), holdout_percent=10,
    )  # fmt: skip
    message_id = created["message_id"]
    held_out = _held_out(sync_engine, message_id)
    cancel = await client.post(f"/api/messages/{message_id}/cancel", headers=operator_headers)
    assert cancel.status_code == 200
    assert (cancel.json()["cancelled_deliveries"], cancel.json()["holdout_count"]) == (36, 4)
    async with running_worker(start_worker):
        await asyncio.sleep(1)
    assert standin.received() == []
    assert _held_out(sync_engine, message_id) == held_out and len(held_out) == 4
    figures_agree(sync_engine, message_id)
    verified = scalar(
        sync_engine,
        "SELECT count(*) FROM message_history m WHERE m.holdout_count <> "
        "(SELECT count(*) FROM message_recipients r "
        " WHERE r.message_id = m.id AND r.delivery_status = 'holdout')",
    )
    assert verified == 0
