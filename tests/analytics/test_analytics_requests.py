"""Bad input, roles, CSV downloads and retention of the analytics routes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta

import httpx
import pytest
from analytics_data import U1, BotWriter, EdgeData

from coursedesk.analytics.export import safe_cell
from coursedesk.analytics.periods import week_start
from coursedesk.db.datagen.rows import booking_row, event_row

LIST_ROUTES = [
    "/api/stats",
    "/api/stats/daily",
    "/api/user-growth",
    "/api/courses",
    "/api/courses/streams",
    "/api/events/top",
    "/api/events/recent",
    "/api/bookings/recent",
    "/api/referrals",
    "/api/free-lessons",
    "/api/free-lessons/conversion",
    "/api/funnel",
    "/api/retention",
]


@pytest.mark.parametrize("path", LIST_ROUTES)
async def test_routes_need_a_caller(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert "error" in response.json()


@pytest.mark.parametrize("path", LIST_ROUTES)
async def test_viewers_read_every_figure(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=viewer_headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("days=0", 422),
        ("days=367", 422),
        ("days=abc", 422),
        ("days=-5", 422),
        ("days=99999999999999999999999", 422),
        ("from=2024-13-01", 422),
        ("from=yesterday", 422),
        ("from=2024-03-10&to=2024-03-01", 400),
        ("from=2023-01-01&to=2024-03-01", 400),
        ("days=7&from=2024-03-01", 400),
        ("to=0001-01-02&days=30", 400),
    ],
)
@pytest.mark.parametrize("path", ["/api/stats/daily", "/api/user-growth", "/api/funnel"])
async def test_bad_day_ranges(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], path: str, query: str, status: int
) -> None:
    response = await client.get(f"{path}?{query}", headers=viewer_headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/events/top?limit=0",
        "/api/events/top?limit=-1",
        "/api/events/recent?limit=1000000000",
        "/api/bookings/recent?limit=abc",
        "/api/free-lessons?limit=501",
        "/api/retention?weeks=0",
        "/api/retention?weeks=27",
        "/api/courses?format=xml",
    ],
)
async def test_bad_limits(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=viewer_headers)
    assert response.status_code == 422
    assert response.json()["error"]


async def test_range_limits_are_inclusive(
    client: httpx.AsyncClient, viewer_headers: dict[str, str]
) -> None:
    longest = await client.get("/api/stats/daily?days=366", headers=viewer_headers)
    assert len(longest.json()["items"]) == 366
    single = await client.get(
        "/api/user-growth?from=2024-02-29&to=2024-02-29", headers=viewer_headers
    )
    assert [d["date"] for d in single.json()["items"]] == ["2024-02-29"]
    default = await client.get("/api/stats/daily", headers=viewer_headers)
    days = default.json()["items"]
    assert len(days) == 30
    assert days[-1]["date"] == datetime.now(UTC).date().isoformat()


async def test_csv_download_of_a_figure(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], edge_data: EdgeData
) -> None:
    response = await client.get("/api/courses?format=csv", headers=viewer_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="courses.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == [
        "course_id", "course_name", "total_bookings", "confirmed", "pending", "cancelled",
        "unique_users",
    ]  # fmt: skip
    assert rows[3] == ["3", "Course 3", "2", "1", "1", "0", "1"]
    daily = await client.get(
        "/api/stats/daily?from=2024-03-11&to=2024-03-12&format=csv", headers=viewer_headers
    )
    assert list(csv.reader(io.StringIO(daily.content.decode("utf-8-sig"))))[1:] == [
        ["2024-03-11", "1", "0", "2", "0"],
        ["2024-03-12", "1", "2", "1", "0"],
    ]


async def test_csv_cells_cannot_run_formulas(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter
) -> None:
    bot.bookings(
        booking_row(U1, username="=HYPERLINK(\"http://x\")", first_name="+1", course_stream="@A",
                    referral_code="-2", confirmed=-1)
    )  # fmt: skip
    bot.events(event_row(U1, "=cmd|' /C calc'!A0", details={"note": "=1+1"}))
    bookings = await client.get("/api/bookings/recent?format=csv", headers=viewer_headers)
    row = list(csv.reader(io.StringIO(bookings.content.decode("utf-8-sig"))))[1]
    assert row[2:4] == ['\'=HYPERLINK("http://x")', "'+1"]
    assert row[6] == "'@A" and row[7] == "-1" and row[9] == "'-2"
    events = await client.get("/api/events/top?format=csv", headers=viewer_headers)
    assert (
        list(csv.reader(io.StringIO(events.content.decode("utf-8-sig"))))[1][0]
        == "'=cmd|' /C calc'!A0"
    )
    assert safe_cell({"note": "=1+1"}) == '{"note":"=1+1"}'
    assert safe_cell("\tx") == "'\tx" and safe_cell(None) == "" and safe_cell(False) == "false"


async def test_retention_cohorts(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter
) -> None:
    now = datetime.now(UTC)
    joined = datetime.combine(now.date() - timedelta(days=20), time(12), tzinfo=UTC)
    # One user came back 15 days later, one never did, one joined today.
    bot.events(
        event_row(1, "start", created_at=joined),
        event_row(1, "click", created_at=joined + timedelta(days=15)),
        event_row(2, "start", created_at=joined + timedelta(minutes=1)),
        event_row(3, "start", created_at=now),
    )
    response = await client.get("/api/retention?weeks=4", headers=viewer_headers)
    assert response.status_code == 200
    cohorts = response.json()["items"]
    mondays = [week_start(now.date()) - timedelta(weeks=3 - n) for n in range(4)]
    assert [c["cohort_week"] for c in cohorts] == [m.isoformat() for m in mondays]
    by_week = {c["cohort_week"]: c for c in cohorts}
    old = by_week[week_start(joined.date()).isoformat()]
    assert old["users"] == 2
    elapsed = (now.date() - week_start(joined.date())).days // 7
    expected = [(0, 2, 100.0), (1, 1, 50.0), (2, 1, 50.0)] + [
        (week, 0, 0.0) for week in range(3, elapsed + 1)
    ]
    assert [(w["week"], w["users"], w["rate"]) for w in old["retained"]] == expected
    current = cohorts[-1]
    assert (current["users"], current["retained"]) == (1, [{"week": 0, "users": 1, "rate": 100.0}])
    empty = [c for c in cohorts if c["users"] == 0]
    assert all(w["rate"] is None for c in empty for w in c["retained"])
    download = await client.get("/api/retention?weeks=4&format=csv", headers=viewer_headers)
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["cohort_week", "cohort_users", "week", "users", "rate"]
    assert [week_start(joined.date()).isoformat(), "2", "1", "1", "50.0"] in rows
