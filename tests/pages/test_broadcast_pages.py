"""The composer's review-then-send flow, the broadcast pages, cancel, and the test send."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from page_client import SignIn, form_token
from pages_data import ANNA, add_students
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.config import Settings
from coursedesk.telegram.standin import BotApiStandin, StandinThread

BOT_TOKEN = "515151:pages-test-token"
DRAFT = {
    "text": "<b>Hello</b>, a new stream starts on Monday",
    "parse_mode": "HTML",
    "audience_type": "all",
    "stream": "",
    "user_ids": "",
    "send_at": "now",
    "scheduled_at": "",
    "test_chat_id": "",
}


@pytest.fixture(scope="module")
def standin_server() -> Iterator[StandinThread]:
    with StandinThread(BotApiStandin(BOT_TOKEN)) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, standin_server: StandinThread) -> Settings:
    """The test settings, with the stand-in Bot API as Telegram."""
    standin_server.standin.reset()
    return settings.model_copy(
        update={
            "telegram_bot_token": BOT_TOKEN,
            "telegram_api_base_url": standin_server.base_url,
        }
    )


def broadcasts(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, status, total_recipients, created_by, parse_mode, scheduled_at "
                "FROM message_history ORDER BY id"
            )
        )
        return [dict(row._mapping) for row in rows]


async def compose(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/broadcasts/new")
    return await client.post(
        "/broadcasts/new", data=DRAFT | {"csrf_token": form_token(page)} | fields
    )


async def test_a_broadcast_is_reviewed_then_sent_then_cancelled(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)

    review = await compose(client, action="review")
    assert review.status_code == 200
    assert "<strong data-recipients>4</strong><span>students will receive it" in review.text
    assert "Send to 4 students" in review.text
    assert "<b>Hello</b>, a new stream" in review.text, "the preview shows the formatting"
    assert broadcasts(sync_engine) == [], "a review sends nothing"

    sent = await compose(client, action="send")
    assert sent.status_code == 303
    [message] = broadcasts(sync_engine)
    assert sent.headers["location"] == f"/broadcasts/{message['id']}"
    assert (message["status"], message["total_recipients"], message["created_by"]) == (
        "scheduled",
        4,
        "olga",
    )
    page = await client.get(sent.headers["location"])
    assert "is on its way to 4 students" in page.text
    assert 'data-figure="pending">4<' in page.text
    assert 'data-live="true"' in page.text
    assert "Cancel broadcast" in page.text

    history = await client.get("/broadcasts")
    assert f'href="/broadcasts/{message["id"]}"' in history.text
    assert "Everyone" in history.text

    cancelled = await client.post(
        f"/broadcasts/{message['id']}/cancel", data={"csrf_token": form_token(page)}
    )
    assert cancelled.status_code == 303
    page = await client.get(f"/broadcasts/{message['id']}")
    assert "cancelled: 4 messages will not be sent" in page.text
    assert broadcasts(sync_engine)[0]["status"] == "cancelled"
    assert "Cancel broadcast" not in page.text

    again = await client.post(
        f"/broadcasts/{message['id']}/cancel", data={"csrf_token": form_token(page)}
    )
    assert again.status_code == 303
    assert "Nothing was changed" in (await client.get(f"/broadcasts/{message['id']}")).text
    received = await client.get(f"/users/{ANNA}")
    assert f'href="/broadcasts/{message["id"]}"' in received.text


async def test_the_composer_refuses_what_would_fail_and_keeps_the_draft(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    past = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    refusals = {
        "is reserved": {"text": "Hello.", "parse_mode": "MarkdownV2"},
        "choose the stream": {"audience_type": "stream"},
        "whole numbers": {"audience_type": "users", "user_ids": "12, abc"},
        "nobody would receive": {"audience_type": "stream", "stream": "NO-SUCH"},
        "is in the past": {"send_at": "later", "scheduled_at": past},
        "not a date and time": {"send_at": "later", "scheduled_at": "soon"},
    }
    for expected, fields in refusals.items():
        for action in ("review", "send"):
            answer = await compose(client, action=action, **fields)
            assert answer.status_code == 400, (expected, action)
            assert expected in answer.text, (expected, action)
            assert "<textarea" in answer.text, "the composer comes back with the draft"
    assert broadcasts(sync_engine) == []


async def test_a_broadcast_scheduled_for_later(signed_in: SignIn, sync_engine: Engine) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    when = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    fields = {
        "send_at": "later",
        "scheduled_at": when.strftime("%Y-%m-%dT%H:%M"),
        "audience_type": "users",
        "user_ids": f"{ANNA}, 424242",
    }
    review = await compose(client, action="review", **fields)
    assert "Schedule for 1 student" in review.text
    assert "Not students, so left out: 424242" in review.text
    sent = await compose(client, action="send", **fields)
    assert sent.status_code == 303
    [message] = broadcasts(sync_engine)
    assert message["scheduled_at"] == when
    assert "scheduled for 1 student" in (await client.get(sent.headers["location"])).text


async def test_the_live_preview_shows_what_a_chat_would(signed_in: SignIn) -> None:
    client = await signed_in(Role.operator)
    token = form_token(await client.get("/broadcasts/new"))
    headers = {"X-CSRF-Token": token}

    bold = await client.post(
        "/broadcasts/preview",
        data={"text": "*bold* text", "parse_mode": "MarkdownV2"},
        headers=headers,
    )
    assert bold.status_code == 200
    assert '<div class="bubble-text"><b>bold</b> text</div>' in bold.text
    plain = await client.post(
        "/broadcasts/preview", data={"text": "<script>x()</script>"}, headers=headers
    )
    assert "&lt;script&gt;" in plain.text and "<script>" not in plain.text
    refused = await client.post(
        "/broadcasts/preview", data={"text": "<b>open", "parse_mode": "HTML"}, headers=headers
    )
    assert "Telegram would refuse this" in refused.text
    forged = await client.post("/broadcasts/preview", data={"text": "hi"})
    assert forged.status_code == 403


async def test_a_test_send_reaches_the_chat(
    signed_in: SignIn, standin_server: StandinThread, sync_engine: Engine
) -> None:
    client = await signed_in(Role.operator)
    answer = await compose(client, action="test", test_chat_id="777")
    assert answer.status_code == 200
    assert "Test message delivered to chat 777." in answer.text
    [received] = standin_server.standin.received(777)
    assert (received.text, received.parse_mode) == (DRAFT["text"], "HTML")
    assert broadcasts(sync_engine) == []

    standin_server.standin.update_faults({"blocked_chats": [778]})
    blocked = await compose(client, action="test", test_chat_id="778")
    assert "Chat 778 has blocked the bot" in blocked.text
    wrong = await compose(client, action="test", test_chat_id="me")
    assert wrong.status_code == 400 and "a whole number" in wrong.text


async def test_viewers_read_broadcasts_but_cannot_send_or_cancel(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    operator = await signed_in(Role.operator)
    sent = await compose(operator, action="send")
    viewer = await signed_in(Role.viewer)

    history = await viewer.get("/broadcasts")
    assert history.status_code == 200 and "New broadcast" not in history.text
    composer = await viewer.get("/broadcasts/new")
    assert composer.status_code == 403 and "Not allowed" in composer.text
    page = await viewer.get(sent.headers["location"])
    assert page.status_code == 200 and "Cancel broadcast" not in page.text
    refused = await viewer.post(
        sent.headers["location"] + "/cancel", data={"csrf_token": form_token(page)}
    )
    assert refused.status_code == 403
    assert broadcasts(sync_engine)[0]["status"] == "scheduled"
