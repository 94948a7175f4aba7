"""Personal broadcasts: variables filled per recipient and escaped for the parse mode, so
hostile names arrive as typed; unknown variables and texts too long once filled refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from broadcast_helpers import (
    RunWorker,
    figures_agree,
    rows,
    running_worker,
    scalar,
    send_broadcast,
    wait_for,
)
from media_samples import JPEG, uploaded
from sqlalchemy import Engine, text

from coursedesk.analytics.folding import fold_pending
from coursedesk.broadcasts.personalisation import Template, escaper, parse_template
from coursedesk.pages.composer_form import preview_of
from coursedesk.telegram.formatting import plain_text
from coursedesk.telegram.standin import BotApiStandin

HOSTILE = {
    101: ('<b>Ann & "Co"</b>', "ann_1", "Autumn-1"),
    102: ("a_b*c [x](y) `z` ~w~ \\ | > # + - = { } . !", "x__y", "Sp*ring_2"),
    103: ("&amp; &lt;i&gt; &#60;", None, None),
    104: (None, None, None),
}


def add_named_users(engine: Engine, users: dict[int, tuple[str | None, ...]]) -> None:
    """One booking per user, carrying the names and stream the summary will hold."""
    with engine.begin() as connection:
        for user_id, (first_name, username, stream) in users.items():
            connection.execute(
                text(
                    "INSERT INTO bookings (user_id, username, first_name, course_id, "
                    "course_stream, confirmed) VALUES (:u, :name, :first, 1, :s, 1)"
                ),
                {"u": user_id, "name": username, "first": first_name, "s": stream},
            )
    fold_pending(engine)


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
    figures_agree(engine, message_id)
    return message_id


def shown_by_chat(standin: BotApiStandin) -> dict[int, str]:
    return {message.chat_id: message.shown_text for message in standin.received()}


def expected(template: str) -> dict[int, str]:
    """What each hostile user should see: the template with their values as typed."""
    seen = {}
    for user_id, (first_name, username, stream) in HOSTILE.items():
        seen[user_id] = (
            template.replace("F", first_name or "friend")
            .replace("U", username or "")
            .replace("S", stream or "no stream")
        )
    return seen


@pytest.mark.parametrize(
    ("parse_mode", "message"),
    [
        ("HTML", "Hi <b>{{first_name|friend}}</b> (@{{ username }}), "
                 "<i>{{course_stream|no stream}}</i> &amp; more"),
        ("MarkdownV2", "Hi *{{first_name|friend}}* \\(@{{username}}\\), "
                       "_{{course_stream | no stream}}_ & more"),
        (None, "Hi {{first_name|friend}} (@{{username}}), {{course_stream|no stream}} & more"),
    ],
)  # fmt: skip
async def test_hostile_names_arrive_as_typed_in_every_parse_mode(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
    parse_mode: str | None,
    message: str,
) -> None:
    add_named_users(sync_engine, HOSTILE)
    await _sent(
        client, operator_headers, sync_engine, start_worker,
        text=message, parse_mode=parse_mode,
        buttons=[[{"text": "Book, {{first_name|friend}}!", "url": "https://school.example"}]],
    )  # fmt: skip

    assert shown_by_chat(standin) == expected("Hi F (@U), S & more")
    for chat, (first_name, _, _) in HOSTILE.items():
        [received] = standin.received(chat)
        assert received.buttons[0][0].text == f"Book, {first_name or 'friend'}!"


async def test_a_caption_is_filled_in_too(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_named_users(sync_engine, HOSTILE)
    photo = (await uploaded(client, operator_headers, JPEG, "a.jpg"))["media_id"]
    await _sent(
        client, operator_headers, sync_engine, start_worker,
        text="<b>{{first_name|friend}}</b>, your seat", parse_mode="HTML",
        media=[{"media_id": photo}],
    )  # fmt: skip

    assert shown_by_chat(standin) == expected("F, your seat")
    assert sum(1 for m in standin.received() if m.files[0].uploaded) == 1


async def test_unknown_variables_are_refused_naming_them_and_nothing_is_queued(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    add_named_users(sync_engine, HOSTILE)
    cases = [
        ({"text": "Hi {{last_name}}"}, "text: unknown variable {{last_name}}; use "
         "{{first_name}}, {{username}}, {{course_stream}}"),
        ({"text": "Hi {{ first name }}"}, "text: unknown variable {{first name}}"),
        ({"text": "Hi {{}}"}, "text: unknown variable {{}}"),
        ({"text": "Hi {{First_Name|x}}"}, "unknown variable {{First_Name}}"),
        ({"text": "Hi <b>{{first_name}}", "parse_mode": "HTML"}, "text: "),
        ({"text": "Hi", "buttons": [[{"text": "Go {{stream}}", "url": "https://a.example"}]]},
         "buttons[0][0].text: unknown variable {{stream}}"),
    ]  # fmt: skip
    for extra, fragment in cases:
        body = {"audience": {"type": "all"}} | extra
        for dry_run in (False, True):
            response = await client.post(
                "/api/messages/send", json=body | {"dry_run": dry_run}, headers=operator_headers
            )
            assert response.status_code == 400, (extra, response.text)
            assert fragment in response.json()["error"], (extra, response.json())
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_a_text_too_long_for_the_longest_name_is_refused_up_front(
    client: httpx.AsyncClient, operator_headers: dict[str, str], sync_engine: Engine
) -> None:
    add_named_users(sync_engine, {201: ("Al", None, None), 202: ("Bartholomew", None, None)})
    message = "x" * 4090 + " {{first_name}}"

    refused = await client.post(
        "/api/messages/send",
        json={"text": message, "audience": {"type": "all"}},
        headers=operator_headers,
    )
    fits = await client.post(
        "/api/messages/send",
        json={"text": message, "audience": {"type": "users", "user_ids": [201]},
              "dry_run": True},
        headers=operator_headers,
    )  # fmt: skip
    caption = await client.post(
        "/api/messages/send",
        json={
            "text": "y" * 1014 + " {{first_name|friend}}",
            "audience": {"type": "all"},
            "media": [{"media_id": (await uploaded(client, operator_headers, JPEG))["media_id"]}],
        },
        headers=operator_headers,
    )

    assert refused.status_code == 400
    assert refused.json()["error"] == (
        "text: too long for user 202 once filled in: 4102 characters after formatting, "
        "the limit of a message is 4096 (shorten the text or the fallbacks)"
    )
    assert fits.status_code == 200, fits.text
    assert caption.status_code == 400
    assert "too long for user 202 once filled in: 1026 characters" in caption.json()["error"]
    assert "the limit of a caption is 1024" in caption.json()["error"]
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_a_recipient_whose_text_grew_too_long_or_empty_is_failed_not_cut(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    """Names change between the request and the send: each recipient is checked again."""
    add_named_users(
        sync_engine, {301: ("Al", None, None), 302: ("Bo", None, None), 303: ("Cy", None, None)}
    )
    created = await send_broadcast(
        client, operator_headers, text="x" * 4090 + "{{first_name}}", audience={"type": "all"}
    )
    with sync_engine.begin() as connection:
        connection.execute(
            text("UPDATE user_summaries SET first_name = :n WHERE user_id = 302"),
            {"n": "Maximilianus"},
        )
    message_id = created["message_id"]
    async with running_worker(start_worker):
        await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=30, what="sent")

    assert sorted(shown_by_chat(standin)) == [301, 303]
    assert {len(m.shown_text) for m in standin.received()} == {4092}
    [failed] = rows(
        sync_engine,
        "SELECT user_id, error FROM message_recipients "
        "WHERE message_id = :m AND delivery_status = 'failed'",
        m=message_id,
    )
    assert (failed.user_id, failed.error) == (
        302,
        "not sent: the message filled in for this user is 4102 characters after "
        "formatting, over Telegram's 4096",
    )


async def test_a_message_empty_for_someone_fails_them_alone(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
    start_worker: RunWorker,
) -> None:
    add_named_users(sync_engine, {401: ("Di", None, None), 402: (None, None, None)})
    message_id = await _sent(
        client, operator_headers, sync_engine, start_worker, text="{{first_name}}",
        buttons=[[{"text": "{{username}}", "url": "https://a.example"}]],
    )  # fmt: skip

    assert standin.received() == []
    errors = dict(
        rows(
            sync_engine,
            "SELECT user_id, error FROM message_recipients WHERE message_id = :m",
            m=message_id,
        )
    )
    assert errors == {
        401: "not sent: button 1 of row 1 has no text for this user (give its variable a fallback)",
        402: "not sent: the message filled in for this user is empty",
    }


async def test_a_test_send_is_filled_in_for_the_chat_s_user(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    standin: BotApiStandin,
) -> None:
    add_named_users(sync_engine, {101: HOSTILE[101]})
    for chat, shown in ((101, '<b>Ann & "Co"</b>!'), (999, "friend!")):
        response = await client.post(
            "/api/messages/test",
            json={"text": "{{first_name|friend}}!", "chat_id": chat, "parse_mode": "HTML"},
            headers=operator_headers,
        )
        assert response.json()["outcome"] == "delivered", response.text
        [received] = standin.received(chat)
        assert received.shown_text == shown


def test_the_composer_preview_shows_the_variables_by_name() -> None:
    preview = preview_of("Hi *{{first_name|friend}}*\\!", "MarkdownV2")
    assert preview["error"] is None
    assert preview["html"] == "Hi <b>{{first_name}}</b>!"
    assert "unknown variable {{nick}}" in preview_of("Hi {{nick}}", "")["error"]


@pytest.mark.parametrize("parse_mode", ["HTML", "MarkdownV2"])
@pytest.mark.parametrize(
    "value",
    ["<", "&", "_", "*", "\\", "`", "[a](b)", "&lt;", "]]>", "'\"", "-.!#+=|{}~>", "x\ny"],
)
def test_every_special_character_is_escaped_to_show_as_itself(parse_mode: str, value: str) -> None:
    template: Template = parse_template("«{{first_name}}»", "text")
    filled = template.fill({"first_name": value}, escaper(parse_mode))
    assert plain_text(filled, parse_mode) == f"«{value}»"
