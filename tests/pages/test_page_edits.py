"""Operators' edits on a student's page: CSRF-checked, audited, refused to viewers."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI
from page_client import SignIn, form_token
from pages_data import ANNA, BORIS, CHLOE, add_students
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role


def booking_of(engine: Engine, user_id: int) -> dict[str, object]:
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT id, confirmed, course_stream, referral_code, discount_percent "
                "FROM bookings WHERE user_id = :user ORDER BY id DESC LIMIT 1"
            ),
            {"user": user_id},
        ).one()
    return dict(row._mapping)


class _FormFields(HTMLParser):
    """The fields one form of a page would send: inputs, and each select's chosen option."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.select: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.inside = found.get("action") == self.action
        elif self.inside and tag == "input":
            self.fields[found["name"]] = found.get("value", "")
        elif self.inside and tag == "select":
            self.select = found["name"]
        elif self.inside and tag == "option" and self.select and "selected" in found:
            self.fields[self.select] = found["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def form_fields(page: str, action: str) -> dict[str, str]:
    parser = _FormFields(action)
    parser.feed(page)
    assert parser.fields, f"no form posting to {action}"
    return parser.fields


def audit_actors(engine: Engine, table: str) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                text("SELECT actor FROM audit_log WHERE target_type = :table ORDER BY id"),
                {"table": table},
            )
        )


async def test_a_stream_change_sticks_and_is_audited(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get(f"/users/{BORIS}")
    assert f'action="/users/{BORIS}/stream"' in page.text

    forged = await client.post(
        f"/users/{BORIS}/stream", data={"stream_choice": "stream:PY-2", "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    assert "This form had expired" in forged.text
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-1"

    moved = await client.post(
        f"/users/{BORIS}/stream",
        data=form_fields(page.text, f"/users/{BORIS}/stream")
        | {"stream_choice": "new", "new_stream": "  PY-9 "},
    )
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/users/{BORIS}"
    after = await client.get(f"/users/{BORIS}")
    assert "is now in stream PY-9" in after.text
    assert '<dd data-field="course_stream">PY-9</dd>' in after.text
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-9"
    assert audit_actors(sync_engine, "booking") == ["olga"]

    again = await client.get(f"/users/{BORIS}")
    assert "is now in stream" not in again.text, "the message shows once"


async def test_a_student_without_a_live_booking_keeps_no_stream(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get(f"/users/{CHLOE}")
    assert f'action="/users/{CHLOE}/stream"' not in page.text
    assert "there is no stream to change" in page.text
    refused = await client.post(
        f"/users/{CHLOE}/stream",
        data={"stream_choice": "stream:PY-1", "csrf_token": form_token(page)},
    )
    assert refused.status_code == 400
    assert 'class="flash flash-error"' in refused.text
    assert "The stream was not changed: user 1003 has no booking that is not cancelled" in (
        refused.text
    )
    assert audit_actors(sync_engine, "booking") == []


async def test_a_booking_edit_saves_what_changed_and_refuses_nonsense(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    page = await client.get(f"/users/{ANNA}")
    token = form_token(page)
    booking = booking_of(sync_engine, ANNA)
    opened = form_fields(page.text, f"/bookings/{booking['id']}/edit")
    unchanged = {
        "user_id": str(ANNA),
        "csrf_token": token,
        "version": opened["version"],
        "confirmed": "2",
        "stream_choice": "stream:PY-1",
        "referral_code": "FRIEND10",
        "discount_percent": "10.0",
        "was_confirmed": "2",
        "was_course_stream": "PY-1",
        "was_referral_code": "FRIEND10",
        "was_discount_percent": "10.0",
    }
    nothing = await client.post(f"/bookings/{booking['id']}/edit", data=unchanged)
    assert nothing.status_code == 303
    assert "nothing changed" in (await client.get(f"/users/{ANNA}")).text

    nonsense = await client.post(
        f"/bookings/{booking['id']}/edit", data=unchanged | {"discount_percent": "250"}
    )
    assert nonsense.status_code == 400
    assert "was not saved" in nonsense.text
    assert booking_of(sync_engine, ANNA) == booking

    saved = await client.post(
        f"/bookings/{booking['id']}/edit",
        data=unchanged | {"confirmed": "-1", "referral_code": "", "discount_percent": "12.5"},
    )
    assert saved.status_code == 303
    after = booking_of(sync_engine, ANNA)
    assert (after["confirmed"], after["referral_code"], float(str(after["discount_percent"]))) == (
        -1,
        None,
        12.5,
    )
    assert after["course_stream"] == "PY-1"
    page = await client.get(f"/users/{ANNA}")
    assert f"Booking #{booking['id']} saved." in page.text
    assert 'class="badge cancelled"' in page.text


async def test_a_refused_booking_edit_comes_back_with_what_was_typed(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    booking = booking_of(sync_engine, ANNA)
    action = f"/bookings/{booking['id']}/edit"
    opened = form_fields((await client.get(f"/users/{ANNA}")).text, action)
    assert opened["referral_code"] == opened["was_referral_code"] == "FRIEND10"
    typed = opened | {"referral_code": "NEWCODE", "discount_percent": "12.345"}

    refused = await client.post(action, data=typed)
    assert refused.status_code == 400
    assert f"Booking #{booking['id']} was not saved: discount_percent:" in refused.text
    assert "no more than 2 decimal places</p>" in refused.text, "the form says why"
    assert f'id="edit-booking-{booking["id"]}" popover class="edit-dialog" data-open' in (
        refused.text
    )
    assert form_fields(refused.text, action) == typed
    assert booking_of(sync_engine, ANNA) == booking
    assert audit_actors(sync_engine, "booking") == []

    corrected = form_fields(refused.text, action) | {"discount_percent": "12.34"}
    saved = await client.post(action, data=corrected)
    assert saved.status_code == 303
    after = booking_of(sync_engine, ANNA)
    assert (after["referral_code"], str(after["discount_percent"])) == ("NEWCODE", "12.34")
    shown = form_fields((await client.get(f"/users/{ANNA}")).text, action)
    assert (shown["referral_code"], shown["was_referral_code"]) == ("NEWCODE", "NEWCODE")


async def test_a_viewer_sees_no_edit_form_and_is_refused(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    viewer = await signed_in(Role.viewer)
    page = await viewer.get(f"/users/{BORIS}")
    assert "Save stream" not in page.text and "Save booking" not in page.text
    assert "Message this student" not in page.text
    refused = await viewer.post(
        f"/users/{BORIS}/stream", data={"course_stream": "PY-9", "csrf_token": form_token(page)}
    )
    assert refused.status_code == 403
    assert "needs the operator role" in refused.text
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-1"


async def test_a_change_is_committed_before_the_redirect_goes_out(
    app: FastAPI, signed_in: SignIn, sync_engine: Engine
) -> None:
    """The browser follows the redirect at once: the page it loads must see the change."""
    add_students(sync_engine)
    client = await signed_in(Role.operator)
    opened = form_fields((await client.get(f"/users/{BORIS}")).text, f"/users/{BORIS}/stream")
    body = urlencode(opened | {"stream_choice": "stream:PY-2"}).encode()
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/users/{BORIS}/stream",
        "raw_path": f"/users/{BORIS}/stream".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"cookie", cookies.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    requests = [{"type": "http.request", "body": body, "more_body": False}]
    seen_when_answered: list[object] = []

    async def receive() -> dict[str, Any]:
        return requests.pop(0) if requests else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 303
            booking = await asyncio.to_thread(booking_of, sync_engine, BORIS)
            seen_when_answered.append(booking["course_stream"])

    await app(scope, receive, send)
    assert seen_when_answered == ["PY-2"]
