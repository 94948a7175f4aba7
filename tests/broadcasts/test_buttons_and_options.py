"""Inline buttons and message options: refused up front when Telegram could not take them,
else on every message; pins after delivery, failed pins recorded; button presses named."""

from __future__ import annotations

import json
import time
from typing import Any

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
from media_samples import JPEG, MP4, uploaded
from sqlalchemy import Engine

from coursedesk.config import Settings
from coursedesk.telegram.standin import BotApiStandin, InlineButton

SECRET = "button-test-secret"
WEBHOOK_HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "content-type": "application/json"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"telegram_webhook_secret": SECRET})


def status_of(engine: Engine, message_id: int) -> str:
    return str(scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id))


async def _sent(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: Engine,
    start_worker: RunWorker,
    **body: Any,
) -> int:
    created = await send_broadcast(client, headers, audience={"type": "all"}, **body)
    message_id = int(created["message_id"])
    async with running_worker(start_worker):
        await wait_for(lambda: status_of(engine, message_id) == "sent", within=60, what="sent")
    return message_id


def _row(count: int, **button: str) -> list[dict[str, str]]:
    return [{"text": f"B{i}", **button} for i in range(count)]


async def test_bad_buttons_and_buttons_under_an_album_are_refused_and_nothing_is_queued(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    add_many_users(sync_engine, 1, 2)
    photo, video = [
        (await uploaded(client, operator_headers, *file))["media_id"]
        for file in ((JPEG, "a.jpg"), (MP4, "b.mp4"))
    ]
    link = {"url": "https://school.example/book"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"buttons": [_row(1, **link)] * 9}, "buttons: at most 8 rows, not 9"),
        ({"buttons": [_row(1, **link), _row(5, **link)]},
         "buttons[1]: a row holds 1 to 4 buttons, not 5"),
        ({"buttons": [[]]}, "buttons[0]: a row holds 1 to 4 buttons, not 0"),
        ({"buttons": [[{"url": "https://a.example"}]]},
         "buttons[0][0].text: every button needs a text"),
        ({"buttons": [[{"text": "  ", "url": "https://a.example"}]]}, "needs a text"),
        ({"buttons": [[{"text": "Go"}]]}, "buttons[0][0]: give a url or a callback_data"),
        ({"buttons": [[{"text": "Go", "url": "https://a.example", "callback_data": "x"}]]},
         "give a url or a callback_data, one of them"),
        ({"buttons": [[{"text": "Go", "url": "ftp://a.example/f"}]]},
         "buttons[0][0].url: an http:// or https:// link, not 'ftp://a.example/f'"),
        ({"buttons": [[{"text": "Go", "url": "javascript:alert(1)"}]]}, "an http:// or https://"),
        ({"buttons": [[{"text": "Go", "url": "https://"}]]}, "an http:// or https://"),
        ({"buttons": [_row(1, **link), [{"text": "Go", "callback_data": "ж" * 26}]]},
         "buttons[1][0].callback_data: 1 to 50 bytes (Telegram takes 64, 14 of which name "
         "the broadcast), not 52"),
        ({"buttons": [[{"text": "Go", "callback_data": ""}]]}, "1 to 50 bytes"),
        ({"buttons": [_row(1, **link)], "media": [{"media_id": photo}, {"media_id": video}]},
         "buttons: Telegram puts no buttons under an album"),
    ]  # fmt: skip
    for extra, fragment in cases:
        body = {"text": "hello", "audience": {"type": "all"}} | extra
        for dry_run in (False, True):
            response = await client.post(
                "/api/messages/send", json=body | {"dry_run": dry_run}, headers=operator_headers
            )
            assert response.status_code == 400, (extra, response.text)
            assert fragment in response.json()["error"], (extra, response.json())
    for malformed in (
        {"buttons": [[{"text": "Go", "url": "https://a.example", "color": "red"}]]},
        {"options": {"pin": True, "loud": True}},
        {"options": {"pin": "sometimes"}},
    ):
        response = await client.post(
            "/api/messages/send",
            json={"text": "hello", "audience": {"type": "all"}} | malformed,
            headers=operator_headers,
        )
        assert response.status_code == 422, (malformed, response.text)
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_buttons_and_options_reach_every_chat(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 1001, 12)
    buttons = [
        [{"text": "Book a seat", "url": "https://school.example/book?stream=autumn"}],
        [
            {"text": "Remind me", "callback_data": "remind:42"},
            {"text": "No", "callback_data": "no"},
        ],
    ]
    options = {"disable_link_preview": True, "protect_content": True, "silent": True}
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker,
        text="See https://school.example", buttons=buttons, options=options,
    )  # fmt: skip

    received = standin.received()
    assert len(received) == 12
    expected = (
        (InlineButton("Book a seat", url="https://school.example/book?stream=autumn"),),
        (
            InlineButton("Remind me", callback_data=f"cd:{message_id}:remind:42"),
            InlineButton("No", callback_data=f"cd:{message_id}:no"),
        ),
    )
    for message in received:
        assert message.buttons == expected
        assert message.link_preview_disabled and message.protect_content
        assert message.disable_notification
    assert standin.pinned() == []
    detail = (await client.get(f"/api/messages/{message_id}", headers=operator_headers)).json()
    assert detail["buttons"] == buttons
    assert (detail["disable_link_preview"], detail["protect_content"], detail["silent"]) == (
        True, True, True,
    )  # fmt: skip
    assert detail["pin"] is False
    audited = scalar(
        sync_engine,
        "SELECT after FROM audit_log WHERE action = 'broadcast.create' AND target_id = :m",
        m=str(message_id),
    )
    assert audited["buttons"] == buttons and audited["options"] == options


async def test_a_photo_carries_its_buttons(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 1101, 5)
    photo = (await uploaded(client, operator_headers, JPEG, "a.jpg"))["media_id"]
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker,
        text="Caption", media=[{"media_id": photo}],
        buttons=[[{"text": "Open", "url": "https://school.example"}]],
        options={"protect_content": True},
    )  # fmt: skip

    received = standin.received()
    assert {m.kind for m in received} == {"photo"} and len(received) == 5
    assert all(m.buttons == ((InlineButton("Open", url="https://school.example"),),)
               for m in received)  # fmt: skip
    assert all(m.protect_content for m in received)
    figures_agree(sync_engine, message_id)


async def test_pin_pins_every_delivered_message(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 2001, 20)
    standin.update_faults({"blocked_chats": [2003]})
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker,
        text="Pinned news", options={"pin": True, "silent": True},
    )  # fmt: skip

    delivered = {(m.chat_id, m.message_id) for m in standin.received()}
    assert len(delivered) == 19
    assert {(p.chat_id, p.message_id) for p in standin.pinned()} == delivered
    assert all(p.disable_notification for p in standin.pinned())
    recipients = {
        row.user_id: row
        for row in rows(
            sync_engine,
            "SELECT user_id, delivery_status, pinned_at, pin_error FROM message_recipients "
            "WHERE message_id = :m",
            m=message_id,
        )
    }
    assert recipients[2003].delivery_status == "failed" and recipients[2003].pinned_at is None
    for user_id in set(recipients) - {2003}:
        assert recipients[user_id].delivery_status == "sent"
        assert recipients[user_id].pinned_at is not None
        assert recipients[user_id].pin_error is None
    listed = await client.get(
        f"/api/messages/{message_id}/recipients", params={"status": "sent", "limit": 1},
        headers=operator_headers,
    )  # fmt: skip
    assert listed.json()["items"][0]["pinned_at"] is not None


async def test_a_pin_that_keeps_failing_is_recorded_and_the_delivery_stands(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    """Half the calls fail with 5xx: sends are retried until they land, and a pin that
    failed three times is given up and recorded, never tried again and never undoing the
    delivery."""
    add_many_users(sync_engine, 3001, 60)
    standin.update_faults({"seed": 5, "server_error_rate": 0.5})
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker,
        text="Pinned", options={"pin": True},
    )  # fmt: skip

    recipients = rows(
        sync_engine,
        "SELECT user_id, delivery_status, telegram_message_id, pinned_at, pin_error "
        "FROM message_recipients WHERE message_id = :m",
        m=message_id,
    )
    sent = [r for r in recipients if r.delivery_status == "sent"]
    unpinned = [r for r in sent if r.pinned_at is None]
    pinned = {(p.chat_id, p.message_id) for p in standin.pinned()}
    assert unpinned, "with half the calls failing, some pin should have failed three times"
    assert {r.pin_error for r in unpinned} <= {
        "not pinned: Bad Gateway (after 3 tries)",
        "not pinned: Internal Server Error (after 3 tries)",
    }
    assert pinned == {(r.user_id, r.telegram_message_id) for r in sent if r.pinned_at}
    pin_calls = [c for c in standin.calls() if c.method == "pinChatMessage"]
    assert max(sum(1 for c in pin_calls if c.chat_id == r.user_id) for r in sent) <= 3
    assert all(r.pin_error is None for r in recipients if r.delivery_status != "sent")
    figures_agree(sync_engine, message_id)


async def test_a_button_press_is_recorded_as_its_broadcast_and_answered(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 4001, 3)
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker,
        text="Remind you?", buttons=[[{"text": "Yes", "callback_data": "remind:42"}]],
    )  # fmt: skip
    [message] = standin.received(4002)
    update = standin.press_button(4002, message.message_id, f"cd:{message_id}:remind:42")

    response = await client.post(
        "/api/telegram/webhook", content=json.dumps(update), headers=WEBHOOK_HEADERS
    )

    assert response.json() == {"ok": True, "recorded": True}
    [event] = rows(
        sync_engine,
        "SELECT user_id, details FROM events WHERE event_type = 'button_click'",
    )
    assert event.user_id == 4002
    assert event.details["broadcast_id"] == message_id
    assert event.details["data"] == "remind:42"
    assert event.details["message_id"] == message.message_id
    await wait_for(lambda: len(standin.callback_answers(4002)) == 1, within=5, what="an answer")
    [answer] = standin.callback_answers()
    assert answer.callback_query_id == update["callback_query"]["id"]

    again = await client.post(
        "/api/telegram/webhook", content=json.dumps(update), headers=WEBHOOK_HEADERS
    )
    assert again.json() == {"ok": True, "recorded": False}
    assert scalar(sync_engine, "SELECT count(*) FROM events WHERE event_type = 'button_click'") == 1


async def test_data_that_only_looks_like_a_broadcast_s_is_kept_as_sent(
    client: httpx.AsyncClient, sync_engine: Engine, standin: BotApiStandin
) -> None:
    """The bot's own buttons may send anything: `cd:7:x` names broadcast 7 only when the
    user pressing it is one of its recipients."""
    update = {
        "update_id": 77,
        "callback_query": {
            "id": "q-77",
            "from": {"id": 5001, "is_bot": False, "first_name": "Ann"},
            "message": {"message_id": 3, "chat": {"id": 5001, "type": "private"}},
            "data": "cd:7:x",
        },
    }
    response = await client.post(
        "/api/telegram/webhook", content=json.dumps(update), headers=WEBHOOK_HEADERS
    )

    assert response.status_code == 200
    details = scalar(sync_engine, "SELECT details FROM events WHERE event_type = 'button_click'")
    assert details["data"] == "cd:7:x" and "broadcast_id" not in details


@pytest.mark.parametrize("unreachable", ["http://127.0.0.1:9", "http://10.255.255.1:81"])
async def test_a_press_is_recorded_at_once_when_telegram_cannot_be_reached(
    settings: Settings, sync_engine: Engine, unreachable: str
) -> None:
    """Answering the press is best effort, after the webhook has answered: Telegram out
    of reach neither fails the webhook nor holds it up past the answer's short timeout."""
    from asgi_lifespan import LifespanManager

    from coursedesk.web.app import create_app

    application = create_app(settings.model_copy(update={"telegram_api_base_url": unreachable}))
    update = {
        "update_id": 91,
        "callback_query": {
            "id": "q-91",
            "from": {"id": 6001, "is_bot": False, "first_name": "Bo"},
            "data": "plain",
        },
    }
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            started = time.monotonic()
            response = await http.post(
                "/api/telegram/webhook", content=json.dumps(update), headers=WEBHOOK_HEADERS
            )
            took = time.monotonic() - started
    assert response.json() == {"ok": True, "recorded": True}
    assert took < 4
    assert scalar(sync_engine, "SELECT count(*) FROM events WHERE event_type = 'button_click'") == 1
