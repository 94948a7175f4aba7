"""GET /api/users: order, pages, totals, filters, search, CSV and bad input."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, text
from users_data import Insert

from coursedesk.db.datagen.rows import booking_row, event_row, free_lesson_row

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def people(add_bookings: Insert, add_events: Insert, add_registrations: Insert) -> None:
    """Ten users: 1-4 confirmed in stream A, 5-6 pending in B, 7 cancelled, 8-10 events
    only; users 9 and 10 share a first_seen."""
    for user in range(1, 8):
        add_bookings(
            booking_row(
                user,
                confirmed=2 if user <= 4 else 1 if user <= 6 else -1,
                course_stream="A" if user <= 4 else "B",
                created_at=T0 + timedelta(hours=user),
                username=f"student{user}",
                first_name="Олег" if user == 3 else "Anna",
            )
        )
    add_events(
        event_row(8, "start", created_at=T0 + timedelta(hours=8)),
        event_row(9, "start", created_at=T0 + timedelta(hours=9)),
        event_row(10, "start", created_at=T0 + timedelta(hours=9)),
    )
    add_registrations(free_lesson_row(1, registered_at=T0 - timedelta(days=1), username=None))


async def _page(client: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> dict:
    response = await client.get(f"/api/users?{query}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


async def test_order_pages_and_total(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], people: None
) -> None:
    first = await _page(client, viewer_headers, "limit=4")
    assert first["total"] == 10
    assert [u["user_id"] for u in first["items"]] == [10, 9, 8, 7]
    second = await _page(client, viewer_headers, "limit=4&offset=4")
    assert [u["user_id"] for u in second["items"]] == [6, 5, 4, 3]
    beyond = await _page(client, viewer_headers, "offset=50")
    assert (beyond["items"], beyond["total"]) == ([], 10)
    assert first["items"][0] == {
        "user_id": 10,
        "username": None,
        "first_name": None,
        "first_seen": "2024-05-01T21:00:00+00:00",
        "last_seen": "2024-05-01T21:00:00+00:00",
        "course_stream": None,
        "status": "no_booking",
        "bookings_count": 0,
        "events_count": 1,
        "free_lessons_count": 0,
        "is_blocked": False,
    }


@pytest.mark.parametrize(
    ("query", "users", "total"),
    [
        ("status=confirmed", [4, 3, 2, 1], 4),
        ("status=pending", [6, 5], 2),
        ("status=cancelled", [7], 1),
        ("status=no_booking", [10, 9, 8], 3),
        ("status=", [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], 10),
        ("stream=A", [4, 3, 2, 1], 4),
        ("stream=B", [6, 5], 2),
        ("stream=B&status=pending", [6, 5], 2),
        ("stream=A&status=pending", [], 0),
        ("stream=nowhere", [], 0),
        ("search=student1", [1], 1),
        ("search=STUDENT", [7, 6, 5, 4, 3, 2, 1], 7),
        ("search=олег", [3], 1),
        ("search=anna&status=confirmed&stream=A", [4, 2, 1], 3),
        ("search=anna&limit=2&offset=1", [6, 5], 6),
    ],
)
async def test_filters(
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
    people: None,
    query: str,
    users: list[int],
    total: int,
) -> None:
    page = await _page(client, viewer_headers, query)
    assert ([u["user_id"] for u in page["items"]], page["total"]) == (users, total)


async def test_blocked_users_are_marked(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], people: None, sync_engine: Engine
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO bot_users (user_id, is_blocked) VALUES (2, true), (3, false)")
        )
    page = await _page(client, viewer_headers, "stream=A")
    assert {u["user_id"]: u["is_blocked"] for u in page["items"]} == {
        4: False,
        3: False,
        2: True,
        1: False,
    }


async def test_csv_export_applies_the_filters(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], people: None, add_bookings: Insert
) -> None:
    add_bookings(booking_row(11, username="=1+2", first_name="@evil", course_stream="A",
                             confirmed=2, created_at=T0))  # fmt: skip
    response = await client.get(
        "/api/users?stream=A&status=confirmed&limit=1&format=csv", headers=viewer_headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="users.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["user_id", "username", "first_name"]
    assert [row[0] for row in rows[1:]] == ["4", "3", "2", "11", "1"]
    assert rows[4][1:3] == ["'=1+2", "'@evil"]


async def test_csv_starts_with_a_byte_order_mark_unless_asked_not_to(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], add_bookings: Insert
) -> None:
    add_bookings(booking_row(12, username="аня", first_name="Аня", created_at=T0))
    marked = await client.get("/api/users?format=csv", headers=viewer_headers)
    assert marked.content.startswith(b"\xef\xbb\xbfuser_id,")
    assert "Аня".encode() in marked.content
    plain = await client.get("/api/users?format=csv&bom=0", headers=viewer_headers)
    assert plain.content.startswith(b"user_id,")
    assert plain.content == marked.content[3:]
    refused = await client.get("/api/users?format=csv&bom=maybe", headers=viewer_headers)
    assert refused.status_code == 400
    assert "bom" in refused.json()["error"]


@pytest.mark.parametrize("query", ["search=%00", "search=a%00b", "stream=%00"])
async def test_a_csv_that_cannot_be_made_is_refused_before_it_starts(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], query: str
) -> None:
    response = await client.get(f"/api/users?format=csv&{query}", headers=viewer_headers)
    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=501",
        "limit=1000000000",
        "limit=ten",
        "offset=-1",
        "offset=1000000001",
        "status=unknown",
        "status=CONFIRMED",
        "search=" + "x" * 5000,
        "stream=" + "s" * 101,
        "format=pdf",
    ],
)
async def test_bad_input(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], query: str
) -> None:
    response = await client.get(f"/api/users?{query}", headers=viewer_headers)
    assert response.status_code == 422
    assert response.json()["error"]


async def test_needs_a_caller(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/users")).status_code == 401
