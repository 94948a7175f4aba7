"""On a student's page a stream is picked from the course's streams; a new one only by
choosing "New stream…", and removing one asks first."""

from __future__ import annotations

import re

import httpx
from page_client import SignIn
from pages_data import ANNA, BORIS, add_students
from sqlalchemy import Engine, text
from test_page_edits import audit_actors, booking_of, form_fields

from coursedesk.accounts.roles import Role


def _options(page: str, select_id: str) -> list[tuple[str, str]]:
    """The (value, label) of each option of a select."""
    select = re.search(rf'<select name="stream_choice" id="{select_id}">(.*?)</select>', page, re.S)
    assert select is not None, f"no stream picker {select_id}"
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))


async def _signed_in(signed_in: SignIn, engine: Engine) -> tuple[httpx.AsyncClient, dict[str, str]]:
    """An operator on Boris's page, and the CSRF token and version his stream form sends."""
    add_students(engine)
    with engine.begin() as connection:  # another course, whose stream is no choice here
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, course_id, course_stream, confirmed) "
                "VALUES (1999, 2, 'JS-1', 1)"
            )
        )
    client = await signed_in(Role.operator)
    opened = form_fields((await client.get(f"/users/{BORIS}")).text, f"/users/{BORIS}/stream")
    return client, {"csrf_token": opened["csrf_token"], "version": opened["version"]}


async def test_the_stream_is_chosen_among_the_course_s_streams(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    client, sent = await _signed_in(signed_in, sync_engine)
    page = (await client.get(f"/users/{BORIS}")).text
    assert _options(page, "stream-choice") == [
        ("stream:PY-1", "PY-1"),
        ("stream:PY-2", "PY-2"),
        ("new", "New stream…"),
        ("none", "No stream"),
    ]
    assert form_fields(page, f"/users/{BORIS}/stream")["stream_choice"] == "stream:PY-1"
    assert 'name="course_stream"' not in page, "no free text for a stream"

    typed = await client.post(f"/users/{BORIS}/stream", data={"course_stream": "PY-2e"} | sent)
    assert typed.status_code == 400, "a typed name alone is no choice"
    assert "choose a stream, a new stream or no stream" in typed.text
    other_course = await client.post(
        f"/users/{BORIS}/stream", data={"stream_choice": "stream:JS-1"} | sent
    )
    assert other_course.status_code == 400
    assert "stream &#34;JS-1&#34; is gone from course 1" in other_course.text
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-1"

    moved = await client.post(
        f"/users/{BORIS}/stream", data={"stream_choice": "stream:PY-2"} | sent
    )
    assert moved.status_code == 303
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-2"


async def test_a_new_stream_is_made_only_by_choosing_new_stream(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    client, sent = await _signed_in(signed_in, sync_engine)
    action = f"/users/{BORIS}/stream"

    blank = await client.post(action, data={"stream_choice": "new"} | sent)
    assert blank.status_code == 400
    assert "type the name of the new stream" in blank.text
    spelled = await client.post(
        action, data={"stream_choice": "new", "new_stream": " py-2 "} | sent
    )
    assert spelled.status_code == 400
    assert "already has stream &#34;PY-2&#34;" in spelled.text
    again = form_fields(spelled.text, action)
    assert (again["stream_choice"], again["new_stream"]) == ("new", " py-2 ")
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-1"

    created = await client.post(
        action, data={"stream_choice": "new", "new_stream": " PY-10 "} | sent
    )
    assert created.status_code == 303
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-10"
    page = (await client.get(f"/users/{BORIS}")).text
    assert "is now in stream PY-10" in page
    assert [value for value, _ in _options(page, "stream-choice")][:3] == [
        "stream:PY-1",
        "stream:PY-2",
        "stream:PY-10",
    ]


async def test_removing_the_stream_asks_first(signed_in: SignIn, sync_engine: Engine) -> None:
    client, sent = await _signed_in(signed_in, sync_engine)
    action = f"/users/{BORIS}/stream"
    asked = await client.post(action, data={"stream_choice": "none"} | sent)
    assert asked.status_code == 200
    assert "Remove the stream?" in asked.text
    assert "leaves stream PY-1 and is in no stream" in asked.text
    assert (
        '<button type="submit" form="stream-form" name="confirm_remove" value="yes"' in asked.text
    )
    assert form_fields(asked.text, action)["stream_choice"] == "none"
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-1"
    assert audit_actors(sync_engine, "booking") == []

    removed = await client.post(
        action, data={"stream_choice": "none", "confirm_remove": "yes"} | sent
    )
    assert removed.status_code == 303
    assert booking_of(sync_engine, BORIS)["course_stream"] is None
    assert "is now in no stream" in (await client.get(f"/users/{BORIS}")).text


async def test_a_booking_s_stream_is_picked_the_same_way(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    client, _ = await _signed_in(signed_in, sync_engine)
    booking = booking_of(sync_engine, ANNA)
    action = f"/bookings/{booking['id']}/edit"
    page = (await client.get(f"/users/{ANNA}")).text
    assert [value for value, _ in _options(page, f"stream-of-{booking['id']}")] == [
        "stream:PY-1",
        "stream:PY-2",
        "new",
        "none",
    ]
    opened = form_fields(page, action)
    assert (opened["stream_choice"], opened["was_course_stream"]) == ("stream:PY-1", "PY-1")

    unknown = await client.post(action, data=opened | {"stream_choice": "stream:PY-2e"})
    assert unknown.status_code == 400
    assert "stream &#34;PY-2e&#34; is gone from course 1" in unknown.text
    asked = await client.post(action, data=opened | {"stream_choice": "none", "confirmed": "1"})
    assert asked.status_code == 200
    assert f"Booking #{booking['id']} leaves stream PY-1" in asked.text
    assert f'form="edit-form-{booking["id"]}" name="confirm_remove" value="yes"' in asked.text
    assert booking_of(sync_engine, ANNA) == booking

    sent_again = form_fields(asked.text, action) | {"confirm_remove": "yes"}
    removed = await client.post(action, data=sent_again)
    assert removed.status_code == 303
    after = booking_of(sync_engine, ANNA)
    assert (after["course_stream"], after["confirmed"]) == (None, 1)

    page = (await client.get(f"/users/{ANNA}")).text
    created = await client.post(
        action, data=form_fields(page, action) | {"stream_choice": "new", "new_stream": "PY-3"}
    )
    assert created.status_code == 303
    assert booking_of(sync_engine, ANNA)["course_stream"] == "PY-3"
