"""The composer sends once: its confirm form carries a key, a form posted again
leads to the broadcast already made, and the confirm page warns of a repeat."""

from __future__ import annotations

import asyncio
import re

import httpx
from page_client import SignIn, form_token
from pages_data import ANNA, BORIS, CHLOE, add_students
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role

TEXT = "Spring stream starts Monday"
_KEY = re.compile(r'name="request_key" value="([^"]*)"')


def _fields(page: httpx.Response, **fields: str) -> dict[str, str]:
    """What the page's form would post: its CSRF token and request key, and `fields`."""
    key = _KEY.search(page.text)
    assert key is not None, "the form carries no request key"
    return {
        "csrf_token": form_token(page),
        "request_key": key.group(1),
        "text": TEXT,
        "audience_type": "all",
        "send_at": "now",
    } | fields


def _broadcasts(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT id FROM message_history ORDER BY id")))


async def _opened(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/broadcasts/new")


async def test_the_composer_starts_with_no_audience_chosen(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    composer = await _opened(client)
    assert re.search(r'name="audience_type" value="\w+" checked', composer.text) is None
    unchosen = await client.post(
        "/broadcasts/new", data=_fields(composer, audience_type="", action="review")
    )
    assert unchosen.status_code == 400
    assert "choose who receives the broadcast" in unchosen.text
    chosen = await client.get("/broadcasts/new?audience=users&user_ids=1001")
    assert 'name="audience_type" value="users" checked' in chosen.text
    assert _KEY.search(composer.text).group(1) != _KEY.search(chosen.text).group(1)  # type: ignore[union-attr]


async def test_a_confirm_form_posted_again_leads_to_the_broadcast_it_made(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    composer = await _opened(client)
    form = _fields(composer)
    confirm = await client.post("/broadcasts/new", data=form | {"action": "review"})
    assert confirm.status_code == 200 and 'id="confirm-send"' in confirm.text
    assert _KEY.search(confirm.text).group(1) == form["request_key"]  # type: ignore[union-attr]

    sent = await client.post("/broadcasts/new", data=form | {"action": "send"})
    assert sent.status_code == 303
    [made] = _broadcasts(sync_engine)
    assert sent.headers["location"] == f"/broadcasts/{made}"
    assert "is on its way to 4 students" in (await client.get(sent.headers["location"])).text

    # Back to the confirm page and reload: the browser posts the review again.
    again = await client.post("/broadcasts/new", data=form | {"action": "review"})
    assert again.status_code == 200
    assert "Already sent" in again.text and 'id="confirm-send"' not in again.text
    assert f'href="/broadcasts/{made}" id="see-made"' in again.text
    # And Send pressed on it once more, or the send posted twice: it leads to the broadcast.
    resent = await client.post("/broadcasts/new", data=form | {"action": "send"})
    assert resent.status_code == 303 and resent.headers["location"] == f"/broadcasts/{made}"
    page = await client.get(resent.headers["location"])
    assert f"Broadcast #{made} was already sent from this form, so it was not sent again." in (
        page.text
    )
    assert _broadcasts(sync_engine) == [made]

    # A copy to edit is a new broadcast, with a key of its own.
    copy = await client.post(
        "/broadcasts/new", data=form | {"action": "edit", "request_key": "", "text": "Copy"}
    )
    assert _KEY.search(copy.text).group(1) not in ("", form["request_key"])  # type: ignore[union-attr]


async def test_a_form_posted_again_after_its_audience_changed_still_leads_to_its_broadcast(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    form = _fields(await _opened(client), audience_type="users", user_ids=str(ANNA))
    sent = await client.post("/broadcasts/new", data=form | {"action": "send"})
    assert sent.status_code == 303
    with sync_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO bot_users (user_id, is_blocked) VALUES (:anna, true)"),
            {"anna": ANNA},
        )
    # A new broadcast to Anna alone would now reach nobody, and is refused as such...
    other = _fields(await _opened(client), audience_type="users", user_ids=str(ANNA))
    refused = await client.post("/broadcasts/new", data=other | {"action": "review"})
    assert refused.status_code == 400 and "nobody would receive" in refused.text
    # ...but the form that made one still leads to it.
    again = await client.post("/broadcasts/new", data=form | {"action": "review"})
    assert again.status_code == 200 and "Already sent" in again.text
    resent = await client.post("/broadcasts/new", data=form | {"action": "send"})
    assert resent.headers["location"] == sent.headers["location"]
    assert len(_broadcasts(sync_engine)) == 1


async def test_a_draft_changed_after_its_form_sent_is_a_new_broadcast(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    form = _fields(await _opened(client))
    await client.post("/broadcasts/new", data=form | {"action": "send"})
    changed = form | {"text": "Spring stream starts Tuesday"}

    confirm = await client.post("/broadcasts/new", data=changed | {"action": "review"})
    assert confirm.status_code == 200 and 'id="confirm-send"' in confirm.text
    new_key = _KEY.search(confirm.text).group(1)  # type: ignore[union-attr]
    assert new_key != form["request_key"]

    # A confirm page rendered with the old key (say, restored by the browser) sends nothing.
    stale = await client.post("/broadcasts/new", data=changed | {"action": "send"})
    assert stale.status_code == 409
    assert "this form already sent another broadcast" in stale.text
    assert 'id="confirm-send"' in stale.text
    assert len(_broadcasts(sync_engine)) == 1

    sent = await client.post(
        "/broadcasts/new", data=changed | {"action": "send", "request_key": new_key}
    )
    assert sent.status_code == 303
    assert len(_broadcasts(sync_engine)) == 2


async def test_two_sends_of_one_form_at_once_make_one_broadcast(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    form = _fields(await _opened(client)) | {"action": "send"}
    # New broadcasts wait for this lock, so both posts are in before either is done.
    with sync_engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE message_history IN SHARE MODE"))
        both = asyncio.ensure_future(
            asyncio.gather(
                client.post("/broadcasts/new", data=form),
                client.post("/broadcasts/new", data=form),
            )
        )
        for _ in range(400):
            # A connection of its own each time: one in a transaction sees the activity
            # as it was when it first looked.
            with sync_engine.connect() as watcher:
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar()
            if waiting == 2:
                break
            await asyncio.sleep(0.05)
        assert waiting == 2, "the two sends did not meet"
        blocker.rollback()
    first, second = await both
    [made] = _broadcasts(sync_engine)
    assert {first.headers["location"], second.headers["location"]} == {f"/broadcasts/{made}"}


async def test_the_confirm_page_warns_when_the_same_text_went_to_some_of_them_lately(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    to_anna_and_boris = {"audience_type": "users", "user_ids": f"{ANNA}, {BORIS}"}
    sent = await client.post(
        "/broadcasts/new", data=_fields(await _opened(client), **to_anna_and_boris, action="send")
    )
    made = int(sent.headers["location"].rsplit("/", 1)[1])

    async def review(**fields: str) -> httpx.Response:
        composer = await _opened(client)
        return await client.post(
            "/broadcasts/new", data=_fields(composer, **fields) | {"action": "review"}
        )

    everyone = await review()
    warning = f'data-repeated="{made}"'
    assert warning in everyone.text
    assert "is scheduled to reach 2 of these students on" in everyone.text, "queued, not sent"
    assert f'<a href="/broadcasts/{made}">broadcast #{made}</a> (2 chosen students)' in (
        everyone.text
    )
    assert 'id="confirm-send"' in everyone.text, "a warning, not a refusal"
    assert warning not in (await review(audience_type="users", user_ids=str(CHLOE))).text
    assert warning not in (await review(text="Another text")).text

    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE message_history SET status = 'sent', started_at = now(), sent_at = now() "
                "WHERE id = :m"
            ),
            {"m": made},
        )
        connection.execute(
            text(
                "UPDATE message_recipients SET delivery_status = CASE WHEN user_id = :anna "
                "THEN 'sent' ELSE 'failed' END WHERE message_id = :m"
            ),
            {"m": made, "anna": ANNA},
        )
    after = await review()
    assert "reached 1 of these students on" in after.text
    assert warning not in (await review(audience_type="users", user_ids=str(BORIS))).text, (
        "Boris never got it"
    )

    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE message_history SET created_at = now() - interval '25 hours', "
                "started_at = now() - interval '25 hours' WHERE id = :m"
            ),
            {"m": made},
        )
    assert warning not in (await review()).text, "a day ago is not lately"
