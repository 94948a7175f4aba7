"""A broadcast's page and the history say what became of it: delivered, cancelled, deleted."""

from __future__ import annotations

import re

import httpx
from page_client import SignIn, form_token
from pages_data import ANNA, BORIS, CHLOE, add_students
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.broadcasts import service
from coursedesk.broadcasts.audiences import AllUsers
from coursedesk.db.engine import Database
from page_text import text_of


async def _broadcast_to_everyone(database: Database) -> int:
    async with database.transaction() as session:
        created = await service.create_broadcast(
            session, text="Spring stream starts Monday", audience=AllUsers(type="all"), actor="olga"
        )
    return created.message_id


def _as_the_worker(engine: Engine, statement: str, message_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), {"m": message_id, "anna": ANNA, "boris": BORIS})


def _figure(page: httpx.Response, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', page.text)
    assert found is not None, f"no figure {name} on the page"
    return found.group(1)


def _cell(page: httpx.Response, column: str) -> list[str]:
    found = re.search(rf'data-column="{column}">(.*?)</td>', page.text)
    assert found is not None, f"no {column} column in the history"
    return text_of(found.group(1)).split()


async def test_a_cancelled_then_deleted_broadcast_shows_what_was_delivered_and_taken_back(
    signed_in: SignIn, sync_engine: Engine, database: Database
) -> None:
    add_students(sync_engine)
    message_id = await _broadcast_to_everyone(database)
    # Two delivered and one failed before the cancel; the fourth never went.
    _as_the_worker(
        sync_engine,
        "UPDATE message_history SET status = 'sending', started_at = now() WHERE id = :m",
        message_id,
    )
    _as_the_worker(
        sync_engine,
        "UPDATE message_recipients SET delivery_status = CASE WHEN user_id IN (:anna, :boris) "
        "THEN 'sent' ELSE 'failed' END, sent_at = now(), telegram_message_id = user_id "
        f"WHERE message_id = :m AND user_id <> {CHLOE}",
        message_id,
    )
    client = await signed_in(Role.operator)
    page = await client.get(f"/broadcasts/{message_id}")
    token = form_token(page)
    cancelled = await client.post(f"/broadcasts/{message_id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303
    deleting = await client.post(f"/broadcasts/{message_id}/delete", data={"csrf_token": token})
    assert deleting.status_code == 303

    page = await client.get(f"/broadcasts/{message_id}")
    assert "Deleting from chats" in page.text
    assert "Deleting from the chats: 0 of 2 done." in page.text

    _as_the_worker(
        sync_engine,
        "UPDATE message_recipients SET delivery_status = 'deleted' "
        "WHERE message_id = :m AND delivery_status = 'sent'",
        message_id,
    )
    _as_the_worker(
        sync_engine,
        "UPDATE message_history SET deleted_at = now(), delete_cursor = NULL WHERE id = :m",
        message_id,
    )
    page = await client.get(f"/broadcasts/{message_id}")
    heading = page.text[page.text.index("<h1>") : page.text.index("</h1>")]
    assert ">Cancelled<" in heading and ">Deleted from chats<" in heading
    assert ">Sent<" not in heading
    assert (_figure(page, "delivered"), _figure(page, "failed")) == ("2", "1")
    assert (_figure(page, "cancelled"), _figure(page, "deleted"), _figure(page, "total")) == (
        "1",
        "2",
        "4",
    )
    assert "0 still in the chats" in page.text
    assert (
        "Delivered to 2 of 4 students; 1 failed; 1 never sent (cancelled). "
        "Since deleted from every chat it reached." in page.text
    )

    history = await client.get("/broadcasts")
    row = history.text[history.text.index(f'href="/broadcasts/{message_id}"') :]
    row = row[: row.index("</tr>")]
    assert ">Cancelled<" in row and ">Deleted<" in row
    assert _cell(history, "delivered") == ["2", "all", "deleted"]
    assert _cell(history, "failed") == ["1"]
    assert _cell(history, "unsent") == ["1", "cancelled"]


async def test_a_broadcast_sent_to_all_then_partly_deleted_says_so(
    signed_in: SignIn, sync_engine: Engine, database: Database
) -> None:
    add_students(sync_engine)
    message_id = await _broadcast_to_everyone(database)
    _as_the_worker(
        sync_engine,
        "UPDATE message_recipients SET delivery_status = 'sent', sent_at = now(), "
        "telegram_message_id = user_id WHERE message_id = :m",
        message_id,
    )
    _as_the_worker(
        sync_engine,
        "UPDATE message_history SET status = 'sent', started_at = now(), sent_at = now(), "
        "delete_requested_at = now(), deleted_at = now(), delete_refused = 1 WHERE id = :m",
        message_id,
    )
    _as_the_worker(
        sync_engine,
        "UPDATE message_recipients SET delivery_status = 'deleted' "
        "WHERE message_id = :m AND user_id <> :anna",
        message_id,
    )
    client = await signed_in(Role.viewer)
    page = await client.get(f"/broadcasts/{message_id}")
    assert (_figure(page, "delivered"), _figure(page, "deleted"), _figure(page, "pending")) == (
        "4",
        "3",
        "0",
    )
    cards = page.text[page.text.index('class="figures') : page.text.index('class="progress"')]
    assert 'data-figure="cancelled"' not in cards, "nothing was cancelled: no such figure"
    assert "1 refused by Telegram" in page.text
    assert "Delivered to 4 of 4 students. 3 messages deleted from the chats since;" in page.text
    history = await client.get("/broadcasts")
    assert _cell(history, "delivered") == ["4", "3", "deleted"]
    assert _cell(history, "unsent") == ["0"]
