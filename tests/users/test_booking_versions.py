"""Edits carry the version of the booking they were made on: If-Match on the API, the ETag
of its answers. One made on a version changed since is a 409 that writes nothing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from users_data import Insert

from coursedesk.db.datagen.rows import booking_row

STUDENT = 3_500_000_000


@pytest.fixture
def booking(add_bookings: Insert) -> int:
    add_bookings(booking_row(STUDENT + 1, course_id=1, course_stream="PY-2"))
    [booking_id] = add_bookings(
        booking_row(STUDENT, course_id=1, course_stream="PY-1", referral_code="FIRST")
    )
    return booking_id


def _row(engine: Engine, booking_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT confirmed, course_stream, referral_code FROM bookings WHERE id = :id"),
            {"id": booking_id},
        )
        return dict(found.one()._mapping)


def _edits_audited(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(text("SELECT count(*) FROM audit_log WHERE target_type = 'booking'"))
            or 0
        )


async def _etag(client: httpx.AsyncClient, headers: dict[str, str], booking_id: int) -> str:
    answer = await client.get(f"/api/bookings/{booking_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.headers["etag"]


async def test_a_booking_s_answers_carry_its_version(
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
    operator_headers: dict[str, str],
    booking: int,
) -> None:
    answer = await client.get(f"/api/bookings/{booking}", headers=viewer_headers)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["id"], answer.json()["referral_code"]) == (booking, "FIRST")
    etag = answer.headers["etag"]
    assert etag.startswith(f'"{booking}.') and etag.endswith('"')
    assert await _etag(client, viewer_headers, booking) == etag, "a read changes no version"
    assert (await client.get("/api/bookings/999999", headers=viewer_headers)).status_code == 404
    assert (await client.get("/api/bookings/recent", headers=viewer_headers)).status_code == 200

    edited = await client.patch(
        f"/api/bookings/{booking}", json={"confirmed": 2}, headers=operator_headers
    )
    assert edited.status_code == 200, edited.text
    assert edited.headers["etag"] not in ("", etag)
    assert await _etag(client, viewer_headers, booking) == edited.headers["etag"]
    moved = await client.put(
        f"/api/users/{STUDENT}/stream", json={"course_stream": "PY-2"}, headers=operator_headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] not in (etag, edited.headers["etag"])


async def test_the_second_of_two_edits_made_on_one_version_is_refused(
    client: httpx.AsyncClient, operator_headers: dict[str, str], booking: int, sync_engine: Engine
) -> None:
    read_by_both = await _etag(client, operator_headers, booking)
    first = await client.patch(
        f"/api/bookings/{booking}",
        json={"referral_code": "ALICE"},
        headers=operator_headers | {"If-Match": read_by_both},
    )
    assert first.status_code == 200, first.text

    second = await client.patch(
        f"/api/bookings/{booking}",
        json={"referral_code": "BOB", "confirmed": 2},
        headers=operator_headers | {"If-Match": read_by_both},
    )
    assert second.status_code == 409, second.text
    answer = second.json()
    assert "was changed after the version this edit was made on" in answer["error"]
    assert answer["current"]["referral_code"] == "ALICE"
    assert answer["current"]["confirmed"] == 1
    assert answer["attempted"] == {"referral_code": "BOB", "confirmed": 2}
    assert second.headers["etag"] == first.headers["etag"]
    assert _row(sync_engine, booking)["referral_code"] == "ALICE"
    assert _edits_audited(sync_engine) == 1

    retried = await client.patch(
        f"/api/bookings/{booking}",
        json={"referral_code": "BOB"},
        headers=operator_headers | {"If-Match": second.headers["etag"]},
    )
    assert retried.status_code == 200, retried.text
    assert _row(sync_engine, booking)["referral_code"] == "BOB"


async def test_a_change_by_the_bot_makes_a_version_stale_too(
    client: httpx.AsyncClient, operator_headers: dict[str, str], booking: int, sync_engine: Engine
) -> None:
    etag = await _etag(client, operator_headers, booking)
    with sync_engine.begin() as connection:
        connection.execute(
            text("UPDATE bookings SET confirmed = 2 WHERE id = :id"), {"id": booking}
        )
    for body in ({"referral_code": "LATE"}, {"course_stream": "no such stream"}):
        stale = await client.patch(
            f"/api/bookings/{booking}", json=body, headers=operator_headers | {"If-Match": etag}
        )
        assert stale.status_code == 409, "a stale edit is told so first"
    moved = await client.put(
        f"/api/users/{STUDENT}/stream",
        json={"course_stream": "PY-2"},
        headers=operator_headers | {"If-Match": etag},
    )
    assert moved.status_code == 409
    assert (moved.json()["current"]["confirmed"], moved.json()["attempted"]) == (
        2,
        {"course_stream": "PY-2"},
    )
    assert _row(sync_engine, booking) == {
        "confirmed": 2,
        "course_stream": "PY-1",
        "referral_code": "FIRST",
    }


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        (None, 200),
        ("*", 200),
        ("{current}", 200),
        ('"1.1", {current}', 200),
        ("{current_bare}", 200),
        ("W/{current}", 409),
        ('"{other}.{xmin}"', 409),
        ('"nonsense"', 409),
        ("", 409),
    ],
)
async def test_what_if_match_accepts(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    add_bookings: Insert,
    booking: int,
    if_match: str | None,
    status: int,
) -> None:
    [other] = add_bookings(booking_row(STUDENT + 2, course_id=1, course_stream="PY-1"))
    current = await _etag(client, operator_headers, booking)
    xmin = current.strip('"').split(".")[1]
    headers = dict(operator_headers)
    if if_match is not None:
        headers["If-Match"] = if_match.format(
            current=current, current_bare=current.strip('"'), other=other, xmin=xmin
        )
    answer = await client.patch(f"/api/bookings/{booking}", json={"confirmed": 2}, headers=headers)
    assert answer.status_code == status, answer.text


async def test_a_stream_move_is_made_on_the_version_of_the_booking_it_moves(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    add_bookings: Insert,
    booking: int,
    sync_engine: Engine,
) -> None:
    etag = await _etag(client, operator_headers, booking)
    [newer] = add_bookings(booking_row(STUDENT, course_id=1, course_stream="PY-1"))
    moved = await client.put(
        f"/api/users/{STUDENT}/stream",
        json={"course_stream": "PY-2"},
        headers=operator_headers | {"If-Match": etag},
    )
    assert moved.status_code == 409, "another booking is the latest now"
    assert moved.json()["current"]["id"] == newer
    assert _row(sync_engine, newer)["course_stream"] == "PY-1"
    again = await client.put(
        f"/api/users/{STUDENT}/stream",
        json={"course_stream": "PY-2"},
        headers=operator_headers | {"If-Match": moved.headers["etag"]},
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == newer


async def test_an_update_committed_while_the_edit_waits_for_the_row_wins(
    client: httpx.AsyncClient, operator_headers: dict[str, str], booking: int, sync_engine: Engine
) -> None:
    """The version is checked as the row is written, not only when it is first read."""
    etag = await _etag(client, operator_headers, booking)
    holding = sync_engine.connect()
    holding.begin()
    holding.execute(
        text("UPDATE bookings SET referral_code = 'BOT' WHERE id = :id"), {"id": booking}
    )
    release = threading.Timer(1.0, lambda: (holding.commit(), holding.close()))
    release.start()
    try:
        edit = await asyncio.wait_for(
            client.patch(
                f"/api/bookings/{booking}",
                json={"referral_code": "STAFF"},
                headers=operator_headers | {"If-Match": etag},
            ),
            30,
        )
    finally:
        release.join()
    assert edit.status_code == 409, edit.text
    assert edit.json()["current"]["referral_code"] == "BOT"
    assert _row(sync_engine, booking)["referral_code"] == "BOT"
