"""The composer's content: media served back and attached without a script, buttons and
options sent, the preview as a chosen student, drafts kept with a version, and copies."""

from __future__ import annotations

import os
import re

import httpx
from fastapi import FastAPI
from page_client import SignIn, form_token
from pages_data import ANNA, BORIS, add_students
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.analytics.folding import fold_pending

# First bytes that make a photo and a document of them (broadcasts/sniffing.py).
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2000)
PDF = b"%PDF-1.7\n" + os.urandom(4000)

_KEY = re.compile(r'name="request_key" value="([^"]*)"')
_VERSION = re.compile(r'name="draft_version" value="([^"]*)"')


def _key(page: httpx.Response) -> str:
    found = _KEY.search(page.text)
    assert found is not None
    return found.group(1)


async def _upload(
    client: httpx.AsyncClient, token: str, content: bytes, name: str, kind: str
) -> int:
    answer = await client.post(
        "/api/media",
        files={"file": (name, content, kind)},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 201, answer.text
    media_id: int = answer.json()["media_id"]
    return media_id


def _composition(page: httpx.Response, **fields: str | list[str]) -> dict[str, str | list[str]]:
    return {
        "csrf_token": form_token(page),
        "request_key": _key(page),
        "text": "Hi {{first_name|friend}}, the PY-1 stream starts Monday",
        "parse_mode": "",
        "audience_type": "users",
        "user_ids": f"{ANNA}, {BORIS}",
        "send_at": "now",
        "button_row": ["0", "1"],
        "button_text": ["Timetable", "I'm in"],
        "button_kind": ["url", "callback"],
        "button_value": ["https://example.org/timetable", "going"],
        "pin": "1",
        "silent": "1",
    } | fields


def _one(engine: Engine, sql: str, **values: object) -> object:
    with engine.connect() as connection:
        return connection.execute(text(sql), values).one()


async def test_media_is_served_to_staff_with_its_type_and_documents_only_as_downloads(
    signed_in: SignIn, app: FastAPI
) -> None:
    client = await signed_in(Role.operator)
    token = form_token(await client.get("/broadcasts/new"))
    photo = await _upload(client, token, PNG, "poster.png", "image/png")
    document = await _upload(client, token, PDF, "plan.pdf", "text/html")

    shown = await client.get(f"/api/media/{photo}")
    assert shown.status_code == 200 and shown.content == PNG
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["content-disposition"].startswith("inline;")
    assert shown.headers["x-content-type-options"] == "nosniff"
    downloaded = await client.get(f"/api/media/{document}")
    assert downloaded.content == PDF
    assert downloaded.headers["content-type"] == "application/octet-stream"
    assert downloaded.headers["content-disposition"] == "attachment; filename*=UTF-8''plan.pdf"
    assert "sandbox" in downloaded.headers["content-security-policy"]

    assert (await client.get("/api/media/999999")).status_code == 404
    assert (await client.get("/api/media/0")).status_code == 422
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as anon:
        assert (await anon.get(f"/api/media/{photo}")).status_code == 401


async def test_a_file_is_attached_by_the_form_alone_and_only_with_its_csrf_token(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    fields = {"csrf_token": form_token(page), "text": "Poster", "media_ids": ""}
    attached = await client.post(
        "/broadcasts/new/attach",
        data=fields,
        files={"file": ("poster.png", PNG, "image/png")},
    )
    assert attached.status_code == 200, attached.text
    (media_id,) = _one(sync_engine, "SELECT id FROM media_files")  # type: ignore[misc]
    assert f'name="media_ids" id="media-ids" value="{media_id}"' in attached.text
    assert "Attached poster.png." in attached.text and ">Poster</textarea>" in attached.text
    assert f'<img src="/api/media/{media_id}"' in attached.text

    refused = await client.post(
        "/broadcasts/new/attach",
        data=fields | {"csrf_token": "wrong"},
        files={"file": ("poster.png", PNG, "image/png")},
    )
    assert refused.status_code == 403
    empty = await client.post(
        "/broadcasts/new/attach", data=fields, files={"file": ("", b"", "application/octet-stream")}
    )
    assert empty.status_code == 400 and "Choose a file to attach first." in empty.text
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM media_files")) == 1


async def test_the_preview_shows_what_a_chosen_student_would_see(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, username, first_name, course_id, confirmed) "
                "VALUES (2001, 'tag', '<b>Tag</b> & co', 1, 1)"
            )
        )
    fold_pending(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    token = form_token(page)
    photo = await _upload(client, token, PNG, "poster.png", "image/png")
    form = _composition(page, parse_mode="HTML", text="<i>Hi</i> {{first_name|friend}}")
    as_anna = await client.post(
        "/broadcasts/preview",
        data=form | {"preview_user_id": str(ANNA), "media_ids": str(photo)},
        headers={"X-CSRF-Token": token},
    )
    assert as_anna.status_code == 200
    assert f"As Anna ({ANNA}) sees it" in as_anna.text
    assert '<div class="bubble-text"><i>Hi</i> Anna</div>' in as_anna.text
    assert f'<img src="/api/media/{photo}"' in as_anna.text
    assert "/ 1,024 characters (caption)" in as_anna.text
    assert 'title="https://example.org/timetable">Timetable</span>' in as_anna.text
    # A name with markup in it shows as typed, as Telegram would show it.
    as_tag = await client.post(
        "/broadcasts/preview",
        data=form | {"preview_user_id": "2001"},
        headers={"X-CSRF-Token": token},
    )
    assert "<i>Hi</i> &lt;b&gt;Tag&lt;/b&gt; &amp; co</div>" in as_tag.text
    unknown = await client.post(
        "/broadcasts/preview",
        data=form | {"preview_user_id": "77"},
        headers={"X-CSRF-Token": token},
    )
    assert "the preview&#39;s student 77 is not a user" in unknown.text
    # Buttons under an album: refused by Telegram, and the preview says so.
    album = await client.post(
        "/broadcasts/preview",
        data=form | {"media_ids": f"{photo}, {photo}"},
        headers={"X-CSRF-Token": token},
    )
    assert "Telegram puts no buttons under an album" in album.text


async def test_the_preview_warns_when_the_longest_name_is_over_the_limit(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    token = form_token(page)
    photo = await _upload(client, token, PNG, "poster.png", "image/png")
    caption = "x" * 1018 + " {{first_name}}"
    fitting = await client.post(
        "/broadcasts/preview",
        data=_composition(page, text=caption, user_ids=str(BORIS), media_ids=str(photo)),
        headers={"X-CSRF-Token": token},
    )
    assert f"With the longest values in this audience (user {BORIS}) the caption is 1,024" in (
        fitting.text
    )
    over = await client.post(
        "/broadcasts/preview",
        data=_composition(
            page, text=caption, user_ids=f"{ANNA}, {BORIS}, 1004", media_ids=str(photo)
        ),
        headers={"X-CSRF-Token": token},
    )
    assert "Too long for some students: filled in for user 1004 the caption is 1,025" in over.text


async def test_media_buttons_and_options_go_out_with_the_broadcast(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    photo = await _upload(client, form_token(page), PNG, "poster.png", "image/png")
    form = _composition(page, media_ids=str(photo))
    review = await client.post("/broadcasts/new", data=form | {"action": "review"})
    assert review.status_code == 200 and 'id="confirm-send"' in review.text
    assert "One file, the text as its caption" in review.text
    assert "2 in 2 rows" in review.text and "Silent, pinned" in review.text
    sent = await client.post("/broadcasts/new", data=form | {"action": "send"})
    assert sent.status_code == 303
    made = int(sent.headers["location"].rsplit("/", 1)[1])
    row = _one(
        sync_engine,
        "SELECT buttons, pin, silent, protect_content, total_recipients FROM message_history "
        "WHERE id = :id",
        id=made,
    )
    assert row.buttons == [  # type: ignore[attr-defined]
        [{"text": "Timetable", "url": "https://example.org/timetable"}],
        [{"text": "I'm in", "callback_data": "going"}],
    ]
    assert row.pin and row.silent and not row.protect_content  # type: ignore[attr-defined]
    assert (
        _one(sync_engine, "SELECT media_id FROM broadcast_media WHERE message_id = :id", id=made)[0]
        == photo
    )  # type: ignore[index]
    # The key covers the content: the same form with other buttons is another broadcast.
    again = await client.post(
        "/broadcasts/new", data=form | {"action": "review", "button_text": ["Other", "I'm in"]}
    )
    assert again.status_code == 200 and 'id="confirm-send"' in again.text
    assert _key(again) != form["request_key"]

    refused = await client.post(
        "/broadcasts/new",
        data=_composition(await client.get("/broadcasts/new"), button_value=["ftp://x", "go"])
        | {"action": "review"},
    )
    assert refused.status_code == 400
    assert "buttons[0][0].url: an http:// or https:// link" in refused.text


async def test_a_draft_is_saved_reopened_refused_when_stale_and_deleted(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    photo = await _upload(client, form_token(page), PNG, "poster.png", "image/png")
    form = _composition(
        page, media_ids=str(photo), send_at="later", scheduled_at="2031-05-01T09:30"
    )
    saved = await client.post("/broadcasts/new", data=form | {"action": "save_draft"})
    assert saved.status_code == 303
    draft_id = int(saved.headers["location"].rsplit("=", 1)[1])
    assert saved.headers["location"] == f"/broadcasts/new?draft={draft_id}"

    opened = await client.get(saved.headers["location"])
    assert f"Saved as draft #{draft_id}." in opened.text
    for shown in (
        "Hi {{first_name|friend}}, the PY-1 stream starts Monday</textarea>",
        f'value="{photo}"',
        'value="Timetable"',
        'value="https://example.org/timetable"',
        '<option value="callback" selected>',
        'name="pin" value="1" checked',
        'name="silent" value="1" checked',
        'name="protect_content" value="1">',
        'name="audience_type" value="users" checked',
        f'value="{ANNA}, {BORIS}"',
        'value="2031-05-01T09:30"',
        f'<li data-draft="{draft_id}" aria-current="true">',
    ):
        assert shown in opened.text, shown
    assert _VERSION.search(opened.text).group(1) == "1"  # type: ignore[union-attr]

    # Two tabs on version 1: the first save wins, the second is refused, not lost.
    first_tab = _composition(
        opened, text="From the first tab", draft_id=str(draft_id), draft_version="1"
    )
    second_tab = _composition(
        opened, text="From the second tab", draft_id=str(draft_id), draft_version="1"
    )
    assert (
        await client.post("/broadcasts/new", data=first_tab | {"action": "save_draft"})
    ).status_code == 303
    stale = await client.post("/broadcasts/new", data=second_tab | {"action": "save_draft"})
    assert stale.status_code == 409
    assert f"Not saved: draft #{draft_id} was saved elsewhere" in stale.text
    assert "From the second tab</textarea>" in stale.text
    assert 'name="current_version" value="2"' in stale.text
    saved_text = _one(sync_engine, "SELECT fields->>'text' FROM broadcast_drafts")[0]  # type: ignore[index]
    assert saved_text == "From the first tab"
    # Saving over it is a choice made with the version now saved.
    over = await client.post(
        "/broadcasts/new", data=second_tab | {"action": "save_over", "current_version": "2"}
    )
    assert over.status_code == 303
    row = _one(sync_engine, "SELECT fields->>'text' AS text, version FROM broadcast_drafts")
    assert tuple(row) == ("From the second tab", 3)
    as_new = await client.post("/broadcasts/new", data=first_tab | {"action": "save_new"})
    assert as_new.status_code == 303
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM broadcast_drafts")) == 2

    # Nobody else sees it.
    other = await signed_in(Role.admin)
    assert (await other.get(f"/broadcasts/new?draft={draft_id}")).status_code == 404
    page = await other.get("/broadcasts/new")
    assert "data-draft=" not in page.text
    assert (
        await other.post(
            f"/broadcasts/drafts/{draft_id}/delete", data={"csrf_token": form_token(page)}
        )
    ).status_code == 404

    deleted = await client.post(
        f"/broadcasts/drafts/{draft_id}/delete",
        data={"csrf_token": form_token(page := await client.get("/broadcasts/new"))},
    )
    assert deleted.status_code == 303
    assert f"Draft #{draft_id} deleted." in (await client.get("/broadcasts/new")).text
    assert (await client.get(f"/broadcasts/new?draft={draft_id}")).status_code == 404


async def test_a_draft_is_gone_once_it_is_sent(signed_in: SignIn, sync_engine: Engine) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    saved = await client.post(
        "/broadcasts/new",
        data=_composition(await client.get("/broadcasts/new")) | {"action": "save_draft"},
    )
    opened = await client.get(saved.headers["location"])
    form = _composition(
        opened,
        draft_id=_one(sync_engine, "SELECT id::text FROM broadcast_drafts")[0],
        draft_version="1",
    )  # type: ignore[index]
    refused = await client.post("/broadcasts/new", data=form | {"action": "send", "user_ids": "77"})
    assert refused.status_code == 400
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM broadcast_drafts")) == 1
    sent = await client.post("/broadcasts/new", data=form | {"action": "send"})
    assert sent.status_code == 303
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM broadcast_drafts")) == 0


async def test_any_broadcast_opens_as_a_new_composition(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    photo = await _upload(client, form_token(page), PNG, "poster.png", "image/png")
    form = _composition(
        page, media_ids=str(photo), parse_mode="HTML", text="<b>Monday</b>", holdout_percent="10"
    )
    sent = await client.post("/broadcasts/new", data=form | {"action": "send"})
    made = int(sent.headers["location"].rsplit("/", 1)[1])

    detail = await client.get(f"/broadcasts/{made}")
    assert f'href="/broadcasts/new?duplicate={made}"' in detail.text
    assert f'<img src="/api/media/{photo}"' in detail.text
    listed = await client.get("/broadcasts")
    assert f'href="/broadcasts/new?duplicate={made}"' in listed.text

    copy = await client.get(f"/broadcasts/new?duplicate={made}")
    assert copy.status_code == 200
    assert _key(copy) not in ("", form["request_key"])
    for shown in (
        "&lt;b&gt;Monday&lt;/b&gt;</textarea>",
        'name="parse_mode" value="HTML" checked',
        f'value="{photo}"',
        'value="Timetable"',
        'value="going"',
        'name="pin" value="1" checked',
        'name="audience_type" value="users" checked',
        f'value="{ANNA}, {BORIS}"',
        'name="holdout_percent" min="0" max="50" step="1" inputmode="numeric" value="10"',
    ):
        assert shown in copy.text, shown
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM message_history")) == 1
    assert (await client.get("/broadcasts/new?duplicate=999")).status_code == 404


async def test_without_a_public_address_links_are_not_offered_for_tracking(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    assert 'name="track_links"' not in page.text
    assert "set PUBLIC_BASE_URL to count clicks" in page.text
    forced = await client.post(
        "/broadcasts/new", data=_composition(page, track_links="1") | {"action": "review"}
    )
    assert forced.status_code == 400 and "PUBLIC_BASE_URL" in forced.text


async def test_the_control_group_share_goes_out_with_the_broadcast(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    assert 'name="holdout_percent"' in page.text
    for typed in ("51", "-1", "ten"):
        refused = await client.post(
            "/broadcasts/new", data=_composition(page, holdout_percent=typed) | {"action": "review"}
        )
        assert refused.status_code == 400 and "control group" in refused.text
    form = _composition(page, holdout_percent="50")
    review = await client.post("/broadcasts/new", data=form | {"action": "review"})
    assert review.status_code == 200 and "50 % of the audience, drawn at random" in review.text
    sent = await client.post("/broadcasts/new", data=form | {"action": "send"})
    assert sent.status_code == 303
    made = int(sent.headers["location"].rsplit("/", 1)[1])
    row = _one(
        sync_engine,
        "SELECT holdout_percent, holdout_count, total_recipients FROM message_history"
        " WHERE id = :id",
        id=made,
    )
    assert tuple(row) == (50, 1, 2)  # type: ignore[arg-type]


async def test_numbers_too_long_for_any_id_are_refused_plainly(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    """int() refuses over 4,300 digits with a ValueError: none may reach it."""
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get("/broadcasts/new")
    digits = "9" * 5000
    for field in ("user_ids", "holdout_percent", "preview_user_id", "media_ids", "button_row"):
        value: str | list[str] = [digits, "1"] if field == "button_row" else digits
        for action in ("review", "save_draft"):
            answer = await client.post(
                "/broadcasts/new", data=_composition(page, **{field: value}) | {"action": action}
            )
            assert answer.status_code < 500, (field, action, answer.status_code)
        preview = await client.post(
            "/broadcasts/preview", data=_composition(page, **{field: value})
        )
        assert preview.status_code < 500, (field, preview.status_code)
