"""POST /api/messages/send with an Idempotency-Key sends once, however often it comes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from broadcast_helpers import add_many_users, rows, scalar, wait_for
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.accounts.service import create_token
from coursedesk.db.engine import Database

SEND_AT = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
BODY = {
    "text": "Spring stream starts Monday",
    "audience": {"type": "all"},
    "scheduled_at": SEND_AT.astimezone(timezone(timedelta(hours=2))).isoformat(),
}


@pytest.fixture(autouse=True)
def ten_users(sync_engine: Engine) -> None:
    add_many_users(sync_engine, 1001, 10)


async def _send(
    client: httpx.AsyncClient, headers: dict[str, str], key: str | None, body: object = None
) -> httpx.Response:
    keyed = headers | ({"Idempotency-Key": key} if key is not None else {})
    return await client.post("/api/messages/send", json=body or BODY, headers=keyed)


def _broadcasts(engine: Engine) -> list[int]:
    return [row.id for row in rows(engine, "SELECT id FROM message_history ORDER BY id")]


def _recipients(engine: Engine) -> int:
    return int(scalar(engine, "SELECT count(*) FROM message_recipients"))


async def test_the_same_key_and_body_answer_the_first_broadcast_and_queue_nothing(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    first = await _send(client, operator_headers, "retry-me")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # The same request, spelt otherwise: keys in another order, the same instant in UTC.
    again_body = {
        "scheduled_at": SEND_AT.isoformat().replace("+00:00", "Z"),
        "audience": {"type": "all"},
        "text": BODY["text"],
    }
    for body in (BODY, again_body):
        again = await _send(client, operator_headers, "retry-me", body)
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
    assert _broadcasts(sync_engine) == [first.json()["message_id"]]
    assert _recipients(sync_engine) == 10

    unkeyed = await _send(client, operator_headers, None)
    assert unkeyed.status_code == 201, "without a key, every request is a new broadcast"
    assert len(_broadcasts(sync_engine)) == 2


async def test_the_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    first = await _send(client, operator_headers, "k-1")
    other = await _send(client, operator_headers, "k-1", BODY | {"text": "Another text"})
    assert other.status_code == 409
    assert "another request" in other.json()["error"]
    assert other.json()["message_id"] == first.json()["message_id"]
    assert _broadcasts(sync_engine) == [first.json()["message_id"]]
    again = await _send(client, operator_headers, "k-1")
    assert again.status_code == 201 and again.json() == first.json()


async def test_keys_belong_to_one_account_each(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    database: Database,
    sync_engine: Engine,
) -> None:
    async with database.transaction() as session:
        # The same name as the fixture's token: a name does not make an account.
        _, token = await create_token(session, Role.operator, "test-operator", created_by="tests")
    other_operator = {"Authorization": f"Bearer {token}"}
    first = await _send(client, operator_headers, "shared-key")
    second = await _send(client, other_operator, "shared-key")
    assert (first.status_code, second.status_code) == (201, 201)
    assert "idempotent-replayed" not in second.headers
    assert first.json()["message_id"] != second.json()["message_id"]
    assert len(_broadcasts(sync_engine)) == 2


async def test_a_key_is_kept_24_hours_then_makes_a_new_broadcast(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    first = await _send(client, operator_headers, "daily")
    old = await _send(client, operator_headers, "old-one")
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE broadcast_request_keys SET created_at = now() - interval '23 hours' "
                "WHERE idempotency_key = 'daily'"
            )
        )
        connection.execute(
            text(
                "UPDATE broadcast_request_keys SET created_at = now() - interval '25 hours' "
                "WHERE idempotency_key = 'old-one'"
            )
        )
    still = await _send(client, operator_headers, "daily")
    assert still.json() == first.json() and still.headers["idempotent-replayed"] == "true"
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE broadcast_request_keys SET created_at = now() - interval '25 hours' "
                "WHERE idempotency_key = 'daily'"
            )
        )
    later = await _send(client, operator_headers, "daily", BODY | {"text": "A day later"})
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert later.json()["message_id"] not in (first.json()["message_id"], old.json()["message_id"])
    # Keys past their day are forgotten when their account sends again.
    kept = rows(sync_engine, "SELECT idempotency_key, message_id FROM broadcast_request_keys")
    assert [tuple(row) for row in kept] == [("daily", later.json()["message_id"])]


async def test_a_dry_run_neither_uses_nor_checks_the_key(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    dry = await _send(client, operator_headers, "k-dry", BODY | {"dry_run": True})
    assert dry.status_code == 200 and dry.json()["total_recipients"] == 10
    assert scalar(sync_engine, "SELECT count(*) FROM broadcast_request_keys") == 0
    sent = await _send(client, operator_headers, "k-dry")
    assert sent.status_code == 201 and "idempotent-replayed" not in sent.headers
    other_dry = await _send(
        client, operator_headers, "k-dry", BODY | {"text": "x", "dry_run": True}
    )
    assert other_dry.status_code == 200
    assert _broadcasts(sync_engine) == [sent.json()["message_id"]]


async def test_a_refused_request_leaves_its_key_free(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    refused = await _send(
        client, operator_headers, "k-2", BODY | {"text": "<b>open", "parse_mode": "HTML"}
    )
    assert refused.status_code == 400
    nobody = await _send(
        client, operator_headers, "k-2", BODY | {"audience": {"type": "stream", "stream": "NONE"}}
    )
    assert nobody.status_code == 400
    assert scalar(sync_engine, "SELECT count(*) FROM broadcast_request_keys") == 0
    sent = await _send(client, operator_headers, "k-2")
    assert sent.status_code == 201 and "idempotent-replayed" not in sent.headers


@pytest.mark.parametrize(
    ("key", "status"), [("", 400), ("two words", 400), ("x" * 256, 422), ("é", 400)]
)
async def test_a_key_is_visible_ascii_of_at_most_255_characters(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    key: str,
    status: int,
) -> None:
    headers = operator_headers | {"Idempotency-Key": key}
    answer = await client.post(
        "/api/messages/send", json=BODY, headers={k: v.encode() for k, v in headers.items()}
    )
    assert answer.status_code == status
    assert "idempotency" in answer.json()["error"].lower()
    assert _broadcasts(sync_engine) == []
    assert (await _send(client, operator_headers, "x" * 255)).status_code == 201


def _waiting_on_locks(engine: Engine) -> int:
    return int(
        scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    )


async def test_two_requests_with_one_key_at_once_make_one_broadcast(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    # Hold back every new broadcast until both requests are in: one of them then waits
    # for this lock with the key claimed, the other for the key.
    with sync_engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE message_history IN SHARE MODE"))
        both = asyncio.ensure_future(
            asyncio.gather(
                _send(client, operator_headers, "double-click"),
                _send(client, operator_headers, "double-click"),
            )
        )
        await wait_for(
            lambda: _waiting_on_locks(sync_engine) == 2, within=20, what="both requests to wait"
        )
        blocker.rollback()
    first, second = await both
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    replayed = sorted(str(answer.headers.get("idempotent-replayed")) for answer in (first, second))
    assert replayed == ["None", "true"]
    assert _broadcasts(sync_engine) == [first.json()["message_id"]]
    assert _recipients(sync_engine) == 10
