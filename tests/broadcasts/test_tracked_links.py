"""Tracked links end to end: numbered at creation, rewritten per recipient in what the
Bot API receives, and each click through /r/{token} recorded exactly once."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from broadcast_helpers import (
    RunWorker,
    add_many_users,
    rows,
    running_worker,
    scalar,
    send_broadcast,
    wait_for,
)
from media_samples import JPEG, uploaded
from sqlalchemy import Engine

from coursedesk.broadcasts.link_tokens import LinkSigner
from coursedesk.config import Settings
from coursedesk.db.engine import Database
from coursedesk.telegram.standin import BotApiStandin, InlineButton
from coursedesk.web.app import create_app

BASE = "https://school.example/go"
TRACKED = re.compile(re.escape(BASE) + r"/r/([A-Za-z0-9_-]+)")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_base_url": BASE})


async def _sent(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: Engine,
    start_worker: RunWorker,
    **body: Any,
) -> int:
    created = await send_broadcast(client, headers, audience={"type": "all"}, **body)
    message_id = int(created["message_id"])

    def sent() -> bool:
        status = scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id)
        return bool(status == "sent")

    async with running_worker(start_worker):
        await wait_for(sent, within=60, what="sent")
    return message_id


def _tokens(text: str) -> list[str]:
    return TRACKED.findall(text)


def _clicks(engine: Engine, message_id: int) -> list[tuple[int, int, int]]:
    return [
        (row.recipient_id, row.position, row.clicks)
        for row in rows(
            engine,
            "SELECT recipient_id, position, clicks FROM broadcast_clicks WHERE message_id = :m "
            "ORDER BY recipient_id, position",
            m=message_id,
        )
    ]


def _recipient_ids(engine: Engine, message_id: int) -> dict[int, int]:
    """user_id → recipient row id."""
    return {
        row.user_id: row.id
        for row in rows(
            engine, "SELECT id, user_id FROM message_recipients WHERE message_id = :m", m=message_id
        )
    }


async def test_html_links_and_buttons_go_out_per_recipient_and_clicks_count_once_each(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 3001, 3)
    text = (
        '<b>Autumn</b>: <a href="https://school.example/book">book</a> or read '
        "https://school.example/faq?a=1&amp;b=2."
    )
    buttons = [
        [{"text": "Book", "url": "https://school.example/book"}],
        [{"text": "Later", "callback_data": "later"}],
    ]
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker,
        text=text, parse_mode="HTML", buttons=buttons,
    )  # fmt: skip
    links = rows(
        sync_engine,
        "SELECT position, url FROM broadcast_links WHERE message_id = :m ORDER BY position",
        m=message_id,
    )
    assert [(link.position, link.url) for link in links] == [
        (0, "https://school.example/book"),
        (1, "https://school.example/faq?a=1&b=2"),
    ]
    received = {message.chat_id: message for message in standin.received()}
    assert sorted(received) == [3001, 3002, 3003]
    recipients = _recipient_ids(sync_engine, message_id)
    signer = LinkSigner(bytes(scalar(sync_engine, "SELECT secret FROM link_token_keys")))
    every_token = []
    for user_id, message in received.items():
        assert message.parse_mode == "HTML"
        assert message.shown_text == "Autumn: book or read https://school.example/faq?a=1&b=2."
        tokens = _tokens(message.text)
        assert len(tokens) == 2
        assert [signer.verify(token) for token in tokens] == [
            (recipients[user_id], 0),
            (recipients[user_id], 1),
        ]
        assert ">https://school.example/faq?a=1&amp;b=2</a>." in message.text
        book, later = message.buttons
        assert book == (InlineButton("Book", url=f"{BASE}/r/{tokens[0]}"),)
        assert later == (InlineButton("Later", callback_data=f"cd:{message_id}:later"),)
        every_token += tokens
    assert len(set(every_token)) == 6

    first = _tokens(received[3001].text)
    for _ in range(2):
        answer = await client.get(f"/r/{first[0]}")
        assert answer.status_code == 302
        assert answer.headers["location"] == "https://school.example/book"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
    answer = await client.get(f"/r/{first[1]}")
    assert answer.headers["location"] == "https://school.example/faq?a=1&b=2"
    second = _tokens(received[3002].text)
    assert (await client.get(f"/r/{second[0]}")).status_code == 302
    # A link preview's fetch and a HEAD are led on, but are nobody's click.
    preview = await client.get(
        f"/r/{second[1]}", headers={"user-agent": "TelegramBot (like TwitterBot)"}
    )
    assert preview.status_code == 302
    assert (await client.head(f"/r/{second[1]}")).status_code == 302

    assert _clicks(sync_engine, message_id) == [
        (recipients[3001], 0, 2),
        (recipients[3001], 1, 1),
        (recipients[3002], 0, 1),
    ]
    detail = (await client.get(f"/api/messages/{message_id}", headers=operator_headers)).json()
    assert detail["track_links"] is True
    assert detail["clicked_count"] == 2
    assert detail["links"] == [
        {"position": 0, "url": "https://school.example/book", "unique_clicks": 2,
         "total_clicks": 3},
        {"position": 1, "url": "https://school.example/faq?a=1&b=2", "unique_clicks": 1,
         "total_clicks": 1},
    ]  # fmt: skip
    history = (await client.get("/api/messages/history", headers=operator_headers)).json()
    assert [(m["id"], m["clicked_count"]) for m in history["items"]] == [(message_id, 2)]
    page = await client.get(f"/broadcasts/{message_id}", headers=operator_headers)
    assert page.status_code == 200
    assert "https://school.example/faq?a=1&amp;b=2" in page.text
    assert 'data-link-clicks="0"' in page.text


async def test_markdown_v2_plain_and_caption_links_are_rewritten(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 3101, 2)
    markdown = r"*Hi* [book](https://school.example/book) or https://school\.example/faq\."
    await _sent(
        client, operator_headers, sync_engine, start_worker,
        text=markdown, parse_mode="MarkdownV2",
    )  # fmt: skip
    for message in standin.received():
        tokens = _tokens(message.text)
        assert message.text == (
            f"*Hi* [book]({BASE}/r/{tokens[0]}) or "
            f"[https://school\\.example/faq]({BASE}/r/{tokens[1]})\\."
        )
        assert message.shown_text == "Hi book or https://school.example/faq."

    standin.reset()
    plain = "Tom & Jerry <3 https://school.example/faq"
    await _sent(client, operator_headers, sync_engine, start_worker, text=plain)
    for message in standin.received():
        (token,) = _tokens(message.text)
        assert message.parse_mode == "HTML"
        assert message.text == (
            f'Tom &amp; Jerry &lt;3 <a href="{BASE}/r/{token}">https://school.example/faq</a>'
        )
        assert message.shown_text == plain

    standin.reset()
    photo = (await uploaded(client, operator_headers, JPEG, "a.jpg"))["media_id"]
    await _sent(
        client, operator_headers, sync_engine, start_worker,
        text="Photo of https://school.example/hall", media=[{"media_id": photo}],
        buttons=[[{"text": "Open", "url": "https://school.example/hall"}]],
    )  # fmt: skip
    for message in standin.received():
        assert message.kind == "photo"
        (token,) = _tokens(message.text)
        assert message.shown_text == "Photo of https://school.example/hall"
        assert message.buttons == ((InlineButton("Open", url=f"{BASE}/r/{token}"),),)


async def test_untracked_broadcasts_go_as_written(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 3201, 2)
    text = "See https://school.example/faq"
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker,
        text=text, track_links=False,
        buttons=[[{"text": "Open", "url": "https://school.example/"}]],
    )  # fmt: skip
    for message in standin.received():
        assert (message.text, message.parse_mode) == (text, None)
        assert message.buttons == ((InlineButton("Open", url="https://school.example/"),),)
    assert scalar(sync_engine, "SELECT count(*) FROM broadcast_links") == 0
    detail = (await client.get(f"/api/messages/{message_id}", headers=operator_headers)).json()
    assert (detail["track_links"], detail["links"], detail["clicked_count"]) == (False, [], 0)


async def test_tokens_never_issued_lead_nowhere_and_record_nothing(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 3301, 2)
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker, text="See https://school.example/a"
    )
    (token,) = _tokens(standin.received(3301)[0].text)
    signer = LinkSigner(bytes(scalar(sync_engine, "SELECT secret FROM link_token_keys")))
    recipient_id, position = signer.verify(token) or (0, 0)
    unknown_recipient = max(_recipient_ids(sync_engine, message_id).values()) + 1000
    for wrong in (
        token[:-1],
        token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1],
        LinkSigner(b"x" * 32).token(recipient_id, position),
        signer.token(recipient_id, position + 1),  # a link the broadcast does not have
        signer.token(unknown_recipient, 0),
        "....",
        "%00",
        "x" * 200,
    ):
        answer = await client.get(f"/r/{wrong}")
        assert answer.status_code == 404, wrong
        assert answer.headers["content-type"].startswith("text/html")
        assert "This link does not lead anywhere" in answer.text
        assert "cache-control" in answer.headers
    assert _clicks(sync_engine, message_id) == []

    # Once the broadcast is taken back from the chats, its links lead nowhere either.
    assert (await client.get(f"/r/{token}")).status_code == 302
    with sync_engine.begin() as connection:
        connection.exec_driver_sql(
            f"UPDATE message_history SET delete_requested_at = now() WHERE id = {message_id}"
        )
    assert (await client.get(f"/r/{token}")).status_code == 404
    assert _clicks(sync_engine, message_id) == [(recipient_id, 0, 1)]


async def test_concurrent_clicks_on_one_token_are_all_counted(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_many_users(sync_engine, 3401, 1)
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker, text="See https://school.example/a"
    )
    (token,) = _tokens(standin.received()[0].text)
    answers = await asyncio.gather(*(client.get(f"/r/{token}") for _ in range(40)))
    assert {answer.status_code for answer in answers} == {302}
    ((_, position, clicks),) = _clicks(sync_engine, message_id)
    assert (position, clicks) == (0, 40)


async def test_track_links_without_public_base_url_is_refused_and_nothing_is_made(
    settings: Settings,
    database: Database,
    operator_headers: dict[str, str],
    sync_engine: Engine,
) -> None:
    add_many_users(sync_engine, 3501, 2)
    application = create_app(
        settings.model_copy(update={"public_base_url": None}), database=database
    )
    async with (
        LifespanManager(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as client,
    ):
        body = {"text": "See https://school.example", "audience": {"type": "all"}}
        for extra in ({"track_links": True}, {"track_links": True, "dry_run": True}):
            answer = await client.post(
                "/api/messages/send", json=body | extra, headers=operator_headers
            )
            assert answer.status_code == 400, answer.text
            assert "PUBLIC_BASE_URL" in answer.json()["error"]
        assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0
        made = await send_broadcast(client, operator_headers, **body)
    tracked = scalar(
        sync_engine, "SELECT track_links FROM message_history WHERE id = :m", m=made["message_id"]
    )
    assert tracked is False
    assert scalar(sync_engine, "SELECT count(*) FROM broadcast_links") == 0
