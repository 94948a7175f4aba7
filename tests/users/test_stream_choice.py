"""A booking goes only to a stream its course has; a new one is made only when asked for."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from users_data import Insert

from coursedesk.db.datagen.rows import booking_row

STUDENT = 3_400_000_000
OTHERS = 3_400_000_100


@pytest.fixture
def booking(add_bookings: Insert) -> int:
    """The student's one booking, in PY-21 of course 1, which also has PY-22 (and a stream
    kept from before names were trimmed); course 2 has JS-1."""
    add_bookings(
        booking_row(OTHERS, course_id=1, course_stream="PY-22"),
        booking_row(OTHERS + 1, course_id=1, course_stream=" py-20 "),
        booking_row(OTHERS + 2, course_id=2, course_stream="JS-1"),
    )
    [booking_id] = add_bookings(booking_row(STUDENT, course_id=1, course_stream="PY-21"))
    return booking_id


def _stream(engine: Engine, booking_id: int) -> str | None:
    with engine.connect() as connection:
        stream: str | None = connection.scalar(
            text("SELECT course_stream FROM bookings WHERE id = :id"), {"id": booking_id}
        )
        return stream


def _audited(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(text("SELECT count(*) FROM audit_log WHERE target_type = 'booking'"))
            or 0
        )


async def _move(client: httpx.AsyncClient, headers: dict[str, str], body: Any) -> httpx.Response:
    return await client.put(f"/api/users/{STUDENT}/stream", json=body, headers=headers)


async def _patch(
    client: httpx.AsyncClient, headers: dict[str, str], booking_id: int, body: Any
) -> httpx.Response:
    return await client.patch(f"/api/bookings/{booking_id}", json=body, headers=headers)


@pytest.mark.parametrize("route", ["move", "patch"])
async def test_an_existing_stream_of_the_course_is_taken_trimmed(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    booking: int,
    sync_engine: Engine,
    route: str,
) -> None:
    body = {"course_stream": "  PY-22 "}
    if route == "move":
        answer = await _move(client, operator_headers, body)
    else:
        answer = await _patch(client, operator_headers, booking, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["course_stream"] == "PY-22"
    assert _stream(sync_engine, booking) == "PY-22"


@pytest.mark.parametrize("route", ["move", "patch"])
async def test_an_unknown_stream_is_refused_unless_asked_for(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    viewer_headers: dict[str, str],
    booking: int,
    sync_engine: Engine,
    route: str,
) -> None:
    async def send(body: dict[str, Any]) -> httpx.Response:
        if route == "move":
            return await _move(client, operator_headers, body)
        return await _patch(client, operator_headers, booking, body)

    for typo in ("PY-2e", "JS-1"):  # JS-1 is a stream of another course
        refused = await send({"course_stream": typo})
        assert refused.status_code == 400, refused.text
        answer = refused.json()
        assert f'course 1 has no stream "{typo}"' in answer["error"]
        assert "create_stream" in answer["error"]
        assert answer["streams"] == [" py-20 ", "PY-21", "PY-22"]
    assert _stream(sync_engine, booking) == "PY-21"
    assert _audited(sync_engine) == 0

    created = await send({"course_stream": " PY-23 ", "create_stream": True})
    assert created.status_code == 200, created.text
    assert created.json()["course_stream"] == "PY-23"
    streams = await client.get("/api/courses/streams", headers=viewer_headers)
    assert ("PY-23", 1) in [(s["course_stream"], s["course_id"]) for s in streams.json()["items"]]
    again = await send({"course_stream": "PY-23"})
    assert again.status_code == 200, "a stream made once is a stream of the course"


@pytest.mark.parametrize(
    ("typed", "existing"), [("py-22", "PY-22"), (" Py-22", "PY-22"), ("PY-20", " py-20 ")]
)
@pytest.mark.parametrize("create_stream", [False, True])
async def test_a_stream_differing_only_in_case_is_refused_naming_the_existing_one(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    booking: int,
    sync_engine: Engine,
    typed: str,
    existing: str,
    create_stream: bool,
) -> None:
    body = {"course_stream": typed, "create_stream": create_stream}
    for answer in (
        await _move(client, operator_headers, body),
        await _patch(client, operator_headers, booking, body),
    ):
        assert answer.status_code == 400, answer.text
        assert answer.json()["existing_stream"] == existing
        assert f'course 1 already has stream "{existing}"' in answer.json()["error"]
    assert _stream(sync_engine, booking) == "PY-21"


async def test_a_stream_kept_untrimmed_from_before_is_chosen_by_its_trimmed_name(
    client: httpx.AsyncClient, operator_headers: dict[str, str], booking: int, sync_engine: Engine
) -> None:
    answer = await _patch(client, operator_headers, booking, {"course_stream": "py-20"})
    assert answer.status_code == 200, answer.text
    assert _stream(sync_engine, booking) == "py-20"


async def test_removing_a_stream_takes_an_explicit_null_never_a_blank(
    client: httpx.AsyncClient, operator_headers: dict[str, str], booking: int, sync_engine: Engine
) -> None:
    for blank in ("", "   "):
        for answer in (
            await _move(client, operator_headers, {"course_stream": blank}),
            await _patch(client, operator_headers, booking, {"course_stream": blank}),
        ):
            assert answer.status_code == 422, answer.text
            assert "send null to remove the stream" in answer.json()["error"]
    assert _stream(sync_engine, booking) == "PY-21"
    missing = await _move(client, operator_headers, {})
    assert missing.status_code == 422, "the move names the stream, or null"
    only_the_flag = await _patch(client, operator_headers, booking, {"create_stream": True})
    assert only_the_flag.status_code == 422, "create_stream alone changes nothing"

    removed = await _move(client, operator_headers, {"course_stream": None})
    assert removed.status_code == 200, removed.text
    assert _stream(sync_engine, booking) is None
    gone = await _patch(client, operator_headers, booking, {"course_stream": "PY-21"})
    assert gone.status_code == 400, "no booking of the course is in PY-21 any more"
    back = await _patch(client, operator_headers, booking, {"course_stream": "PY-22"})
    assert back.status_code == 200, back.text
    cleared = await _patch(client, operator_headers, booking, {"course_stream": None})
    assert (cleared.status_code, _stream(sync_engine, booking)) == (200, None)


async def test_a_booking_without_a_course_has_the_streams_of_such_bookings(
    client: httpx.AsyncClient, operator_headers: dict[str, str], add_bookings: Insert
) -> None:
    add_bookings(booking_row(OTHERS, course_id=None, course_stream="LOOSE"))
    [loose] = add_bookings(booking_row(STUDENT, course_id=None, course_stream=None))
    refused = await _patch(client, operator_headers, loose, {"course_stream": "PY-19"})
    assert refused.status_code == 400
    assert 'bookings without a course have no stream "PY-19"' in refused.json()["error"]
    taken = await _patch(client, operator_headers, loose, {"course_stream": "LOOSE"})
    assert taken.status_code == 200, taken.text
