"""The 360° view: one student, their bookings, events and free lessons; ids as given."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from users_data import Insert

from coursedesk.db.datagen.rows import booking_row, event_row, free_lesson_row

STUDENT = 7_777_777_777
T0 = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def student(add_bookings: Insert, add_events: Insert, add_registrations: Insert) -> list[int]:
    bookings = add_bookings(
        booking_row(STUDENT, confirmed=2, course_id=4, course_stream="S1", created_at=T0,
                    username="stu", first_name="Stu", discount_percent="12.50"),
        booking_row(STUDENT, confirmed=-1, course_id=4, course_stream="S2",
                    created_at=T0 + timedelta(days=1), username="stu", first_name="Stu"),
        booking_row(1, created_at=T0),
    )  # fmt: skip
    add_events(*(event_row(STUDENT, f"step{n}", created_at=T0 + timedelta(hours=n),
                           details={"n": n}) for n in range(5)))  # fmt: skip
    add_registrations(
        free_lesson_row(STUDENT, lesson_type="intro", lesson_date=date(2024, 4, 3),
                        registered_at=T0 - timedelta(days=2), email="stu@example.com")
    )  # fmt: skip
    return bookings


async def test_one_student(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], student: list[int]
) -> None:
    response = await client.get(f"/api/users/{STUDENT}", headers=viewer_headers)
    assert response.status_code == 200
    assert response.json() == {
        "user_id": STUDENT,
        "username": "stu",
        "first_name": "Stu",
        "first_seen": "2024-03-30T09:00:00+00:00",
        "last_seen": "2024-04-02T09:00:00+00:00",
        "course_stream": "S1",
        "status": "confirmed",
        "bookings_count": 2,
        "events_count": 5,
        "free_lessons_count": 1,
        "is_blocked": False,
    }


async def test_their_lists(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], student: list[int]
) -> None:
    bookings = (await client.get(f"/api/users/{STUDENT}/bookings", headers=viewer_headers)).json()
    assert [b["id"] for b in bookings["items"]] == [student[1], student[0]]
    assert bookings["items"][1]["discount_percent"] == 12.5
    assert bookings["items"][1]["course_name"] == "Course 4"
    events = await client.get(f"/api/users/{STUDENT}/events?limit=2", headers=viewer_headers)
    assert [(e["event_type"], e["details"], e["username"]) for e in events.json()["items"]] == [
        ("step4", {"n": 4}, "stu"),
        ("step3", {"n": 3}, "stu"),
    ]
    lessons = await client.get(f"/api/users/{STUDENT}/free-lessons", headers=viewer_headers)
    [lesson] = lessons.json()["items"]
    assert (lesson["lesson_type"], lesson["lesson_date"], lesson["email"]) == (
        "intro",
        "2024-04-03",
        "stu@example.com",
    )
    csv = await client.get(f"/api/users/{STUDENT}/events?format=csv", headers=viewer_headers)
    assert csv.text.splitlines()[0] == "\ufeffid,user_id,username,event_type,created_at,details"
    assert len(csv.text.splitlines()) == 6


@pytest.mark.parametrize("suffix", ["", "/bookings", "/events", "/free-lessons"])
async def test_unknown_ids(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], student: list[int], suffix: str
) -> None:
    for user_id, status in (
        (123, 404),
        (-5, 404),
        (2**63 - 1, 404),
        (2**63, 422),
        (-(2**63) - 1, 422),
        ("abc", 422),
        ("1.5", 422),
        ("1e3", 422),
    ):
        response = await client.get(f"/api/users/{user_id}{suffix}", headers=viewer_headers)
        assert response.status_code == status, (user_id, response.text)
        assert response.json()["error"]


async def test_bad_event_limits(client: httpx.AsyncClient, viewer_headers: dict[str, str]) -> None:
    for limit in ("0", "-1", "1001", "x"):
        response = await client.get(f"/api/users/1/events?limit={limit}", headers=viewer_headers)
        assert response.status_code == 422
