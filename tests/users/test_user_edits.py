"""Operators move students between streams and edit bookings; every edit is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from users_data import Insert

from coursedesk.analytics.changes import source_changes
from coursedesk.db.datagen.rows import booking_row, event_row

STUDENT = 3_300_000_000
T0 = datetime(2024, 4, 1, tzinfo=UTC)


@pytest.fixture
def bookings(add_bookings: Insert, add_events: Insert) -> list[int]:
    ids = add_bookings(
        booking_row(STUDENT, confirmed=2, course_stream="OLD", created_at=T0),
        booking_row(STUDENT, confirmed=1, course_stream="NEWER", created_at=T0 + timedelta(days=1)),
        booking_row(STUDENT, confirmed=-1, course_stream="GONE", created_at=T0 + timedelta(days=2)),
    )
    add_events(event_row(44, "start"))
    return ids


def _audit(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT actor, action, target_id, before, after, source FROM audit_log"
                " WHERE target_type = 'booking' ORDER BY id"
            )
        )
        return [dict(row._mapping) for row in rows]


def _booking(engine: Engine, booking_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM bookings WHERE id = :id"), {"id": booking_id})
        return dict(row.one()._mapping)


@pytest.fixture
def announcements() -> Any:
    seen: list[str] = []
    unsubscribe = source_changes.subscribe(lambda: seen.append("changed"))
    yield seen
    unsubscribe()


async def test_move_stream_moves_the_latest_live_booking(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    bookings: list[int],
    sync_engine: Engine,
    announcements: list[str],
) -> None:
    response = await client.put(
        f"/api/users/{STUDENT}/stream",
        json={"course_stream": "  MOVED  ", "create_stream": True},
        headers=operator_headers,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["id"], answer["course_stream"], answer["confirmed"]) == (bookings[1], "MOVED", 1)
    user = (await client.get(f"/api/users/{STUDENT}", headers=operator_headers)).json()
    assert user["course_stream"] == "MOVED"
    [entry] = _audit(sync_engine)
    assert entry["actor"] == "token:test-operator"
    assert (entry["action"], entry["target_id"], entry["source"]) == (
        "booking.update",
        str(bookings[1]),
        "app",
    )
    assert (entry["before"]["course_stream"], entry["after"]["course_stream"]) == ("NEWER", "MOVED")
    assert announcements == ["changed"]


async def test_move_stream_without_a_live_booking(
    client: httpx.AsyncClient, operator_headers: dict[str, str], bookings: list[int]
) -> None:
    no_booking = await client.put(
        "/api/users/44/stream", json={"course_stream": "X"}, headers=operator_headers
    )
    assert no_booking.status_code == 409
    unknown = await client.put(
        "/api/users/45/stream", json={"course_stream": "X"}, headers=operator_headers
    )
    assert unknown.status_code == 404


async def test_patch_booking(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    bookings: list[int],
    sync_engine: Engine,
    announcements: list[str],
) -> None:
    response = await client.patch(
        f"/api/bookings/{bookings[0]}",
        json={"confirmed": -1, "referral_code": " FRIEND ", "discount_percent": 12.25},
        headers=operator_headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["confirmed"], body["referral_code"], body["discount_percent"]) == (
        -1,
        "FRIEND",
        12.25,
    )
    assert body["course_stream"] == "OLD"
    user = (await client.get(f"/api/users/{STUDENT}", headers=operator_headers)).json()
    assert (user["status"], user["course_stream"]) == ("pending", "NEWER")
    referrals = (await client.get("/api/referrals", headers=operator_headers)).json()
    assert referrals["items"] == [
        {"referral_code": "FRIEND", "bookings": 1, "confirmed": 0, "unique_users": 1,
         "avg_discount_percent": 12.25}
    ]  # fmt: skip
    cleared = await client.patch(
        f"/api/bookings/{bookings[0]}",
        json={"referral_code": "", "discount_percent": None},
        headers=operator_headers,
    )
    assert (cleared.json()["referral_code"], cleared.json()["discount_percent"]) == (None, None)
    assert [entry["actor"] for entry in _audit(sync_engine)] == ["token:test-operator"] * 2
    assert announcements == ["changed", "changed"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"confirmed": 0},
        {"confirmed": 3},
        {"confirmed": None},
        {"confirmed": "2"},
        {"confirmed": True},
        {"confirmed": False},
        {"discount_percent": -1},
        {"discount_percent": 100.01},
        {"discount_percent": 12.345},
        {"discount_percent": "NaN"},
        {"course_stream": "x" * 101},
        {"referral_code": "r" * 65},
        {"course_stream": 5},
        {"unknown": 1},
        [1, 2],
    ],
)
async def test_bad_patches_change_nothing(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    bookings: list[int],
    sync_engine: Engine,
    body: Any,
    announcements: list[str],
) -> None:
    before = _booking(sync_engine, bookings[0])
    response = await client.patch(
        f"/api/bookings/{bookings[0]}", json=body, headers=operator_headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]
    assert _booking(sync_engine, bookings[0]) == before
    assert _audit(sync_engine) == []
    assert announcements == []


async def test_unknown_and_malformed_booking_ids(
    client: httpx.AsyncClient, operator_headers: dict[str, str], bookings: list[int]
) -> None:
    for booking_id, status in ((999_999, 404), (0, 404), (2**31, 422), ("x", 422)):
        response = await client.patch(
            f"/api/bookings/{booking_id}", json={"confirmed": 2}, headers=operator_headers
        )
        assert response.status_code == status
    malformed = await client.patch(
        f"/api/bookings/{bookings[0]}",
        content=b"{not json",
        headers={**operator_headers, "content-type": "application/json"},
    )
    assert malformed.status_code == 422


async def test_roles(
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
    admin_headers: dict[str, str],
    bookings: list[int],
    sync_engine: Engine,
) -> None:
    patch = {"confirmed": 2}
    anonymous = await client.patch(f"/api/bookings/{bookings[1]}", json=patch)
    assert anonymous.status_code == 401
    viewer = await client.patch(f"/api/bookings/{bookings[1]}", json=patch, headers=viewer_headers)
    assert viewer.status_code == 403
    moved = await client.put(
        f"/api/users/{STUDENT}/stream", json={"course_stream": "X"}, headers=viewer_headers
    )
    assert moved.status_code == 403
    assert _audit(sync_engine) == []
    admin = await client.patch(f"/api/bookings/{bookings[1]}", json=patch, headers=admin_headers)
    assert admin.status_code == 200
    assert [entry["actor"] for entry in _audit(sync_engine)] == ["token:test-admin"]
