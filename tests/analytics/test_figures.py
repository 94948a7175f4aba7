"""Every dashboard figure of docs/reference.md §4 on the hand-built edge-case data, number by
number."""

from __future__ import annotations

import httpx
from analytics_data import U1, U2, U3, U4, U5, U6, BotWriter, ClientFactory, EdgeData, at

from coursedesk.db.datagen.rows import free_lesson_row, lesson_attended_row


async def _items(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[dict]:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


async def test_dashboard_stats(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    response = await client.get("/api/stats", headers=viewer_headers)
    assert response.status_code == 200
    assert response.json() == {
        "total_users": 6,
        "active_bookings": 4,
        "confirmed_payments": 2,
        "free_lesson_registrations": 4,
    }


async def test_course_figures_name_missing_courses(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    assert await _items(client, "/api/courses", viewer_headers) == [
        {"course_id": 1, "course_name": "Python", "total_bookings": 2, "confirmed": 1,
         "pending": 1, "cancelled": 0, "unique_users": 1},
        {"course_id": 2, "course_name": "Design", "total_bookings": 1, "confirmed": 0,
         "pending": 0, "cancelled": 1, "unique_users": 1},
        {"course_id": 3, "course_name": "Course 3", "total_bookings": 2, "confirmed": 1,
         "pending": 1, "cancelled": 0, "unique_users": 1},
    ]  # fmt: skip


async def test_stream_figures_leave_out_bookings_without_stream(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    items = await _items(client, "/api/courses/streams", viewer_headers)
    assert [
        (i["course_id"], i["course_stream"], i["total_bookings"], i["confirmed"], i["pending"],
         i["cancelled"], i["unique_users"])
        for i in items
    ] == [
        (1, "PY-1", 1, 0, 1, 0, 1),
        (1, "PY-2", 1, 1, 0, 0, 1),
        (2, "DS-1", 1, 0, 0, 1, 1),
        (3, "X-1", 1, 1, 0, 0, 1),
    ]  # fmt: skip


async def test_top_events_count_anonymous_events_but_not_as_users(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    assert await _items(client, "/api/events/top", viewer_headers) == [
        {"event_type": "lesson_attended", "count": 4, "unique_users": 2},
        {"event_type": "start", "count": 2, "unique_users": 1},
        {"event_type": "button_click", "count": 1, "unique_users": 1},
    ]
    assert await _items(client, "/api/events/top?limit=1", viewer_headers) == [
        {"event_type": "lesson_attended", "count": 4, "unique_users": 2}
    ]


async def test_referrals_average_only_the_given_discounts(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    assert await _items(client, "/api/referrals", viewer_headers) == [
        {"referral_code": "SPRING", "bookings": 2, "confirmed": 1, "unique_users": 1,
         "avg_discount_percent": 10.0},
        {"referral_code": "AUTUMN", "bookings": 1, "confirmed": 1, "unique_users": 1,
         "avg_discount_percent": 15.5},
    ]  # fmt: skip


async def test_conversion_joins_both_sides_and_counts_distinct_users(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    # python 2024-03-15: registered U1 and U6 (twice); attended U1, U5 and an anonymous
    # user. design: U4 registered without a date; U5 attended with an impossible date.
    assert await _items(client, "/api/free-lessons/conversion", viewer_headers) == [
        {"lesson_type": "python", "lesson_date": "2024-03-15", "registrations": 2,
         "attendances": 2, "conversion_rate": 100.0},
        {"lesson_type": "design", "lesson_date": None, "registrations": 1,
         "attendances": 1, "conversion_rate": 100.0},
    ]  # fmt: skip


async def test_conversion_rate_rounds_and_is_null_without_registrations(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter
) -> None:
    lesson = at("2024-05-01 10:00").date()
    bot.registrations(*(free_lesson_row(user, lesson_type="sql", lesson_date=lesson)
                        for user in (1, 2, 3)))  # fmt: skip
    bot.events(
        lesson_attended_row(1, "sql", lesson),
        lesson_attended_row(1, "sql", lesson),
        lesson_attended_row(9, "walk-in", lesson),
    )
    assert await _items(client, "/api/free-lessons/conversion", viewer_headers) == [
        {"lesson_type": "sql", "lesson_date": "2024-05-01", "registrations": 3,
         "attendances": 1, "conversion_rate": 33.33},
        {"lesson_type": "walk-in", "lesson_date": "2024-05-01", "registrations": 0,
         "attendances": 1, "conversion_rate": None},
    ]  # fmt: skip


async def test_an_anonymous_attendance_without_details_makes_no_conversion_row(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter
) -> None:
    bot.execute("INSERT INTO events (user_id, event_type) VALUES (NULL, 'lesson_attended')")
    bot.execute(
        "INSERT INTO events (user_id, event_type, details)"
        """ VALUES (NULL, 'lesson_attended', '{"lesson_type": "sql"}')"""
    )
    assert await _items(client, "/api/free-lessons/conversion", viewer_headers) == []


async def test_recent_lists_newest_first(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    bookings = await _items(client, "/api/bookings/recent?limit=2", viewer_headers)
    assert [b["id"] for b in bookings] == [edge_data.bookings[3], edge_data.bookings[4]]
    assert bookings[0] == {
        "id": edge_data.bookings[3],
        "user_id": U4,
        "username": None,
        "first_name": None,
        "course_id": 3,
        "course_name": "Course 3",
        "course_stream": None,
        "confirmed": 1,
        "created_at": "2024-03-13T08:00:00+00:00",
        "referral_code": None,
        "discount_percent": None,
    }
    assert bookings[1]["discount_percent"] == 15.5

    events = await _items(client, "/api/events/recent?limit=3", viewer_headers)
    assert [(e["user_id"], e["username"], e["event_type"]) for e in events] == [
        (U5, None, "lesson_attended"),
        (None, None, "lesson_attended"),
        (U5, None, "lesson_attended"),
    ]
    assert events[0]["details"] == {"lesson_type": "design", "lesson_date": "2024-02-30"}
    first = await _items(client, "/api/events/recent?limit=20", viewer_headers)
    assert len(first) == 7
    assert [e["username"] for e in first if e["user_id"] == U1] == ["new_u1"]

    lessons = await _items(client, "/api/free-lessons", viewer_headers)
    assert [(r["user_id"], r["registered_at"]) for r in lessons] == [
        (U6, "2024-03-14T23:55:00+00:00"),
        (U6, "2024-03-14T23:50:00+00:00"),
        (U1, "2024-03-05T09:00:00+00:00"),
        (U4, "2024-03-01T12:00:00+00:00"),
    ]
    assert lessons[3]["lesson_date"] is None and lessons[3]["username"] == "four"


async def test_daily_figures_in_a_quarter_hour_time_zone(
    client_in_timezone: ClientFactory, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    # Asia/Kathmandu is UTC+05:45: 18:10Z is 23:55 the same day, 18:20Z is 00:05 the next.
    async with client_in_timezone("Asia/Kathmandu") as client:
        items = await _items(
            client, "/api/stats/daily?from=2024-03-11&to=2024-03-16", viewer_headers
        )
        growth = await _items(
            client, "/api/user-growth?from=2024-03-11&to=2024-03-16", viewer_headers
        )
        early = await _items(
            client, "/api/user-growth?from=2024-03-11&to=2024-03-12", viewer_headers
        )
    assert [
        (i["date"], i["new_users"], i["bookings"], i["events"], i["free_lesson_registrations"])
        for i in items
    ] == [
        ("2024-03-11", 1, 0, 1, 0),
        ("2024-03-12", 1, 2, 2, 0),
        ("2024-03-13", 0, 2, 0, 0),
        ("2024-03-14", 0, 0, 0, 0),
        ("2024-03-15", 1, 0, 1, 2),
        ("2024-03-16", 1, 0, 3, 0),
    ]
    assert [(g["date"], g["new_users"], g["total_users"]) for g in growth] == [
        ("2024-03-11", 1, 3),
        ("2024-03-12", 1, 4),
        ("2024-03-13", 0, 4),
        ("2024-03-14", 0, 4),
        ("2024-03-15", 1, 5),
        ("2024-03-16", 1, 6),
    ]
    assert [(g["date"], g["total_users"]) for g in early] == [
        ("2024-03-11", 3),
        ("2024-03-12", 4),
    ]


async def test_daily_figures_in_utc(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    items = await _items(client, "/api/stats/daily?from=2024-03-11&to=2024-03-12", viewer_headers)
    assert [(i["date"], i["new_users"], i["events"]) for i in items] == [
        ("2024-03-11", 1, 2),
        ("2024-03-12", 1, 1),
    ]


async def test_funnel_steps(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    response = await client.get("/api/funnel?from=2024-03-01&to=2024-03-16", headers=viewer_headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"]) == ("2024-03-01", "2024-03-16")
    assert [
        (s["step"], s["users"], s["reached"], s["rate_from_previous"], s["rate_from_start"])
        for s in body["items"]
    ] == [
        ("started_bot", 6, 6, 100.0, 100.0),
        ("registered_free_lesson", 3, 3, 50.0, 50.0),
        ("attended_free_lesson", 1, 2, 33.33, 16.67),
        ("booked", 1, 3, 100.0, 16.67),
        ("paid", 1, 2, 100.0, 16.67),
    ]
    later = await client.get("/api/funnel?from=2024-03-14&to=2024-03-16", headers=viewer_headers)
    assert [s["users"] for s in later.json()["items"]] == [2, 1, 0, 0, 0]  # U5 and U6


async def test_users_of_the_edge_data(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    response = await client.get("/api/users", headers=viewer_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 6
    rows = {
        u["user_id"]: (
            u["username"], u["first_name"], u["first_seen"], u["last_seen"], u["course_stream"],
            u["status"], u["bookings_count"], u["events_count"], u["free_lessons_count"],
            u["is_blocked"],
        )
        for u in body["items"]
    }  # fmt: skip
    assert [u["user_id"] for u in body["items"]] == [U5, U6, U3, U2, U1, U4]
    assert rows == {
        U1: ("new_u1", "Ann", "2024-03-05T09:00:00+00:00", "2024-03-15T18:00:00+00:00",
             "PY-2", "confirmed", 2, 1, 1, False),
        U2: (None, None, "2024-03-11T18:10:00+00:00", "2024-03-11T18:20:00+00:00",
             None, "no_booking", 0, 2, 0, False),
        U3: ("u3", "Cat", "2024-03-12T12:00:00+00:00", "2024-03-12T12:00:00+00:00",
             None, "cancelled", 1, 0, 0, False),
        U4: ("four", None, "2024-03-01T12:00:00+00:00", "2024-03-13T08:00:00+00:00",
             None, "confirmed", 2, 0, 1, False),
        U5: (None, None, "2024-03-15T19:00:00+00:00", "2024-03-16T10:00:00+00:00",
             None, "no_booking", 0, 2, 0, False),
        U6: ("six_user", "Six", "2024-03-14T23:50:00+00:00", "2024-03-14T23:55:00+00:00",
             None, "no_booking", 0, 0, 2, False),
    }  # fmt: skip
