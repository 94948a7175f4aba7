"""Two staff editing one booking on the student's page: the second edit, made on what the
page showed before the first was saved, is not saved over it; the page shows both."""

from __future__ import annotations

import re

from page_client import SignIn
from pages_data import ANNA, BORIS, add_students
from sqlalchemy import Engine
from test_page_edits import audit_actors, booking_of, form_fields

from coursedesk.accounts.roles import Role


def _compared(page: str) -> list[tuple[str, str, str]]:
    """The rows of the saved-now-and-yours table: field, saved now, yours."""
    return re.findall(
        r'<tr><th scope="row">([^<]*)</th><td data-saved>([^<]*)</td><td data-tried>([^<]*)</td>',
        page,
    )


async def test_a_booking_edit_made_on_an_old_version_shows_both_and_can_be_saved_again(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    olga = await signed_in(Role.operator)
    ada = await signed_in(Role.admin)
    booking = booking_of(sync_engine, ANNA)
    action = f"/bookings/{booking['id']}/edit"
    olgas_form = form_fields((await olga.get(f"/users/{ANNA}")).text, action)
    adas_form = form_fields((await ada.get(f"/users/{ANNA}")).text, action)
    assert olgas_form["version"] == adas_form["version"]
    assert olgas_form["version"].startswith(f"{booking['id']}.")

    saved = await ada.post(action, data=adas_form | {"referral_code": "ADA", "confirmed": "1"})
    assert saved.status_code == 303

    stale = await olga.post(action, data=olgas_form | {"referral_code": "OLGA"})
    assert stale.status_code == 409
    assert f"Booking #{booking['id']} was not saved: someone changed it" in stale.text
    assert f"Booking #{booking['id']} was changed while you were editing it" in stale.text
    assert _compared(stale.text) == [("Referral code", "ADA", "OLGA")]
    assert booking_of(sync_engine, ANNA)["referral_code"] == "ADA"
    assert audit_actors(sync_engine, "booking") == ["ada"]

    again = form_fields(stale.text, action)
    assert again["referral_code"] == "OLGA", "the form holds what she tried"
    assert again["confirmed"] == again["was_confirmed"] == "1", "and keeps Ada's other change"
    assert again["version"] != olgas_form["version"]
    assert f'<button type="submit" form="edit-form-{booking["id"]}">Save mine</button>' in (
        stale.text
    )
    assert f'popovertarget="edit-booking-{booking["id"]}">Edit again</button>' in stale.text

    mine = await olga.post(action, data=again)
    assert mine.status_code == 303
    after = booking_of(sync_engine, ANNA)
    assert (after["referral_code"], after["confirmed"]) == ("OLGA", 1)
    assert audit_actors(sync_engine, "booking") == ["ada", "olga"]


async def test_a_form_without_its_version_saves_nothing(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    olga = await signed_in(Role.operator)
    booking = booking_of(sync_engine, ANNA)
    action = f"/bookings/{booking['id']}/edit"
    opened = form_fields((await olga.get(f"/users/{ANNA}")).text, action)
    del opened["version"]
    refused = await olga.post(action, data=opened | {"referral_code": "NONE"})
    assert refused.status_code == 409
    assert booking_of(sync_engine, ANNA) == booking


async def test_a_stream_change_made_on_an_old_version_shows_both(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    olga = await signed_in(Role.operator)
    ada = await signed_in(Role.admin)
    action = f"/users/{BORIS}/stream"
    olgas_form = form_fields((await olga.get(f"/users/{BORIS}")).text, action)
    adas_form = form_fields((await ada.get(f"/users/{BORIS}")).text, action)

    moved = await ada.post(action, data=adas_form | {"stream_choice": "stream:PY-2"})
    assert moved.status_code == 303
    stale = await olga.post(
        action, data=olgas_form | {"stream_choice": "new", "new_stream": "PY-7"}
    )
    assert stale.status_code == 409
    assert "The stream was not changed: someone changed it" in stale.text
    assert _compared(stale.text) == [("Stream", "PY-2", "PY-7")]
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-2"

    again = form_fields(stale.text, action)
    assert (again["stream_choice"], again["new_stream"]) == ("new", "PY-7")
    mine = await olga.post(action, data=again)
    assert mine.status_code == 303
    assert booking_of(sync_engine, BORIS)["course_stream"] == "PY-7"


async def test_a_confirmed_removal_made_on_an_old_version_is_saved_again_without_asking(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    olga = await signed_in(Role.operator)
    ada = await signed_in(Role.admin)
    booking = booking_of(sync_engine, ANNA)
    action = f"/bookings/{booking['id']}/edit"
    olgas_form = form_fields((await olga.get(f"/users/{ANNA}")).text, action)
    adas_form = form_fields((await ada.get(f"/users/{ANNA}")).text, action)
    await ada.post(action, data=adas_form | {"referral_code": "ADA"})

    removal = olgas_form | {"stream_choice": "none", "confirm_remove": "yes"}
    stale = await olga.post(action, data=removal)
    assert stale.status_code == 409
    assert _compared(stale.text) == [("Stream", "PY-1", "no stream")]
    assert (
        f'form="edit-form-{booking["id"]}" name="confirm_remove" value="yes" class="danger">'
        "Save mine</button>"
    ) in stale.text
    again = form_fields(stale.text, action) | {"confirm_remove": "yes"}
    assert (await olga.post(action, data=again)).status_code == 303
    after = booking_of(sync_engine, ANNA)
    assert (after["course_stream"], after["referral_code"]) == (None, "ADA")
