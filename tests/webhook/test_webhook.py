"""POST /api/telegram/webhook: the secret, recording updates once, profiles and blocking."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import Engine, text
from webhook_updates import SECRET, membership_update, message_update, user

from coursedesk.config import Settings

HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def post(
    client: httpx.AsyncClient, body: object, secret: str | None = SECRET
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers[HEADER] = secret
    # json.dumps escapes non-ASCII as \uXXXX, so an unpaired surrogate can be sent too.
    return await client.post("/api/telegram/webhook", content=json.dumps(body), headers=headers)


def events(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(text("SELECT user_id, event_type, details FROM events ORDER BY id"))
        )


def bot_user(engine: Engine, user_id: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT username, first_name, is_blocked, blocked_at FROM bot_users "
                "WHERE user_id = :u"
            ),
            {"u": user_id},
        ).one_or_none()


async def test_without_the_right_secret_nothing_is_recorded(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    for secret in (None, "", "wrong", SECRET + "x", SECRET[:-1], SECRET.upper()):
        response = await post(client, message_update(1, "/start"), secret=secret)
        assert response.status_code == 403, secret
        assert "secret" in response.json()["error"]
    assert events(sync_engine) == []


async def test_with_no_secret_configured_everyone_is_refused(
    client: httpx.AsyncClient, app: Any, settings: Settings, sync_engine: Engine
) -> None:
    app.state.settings = settings.model_copy(update={"telegram_webhook_secret": None})
    assert (await post(client, message_update(1, "/start"))).status_code == 403
    assert (await post(client, message_update(1, "/start"), secret="")).status_code == 403
    assert events(sync_engine) == []


async def test_commands_messages_and_buttons_become_events(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    assert (await post(client, message_update(1, "/start promo42"))).json() == {
        "ok": True,
        "recorded": True,
    }
    await post(client, message_update(2, "/help@CourseBot"))
    await post(client, message_update(3, "When does the course start?"))
    await post(
        client,
        {
            "update_id": 4,
            "callback_query": {
                "id": "cb1",
                "from": user(),
                "chat_instance": "x",
                "data": "book:python-3",
                "message": {"message_id": 99, "chat": {"id": 501, "type": "private"}, "date": 1},
            },
        },
    )
    recorded = events(sync_engine)
    assert [(e.user_id, e.event_type) for e in recorded] == [
        (501, "/start"),
        (501, "/help"),
        (501, "message"),
        (501, "button_click"),
    ]
    assert recorded[0].details["text"] == "/start promo42"
    assert recorded[0].details["chat_id"] == 501 and recorded[0].details["message_id"] == 11
    assert recorded[2].details["text"] == "When does the course start?"
    assert recorded[3].details["data"] == "book:python-3"
    assert recorded[3].details["username"] == "anna"


async def test_the_same_update_twice_is_recorded_once(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    first = await post(client, message_update(7, "/start"))
    again = await post(client, message_update(7, "/start"))
    assert first.json()["recorded"] is True
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert len(events(sync_engine)) == 1
    with sync_engine.connect() as connection:
        kinds = connection.execute(
            text("SELECT update_id, update_type FROM telegram_updates")
        ).all()
    assert [tuple(row) for row in kinds] == [(7, "message")]


async def test_username_and_first_name_are_kept_current(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    await post(client, message_update(1, "hi", user(username="anna", first_name="Anna")))
    assert tuple(bot_user(sync_engine, 501))[:2] == ("anna", "Anna")
    await post(client, message_update(2, "hi", user(username="anna_k", first_name="Anya")))
    assert tuple(bot_user(sync_engine, 501))[:2] == ("anna_k", "Anya")
    await post(client, message_update(3, "hi", user(username=None, first_name="Anya")))
    assert tuple(bot_user(sync_engine, 501))[:2] == ("anna_k", "Anya")


async def test_blocking_and_unblocking_the_bot(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    await post(client, membership_update(1, "kicked"))
    blocked = bot_user(sync_engine, 501)
    assert blocked.is_blocked and blocked.blocked_at is not None
    await post(client, membership_update(2, "kicked"))
    assert bot_user(sync_engine, 501).blocked_at == blocked.blocked_at
    await post(client, membership_update(3, "member"))
    unblocked = bot_user(sync_engine, 501)
    assert not unblocked.is_blocked and unblocked.blocked_at is None
    assert [e.event_type for e in events(sync_engine)] == ["bot_blocked"] * 2 + ["bot_unblocked"]


async def test_a_group_membership_change_is_not_the_user_blocking_the_bot(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    await post(client, membership_update(1, "kicked"))
    in_group = membership_update(2, "member")
    in_group["my_chat_member"]["chat"] = {"id": -1001234567890, "type": "supergroup"}
    removed = membership_update(3, "kicked", sender=user(502, "boris", "Boris"))
    removed["my_chat_member"]["chat"] = {"id": -100555, "type": "group"}
    for update in (in_group, removed):
        assert (await post(client, update)).status_code == 200
    assert bot_user(sync_engine, 501).is_blocked
    assert bot_user(sync_engine, 502) is None
    assert [e.event_type for e in events(sync_engine)] == ["bot_blocked"]


async def test_what_postgresql_cannot_store_is_dropped_not_refused(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    """Telegram resends an update it could not deliver, so a strange one is taken as it
    can be: NUL characters dropped, unpaired surrogates replaced, impossible ids ignored."""
    strange = message_update(1, "/start\x00 now", user(503, "ann\x00a", "An\ud800na"))
    odd_key = {"update_id": 2, "\x00weird": {"text": "x"}}
    lone = message_update(3, "\ud800")
    huge = message_update(4, "/start", user(99999999999999999999999))
    group = message_update(5, "/start", user(-5))
    for update in (strange, odd_key, lone, huge, group):
        response = await post(client, update)
        assert response.status_code == 200, (update, response.text)
    recorded = events(sync_engine)
    assert [(e.user_id, e.event_type) for e in recorded] == [(503, "/start"), (501, "message")]
    assert recorded[0].details["text"] == "/start now"
    assert recorded[1].details["text"] == "?"
    assert bot_user(sync_engine, 503)[:2] == ("anna", "An?na")
    with sync_engine.connect() as connection:
        kinds = connection.scalars(text("SELECT update_type FROM telegram_updates ORDER BY 1"))
        assert sorted(kinds) == ["message"] * 4 + ["weird"]


MALFORMED = [
    b"{not json",
    b"[1, 2]",
    b'"update"',
    b'{"message": {}}',
    b'{"update_id": "7"}',
    b'{"update_id": true}',
    b'{"update_id": -1}',
    b'{"update_id": 99999999999999999999}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"update_id": 8, "message": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
    b'{"update_id": 9, "message": {"text": "hi", "x": ' + b"[" * 40 + b"]" * 40 + b"}}",
]
IGNORED: list[dict[str, Any]] = [
    {"update_id": 1, "edited_channel_post": {"text": "x"}},
    {"update_id": 2, "message": {"text": "no sender", "chat": {"id": 1}}},
    {"update_id": 3, "message": {"from": {"id": "x"}, "text": 5}},
    {"update_id": 4, "message": {"from": {"id": 9, "is_bot": True}, "text": "/start"}},
    {"update_id": 5, "callback_query": "nonsense"},
    {"update_id": 6, "my_chat_member": {"from": user(), "new_chat_member": {"status": "left"}}},
    {"update_id": 7},
]


async def test_malformed_updates_are_refused(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    for body in MALFORMED:
        response = await client.post(
            "/api/telegram/webhook",
            content=body,
            headers={HEADER: SECRET, "content-type": "application/json"},
        )
        assert response.status_code == 400, body
        assert "error" in response.json()
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM telegram_updates")) == 0


async def test_updates_we_do_not_use_are_accepted_and_ignored(
    client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    for update in IGNORED:
        response = await post(client, update)
        assert response.status_code == 200, update
    assert events(sync_engine) == []
