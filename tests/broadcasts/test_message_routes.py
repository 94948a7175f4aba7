"""The message routes without a worker: validation, roles, history, recipients, conflicts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from broadcast_helpers import add_many_users, rows, scalar, send_broadcast
from fastapi import FastAPI
from sqlalchemy import Engine, text

from coursedesk.config import Settings
from coursedesk.telegram.standin import BotApiStandin


@pytest.fixture
def ten_users(sync_engine: Engine) -> None:
    add_many_users(sync_engine, 1001, 10)


def _in(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


ALL = {"type": "all"}


def _body(**fields: object) -> dict[str, object]:
    return {"text": "hi", "audience": ALL} | fields


BAD_BODIES: list[tuple[dict[str, object], int, str]] = [
    (_body(text=""), 400, "empty"),
    (_body(text="   \n "), 400, "empty"),
    (_body(text="x" * 4097), 400, "too long"),
    (_body(text="<b>bold", parse_mode="HTML"), 400, "text"),
    (_body(text="a.b", parse_mode="MarkdownV2"), 400, "text"),
    (_body(parse_mode="Markdown"), 400, "parse_mode"),
    (_body(parse_mode="bbcode"), 400, "parse_mode"),
    (_body(audience={"type": "everyone"}), 422, "audience"),
    (_body(audience={"type": "stream"}), 422, "stream"),
    (_body(audience={"type": "stream", "stream": " "}), 422, "stream"),
    (_body(audience={"type": "users", "user_ids": []}), 422, "user_ids"),
    (_body(audience={"type": "users", "user_ids": [0]}), 422, "user_ids"),
    (_body(audience={"type": "users", "user_ids": [2**63]}), 422, "user_ids"),
    (_body(audience={"type": "users", "user_ids": ["x"]}), 422, "user_ids"),
    (_body(scheduled_at="2020-01-01T00:00:00Z"), 400, "past"),
    (_body(scheduled_at="2031-01-01T09:00:00"), 422, "scheduled_at"),
    (_body(scheduled_at="tomorrow"), 422, "scheduled_at"),
    (_body(scheduled_at=_in(60 * 24 * 400)), 400, "year"),
    (_body(colour="red"), 422, "colour"),
    (_body(text=5), 422, "text"),
    ({"audience": ALL}, 422, "text"),
]


async def test_bad_input_is_refused_and_nothing_is_queued(
    ten_users: None,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    for body, status, fragment in BAD_BODIES:
        response = await client.post("/api/messages/send", json=body, headers=operator_headers)
        assert response.status_code == status, (body, response.text)
        assert fragment in response.json()["error"], (body, response.text)
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_a_dry_run_refuses_what_the_send_refuses(
    ten_users: None,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    for body, _, _ in BAD_BODIES:
        sent = await client.post("/api/messages/send", json=body, headers=operator_headers)
        dry_run = await client.post(
            "/api/messages/send", json=body | {"dry_run": True}, headers=operator_headers
        )
        assert (dry_run.status_code, dry_run.json()) == (sent.status_code, sent.json()), body
    nobody = _body(audience={"type": "users", "user_ids": [404]}, dry_run=True)
    refused = await client.post("/api/messages/send", json=nobody, headers=operator_headers)
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        "audience: nobody would receive this broadcast (not users: 404)"
    )
    counted = await client.post(
        "/api/messages/send",
        json=_body(text="<b>hi</b>", parse_mode="HTML", scheduled_at=_in(60), dry_run=True),
        headers=operator_headers,
    )
    assert counted.status_code == 200
    assert counted.json() == {"total_recipients": 10, "invalid_user_ids": []}
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_an_audience_is_counted_without_a_text(
    ten_users: None,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    viewer_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    """What the composer's live count asks while the message is still being written."""

    async def count(body: dict[str, object], headers: dict[str, str]) -> httpx.Response:
        return await client.post("/api/messages/count", json=body, headers=headers)

    everyone = await count({"audience": ALL}, operator_headers)
    assert everyone.status_code == 200
    assert everyone.json() == {"total_recipients": 10, "invalid_user_ids": []}
    listed = await count({"audience": {"type": "users", "user_ids": [1001, 404]}}, operator_headers)
    assert listed.json() == {"total_recipients": 1, "invalid_user_ids": [404]}
    nobody = await count({"audience": {"type": "stream", "stream": "none"}}, operator_headers)
    assert nobody.json() == {"total_recipients": 0, "invalid_user_ids": []}
    for body in ({"audience": {"type": "everyone"}}, {"audience": ALL, "text": "hi"}, {}):
        refused = await count(body, operator_headers)
        assert refused.status_code == 422, body
        assert "error" in refused.json()
    assert (await count({"audience": ALL}, viewer_headers)).status_code == 403
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_text_that_is_not_json_is_refused(
    client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/messages/send",
        content=b"{not json",
        headers=operator_headers | {"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "error" in response.json()


async def test_roles(
    ten_users: None,
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
    operator_headers: dict[str, str],
) -> None:
    body = {"text": "Hi", "audience": {"type": "all"}}
    assert (await client.post("/api/messages/send", json=body)).status_code == 401
    assert (await client.get("/api/messages/history")).status_code == 401
    refused = await client.post("/api/messages/send", json=body, headers=viewer_headers)
    assert refused.status_code == 403
    message_id = (await send_broadcast(client, operator_headers, **body))["message_id"]
    for path in ("/api/messages/history", f"/api/messages/{message_id}"):
        assert (await client.get(path, headers=viewer_headers)).status_code == 200
    recipients = await client.get(f"/api/messages/{message_id}/recipients", headers=viewer_headers)
    assert recipients.status_code == 200
    for action in ("cancel", "delete"):
        response = await client.post(f"/api/messages/{message_id}/{action}", headers=viewer_headers)
        assert response.status_code == 403
    test_send = await client.post(
        "/api/messages/test", json={"text": "x", "chat_id": 1}, headers=viewer_headers
    )
    assert test_send.status_code == 403


async def test_history_filters_and_totals(
    ten_users: None, client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    to_all = await send_broadcast(client, operator_headers, text="one", audience={"type": "all"})
    later = await send_broadcast(
        client, operator_headers, text="two", audience={"type": "all"}, scheduled_at=_in(60)
    )
    listed = await send_broadcast(
        client, operator_headers, text="three", audience={"type": "users", "user_ids": [1001]}
    )
    await client.post(f"/api/messages/{later['message_id']}/cancel", headers=operator_headers)

    async def ids(**query: object) -> tuple[list[int], int]:
        response = await client.get("/api/messages/history", params=query, headers=operator_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return [item["id"] for item in body["items"]], body["total"]

    everything = [listed["message_id"], later["message_id"], to_all["message_id"]]
    assert await ids() == (everything, 3)
    assert await ids(limit=1, offset=1) == ([later["message_id"]], 3)
    assert await ids(recipient_type="individual") == ([listed["message_id"]], 1)
    assert await ids(recipient_group="all") == (everything[1:], 2)
    assert await ids(status="cancelled") == ([later["message_id"]], 1)
    assert await ids(status="sent") == ([], 0)
    # An empty filter, as a form's "any" sends it, filters nothing.
    assert await ids(recipient_type="", recipient_group="", status="") == (everything, 3)
    for bad in ({"limit": 0}, {"limit": "x"}, {"offset": -1}, {"status": "done"}):
        response = await client.get("/api/messages/history", params=bad, headers=operator_headers)
        assert response.status_code == 422

    item = (await client.get("/api/messages/history", headers=operator_headers)).json()["items"][2]
    assert item["message_text"] == "one"
    assert item["status"] == "scheduled"
    assert (item["total_recipients"], item["successful_deliveries"]) == (10, 0)
    assert (item["recipient_type"], item["recipient_group"]) == ("group", "all")
    assert item["sent_at"] is None and item["created_at"] and item["scheduled_at"]


async def test_one_message_and_unknown_ids(
    ten_users: None, client: httpx.AsyncClient, operator_headers: dict[str, str]
) -> None:
    created = await send_broadcast(
        client, operator_headers, text="<b>hi</b>", parse_mode="html", audience={"type": "all"}
    )
    one = await client.get(f"/api/messages/{created['message_id']}", headers=operator_headers)
    assert one.status_code == 200
    body = one.json()
    assert body["parse_mode"] == "HTML"
    assert body["audience"] == {"type": "all"}
    assert body["pending_deliveries"] == 10
    assert body["deletion"] is None
    # Timestamps carry a numeric offset, as on every other route.
    assert body["created_at"].endswith("+00:00"), body["created_at"]
    recipients = await client.get(
        f"/api/messages/{created['message_id']}/recipients", headers=operator_headers
    )
    assert recipients.json()["items"][0]["updated_at"].endswith("+00:00")
    for path in ("/api/messages/999999", "/api/messages/999999/recipients"):
        missing = await client.get(path, headers=operator_headers)
        assert missing.status_code == 404
        assert "999999" in missing.json()["error"]
    for action in ("cancel", "delete"):
        missing = await client.post(f"/api/messages/999999/{action}", headers=operator_headers)
        assert missing.status_code == 404
    assert (await client.get("/api/messages/abc", headers=operator_headers)).status_code == 404
    assert (await client.get("/api/messages/0", headers=operator_headers)).status_code == 422


async def test_recipients_page_status_filter_and_csv(
    ten_users: None,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    created = await send_broadcast(client, operator_headers, text="hi", audience={"type": "all"})
    message_id = created["message_id"]
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE message_recipients SET delivery_status = 'failed', "
                "error = '=Forbidden: bot was blocked' WHERE message_id = :m AND user_id <= 1003"
            ),
            {"m": message_id},
        )
    base = f"/api/messages/{message_id}/recipients"
    page = (await client.get(base, params={"limit": 4}, headers=operator_headers)).json()
    assert page["total"] == 10
    assert [item["user_id"] for item in page["items"]] == [1001, 1002, 1003, 1004]
    failed = (await client.get(base, params={"status": "failed"}, headers=operator_headers)).json()
    assert failed["total"] == 3
    assert {item["delivery_status"] for item in failed["items"]} == {"failed"}
    assert failed["items"][0]["error"] == "=Forbidden: bot was blocked"
    anything = (await client.get(base, params={"status": ""}, headers=operator_headers)).json()
    assert anything["total"] == 10
    pending = await client.get(
        base, params={"status": "pending", "offset": 5}, headers=operator_headers
    )
    assert pending.json()["total"] == 7
    assert [item["user_id"] for item in pending.json()["items"]] == [1009, 1010]
    assert (
        await client.get(base, params={"status": "x"}, headers=operator_headers)
    ).status_code == 422

    exported = await client.get(
        base, params={"status": "failed", "format": "csv"}, headers=operator_headers
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert table[0][:3] == ["user_id", "username", "delivery_status"]
    assert [line[0] for line in table[1:]] == ["1001", "1002", "1003"]
    assert table[1][4] == "'=Forbidden: bot was blocked"
    updated_at = table[1][table[0].index("updated_at")]
    assert datetime.fromisoformat(updated_at).tzinfo is not None and "T" in updated_at


async def test_cancel_and_delete_conflicts(
    ten_users: None,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    scheduled = await send_broadcast(
        client, operator_headers, text="later", audience={"type": "all"}, scheduled_at=_in(30)
    )
    message_id = scheduled["message_id"]
    never_sent = await client.post(f"/api/messages/{message_id}/delete", headers=operator_headers)
    assert never_sent.status_code == 409
    assert "never sent" in never_sent.json()["error"]

    cancelled = await client.post(f"/api/messages/{message_id}/cancel", headers=operator_headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_deliveries"] == 10
    assert cancelled.json()["pending_deliveries"] == 0
    again = await client.post(f"/api/messages/{message_id}/cancel", headers=operator_headers)
    assert again.status_code == 409
    assert (
        scalar(
            sync_engine,
            "SELECT count(*) FROM message_recipients WHERE message_id = :m "
            "AND delivery_status = 'cancelled'",
            m=message_id,
        )
        == 10
    )
    [entry] = rows(
        sync_engine, "SELECT actor, before, after FROM audit_log WHERE action = 'broadcast.cancel'"
    )
    assert entry.before["status"] == "scheduled" and entry.after["status"] == "cancelled"


async def test_test_send_reports_telegrams_answer_and_is_audited(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    sync_engine: Engine,
) -> None:
    standin.update_faults({"blocked_chats": [77], "missing_chats": [78]})

    async def test_send(chat_id: int, text: str = "<b>Preview</b>") -> httpx.Response:
        return await client.post(
            "/api/messages/test",
            json={"text": text, "chat_id": chat_id, "parse_mode": "HTML"},
            headers=operator_headers,
        )

    delivered = await test_send(55)
    assert delivered.status_code == 200
    assert delivered.json()["outcome"] == "delivered"
    [received] = standin.received(55)
    assert received.text == "<b>Preview</b>" and received.parse_mode == "HTML"
    assert received.message_id == delivered.json()["telegram_message_id"]
    blocked = (await test_send(77)).json()
    assert blocked["outcome"] == "blocked" and "blocked" in blocked["error"]
    missing = (await test_send(78)).json()
    assert missing["outcome"] == "failed" and "chat not found" in missing["error"]
    bad = await test_send(55, "<b>unclosed")
    assert bad.status_code == 400
    assert len(standin.received(55)) == 1
    outcomes = [
        row.details["outcome"]
        for row in rows(
            sync_engine,
            "SELECT details FROM audit_log WHERE action = 'broadcast.test_send' ORDER BY id",
        )
    ]
    assert outcomes == ["delivered", "blocked", "failed"]


async def test_test_send_without_a_token_is_refused(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    app: FastAPI,
    settings: Settings,
) -> None:
    app.state.settings = settings.model_copy(update={"telegram_bot_token": None})
    response = await client.post(
        "/api/messages/test", json={"text": "hi", "chat_id": 5}, headers=operator_headers
    )
    assert response.status_code == 503
    assert "TELEGRAM_BOT_TOKEN" in response.json()["error"]
