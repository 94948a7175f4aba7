"""Every page opens, on an empty database and with data, and shows what the API says."""

from __future__ import annotations

import json
import re

import httpx
from page_client import SignIn
from pages_data import ANNA, BORIS, add_students
from sqlalchemy import Engine, text

from coursedesk.accounts.roles import Role
from coursedesk.analytics.folding import fold_pending

DASHBOARD_BLOCKS = (
    "stats",
    "growth",
    "activity",
    "funnel",
    "conversion",
    "courses",
    "streams",
    "top-events",
    "referrals",
    "recent-bookings",
    "recent-events",
)
PAGES = ("/", "/users", "/broadcasts", "/broadcasts/new", "/system")


def figure(page: httpx.Response, name: str) -> int:
    found = re.search(rf'data-figure="{name}">([\d,]+)<', page.text)
    assert found is not None, f"no figure {name} on the page"
    return int(found.group(1).replace(",", ""))


async def test_an_empty_database_shows_empty_states(signed_in: SignIn) -> None:
    client = await signed_in(Role.admin)
    for path in PAGES:
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert page.headers["content-type"].startswith("text/html")
    assert "No students yet" in (await client.get("/users")).text
    assert "No broadcasts yet" in (await client.get("/broadcasts")).text
    expected = {
        "growth": "Nothing to chart yet",
        "activity": "Nothing to chart yet",
        "funnel": "No new users in this range",
        "conversion": "No free lessons yet",
        "courses": "No bookings yet",
        "streams": "No streams yet",
        "top-events": "No events yet",
        "referrals": "No referral codes yet",
        "recent-bookings": "No bookings yet",
        "recent-events": "No events yet",
    }
    for block, empty_text in expected.items():
        answer = await client.get(f"/dashboard/blocks/{block}", params={"days": 30})
        assert answer.status_code == 200, block
        assert empty_text in answer.text, block
    stats = await client.get("/dashboard/blocks/stats")
    assert figure(stats, "total_users") == 0


async def test_the_dashboard_shows_the_figures_of_the_api(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.viewer)
    page = await client.get("/", params={"days": 7})
    assert page.status_code == 200
    for block in DASHBOARD_BLOCKS:
        assert f'data-block-src="/dashboard/blocks/{block}?days=7"' in page.text

    stats = await client.get("/dashboard/blocks/stats", params={"days": 7})
    api = (await client.get("/api/stats")).json()
    for name in ("total_users", "active_bookings", "confirmed_payments"):
        assert figure(stats, name) == api[name]
    assert figure(stats, "free_lesson_registrations") == api["free_lesson_registrations"]
    assert api == {
        "total_users": 4,
        "active_bookings": 2,
        "confirmed_payments": 1,
        "free_lesson_registrations": 1,
    }

    growth = await client.get("/dashboard/blocks/growth", params={"days": 7})
    assert 'class="chart-figure"' in growth.text and "All users" in growth.text
    courses = await client.get("/dashboard/blocks/courses")
    assert "Python Basics" in courses.text
    referrals = await client.get("/dashboard/blocks/referrals")
    assert "FRIEND10" in referrals.text and "10%" in referrals.text
    bookings = await client.get("/dashboard/blocks/recent-bookings")
    assert f'href="/users/{ANNA}"' in bookings.text


async def test_lesson_conversion_marks_lessons_yet_to_come(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)  # Anna signed up for python_intro on 2030-01-15
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO free_lesson_registrations (user_id, lesson_type, lesson_date) "
                "VALUES (:boris, 'sql_basics', DATE '2024-03-01')"
            ),
            {"boris": BORIS},
        )
        connection.execute(
            text(
                "INSERT INTO events (user_id, event_type, details) "
                "VALUES (:boris, 'lesson_attended', CAST(:details AS jsonb))"
            ),
            {
                "boris": BORIS,
                "details": '{"lesson_type": "sql_basics", "lesson_date": "2024-03-01"}',
            },
        )
    fold_pending(sync_engine)
    client = await signed_in(Role.viewer)
    block = await client.get("/dashboard/blocks/conversion")
    assert block.status_code == 200
    rows = re.findall(r"<tr>(.*?)</tr>", block.text, re.DOTALL)
    [coming] = [row for row in rows if "python_intro" in row]
    [held] = [row for row in rows if "sql_basics" in row]
    assert "upcoming" in coming and "0%" not in coming
    assert "100%" in held and "upcoming" not in held


async def test_a_custom_range_and_a_wrong_one(signed_in: SignIn) -> None:
    client = await signed_in(Role.viewer)
    custom = await client.get("/", params={"from": "2030-01-01", "to": "2030-01-10"})
    assert custom.status_code == 200
    assert "from=2030-01-01&amp;to=2030-01-10" in custom.text
    backwards = await client.get("/", params={"from": "2030-01-10", "to": "2030-01-01"})
    assert backwards.status_code == 200
    assert "That date range does not work" in backwards.text
    block = await client.get(
        "/dashboard/blocks/activity", params={"from": "2030-01-10", "to": "2030-01-01"}
    )
    assert block.status_code == 400
    assert 'class="block-error"' in block.text


async def test_the_student_list_searches_filters_and_pages(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.viewer)
    everyone = await client.get("/users")
    assert "4 students" in everyone.text
    assert 'type="search" name="search"' in everyone.text
    found = await client.get("/users", params={"search": "@anna"})
    assert f'href="/users/{ANNA}"' in found.text and f'href="/users/{BORIS}"' not in found.text
    assert "1 student match" in found.text
    pending = await client.get("/users", params={"status": "pending"})
    assert f'href="/users/{BORIS}"' in pending.text and f'href="/users/{ANNA}"' not in pending.text
    in_stream = await client.get("/users", params={"stream": "PY-1"})
    assert "2 students match" in in_stream.text
    assert 'href="/api/users?format=csv&amp;stream=PY-1"' in in_stream.text
    nobody = await client.get("/users", params={"search": "%_'\\"})
    assert nobody.status_code == 200 and "No student matches" in nobody.text


async def test_a_student_page_shows_everything_about_them(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    client = await signed_in(Role.viewer)
    page = await client.get(f"/users/{ANNA}")
    assert page.status_code == 200
    text = page.text
    assert "Anna" in text and "@anna_k" in text
    assert 'class="badge confirmed"' in text
    assert "FRIEND10" in text and "python_intro" in text and "anna@example.org" in text
    assert "course_view" in text
    assert "No broadcasts yet" in text
    assert 'action="/users/1001/stream"' not in text, "a viewer gets no edit form"

    missing = await client.get("/users/999999")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "No user 999999." in missing.text


ODD_REQUESTS = (
    "/?days=0",
    "/?days=abc",
    "/?from=2030-13-01",
    "/?days=7&from=2030-01-01",
    "/users?page=0",
    "/users?status=bogus",
    "/users?search=" + "x" * 500,
    "/users/abc",
    "/users/99999999999999999999",
    "/broadcasts/abc",
    "/broadcasts/424242",
    "/broadcasts?status=lost",
    "/broadcasts/new?audience=everybody",
    "/dashboard/blocks/nope",
    "/dashboard/blocks/stats?days=99999",
    "/system?action=%00",
    "/system?page=-1",
)


async def test_odd_input_gets_a_message_never_a_server_error(signed_in: SignIn) -> None:
    client = await signed_in(Role.admin)
    wrong = {}
    for path in ODD_REQUESTS:
        answer = await client.get(path)
        html = answer.headers["content-type"].startswith("text/html")
        if answer.status_code >= 500 or not html or "Traceback" in answer.text:
            wrong[path] = answer.status_code
    assert wrong == {}


async def test_anonymous_visitors_go_to_the_login_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/users", params={"status": "pending"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fusers%3Fstatus%3Dpending"
    block = await client.get("/dashboard/blocks/stats")
    assert block.status_code == 401
    assert "sign in again" in block.text


async def test_a_value_postgresql_cannot_hold_is_a_message_not_a_failure(
    signed_in: SignIn,
) -> None:
    client = await signed_in(Role.viewer)
    for path, params in (
        ("/users", {"search": "\x00"}),
        ("/broadcasts", {"recipient_group": "\x00"}),
    ):
        page = await client.get(path, params=params)
        assert page.status_code == 400, path
        assert "That did not work" in page.text and "NUL" in page.text


async def test_each_block_says_what_it_covers(signed_in: SignIn) -> None:
    client = await signed_in(Role.viewer)
    page = await client.get("/", params={"from": "2030-01-01", "to": "2030-01-10"})
    scopes = dict(
        re.findall(
            r'<h2 id="title-([\w-]+)">[^<]*<span class="scope[^"]*" data-scope="([\w ]+)"',
            page.text,
        )
    )
    assert scopes == {
        "growth": "range",
        "activity": "range",
        "funnel": "range",
        "conversion": "all time",
        "courses": "all time",
        "streams": "all time",
        "top-events": "all time",
        "recent-bookings": "latest",
        "recent-events": "latest",
        "referrals": "all time",
    }
    assert 'class="figures-scope"><span class="scope" data-scope="all time">' in page.text


async def test_the_range_is_kept_for_the_next_visit(signed_in: SignIn) -> None:
    client = await signed_in(Role.viewer)
    default = await client.get("/")
    assert 'data-block-src="/dashboard/blocks/growth?days=30"' in default.text
    await client.get("/", params={"days": 7})
    await client.get("/users")
    again = await client.get("/")
    assert 'data-block-src="/dashboard/blocks/growth?days=7"' in again.text
    await client.get("/", params={"from": "2030-01-01", "to": "2030-01-10"})
    custom = await client.get("/")
    assert "growth?from=2030-01-01&amp;to=2030-01-10" in custom.text
    # A range that does not work is shown with its error, and not kept.
    await client.get("/", params={"from": "2030-01-10", "to": "2030-01-01"})
    assert "growth?from=2030-01-01&amp;to=2030-01-10" in (await client.get("/")).text
    client.cookies.set("dashboard_range", "days=nonsense")
    assert 'growth?days=30"' in (await client.get("/")).text


async def test_the_activity_chart_marks_the_days_broadcasts_went_out(
    signed_in: SignIn, sync_engine: Engine
) -> None:
    add_students(sync_engine)
    with sync_engine.begin() as connection:
        sent = connection.scalar(
            text(
                "INSERT INTO message_history (message_text, recipient_type, audience, status,"
                " started_at, sent_at) VALUES ('Spring   stream <b>opens</b>', 'group',"
                " '{\"type\": \"all\"}', 'sent', now() - interval '2 days',"
                " now() - interval '2 days') RETURNING id"
            )
        )
        connection.execute(
            text(
                "INSERT INTO message_history (message_text, recipient_type, audience, status,"
                " started_at) VALUES ('Long ago', 'group', '{\"type\": \"all\"}', 'sent',"
                " now() - interval '60 days')"
            )
        )
    client = await signed_in(Role.viewer)
    block = await client.get("/dashboard/blocks/activity", params={"days": 7})
    assert block.status_code == 200
    assert f'<a href="/broadcasts/{sent}" title="Spring stream &lt;b&gt;opens&lt;/b&gt;">' in (
        block.text
    )
    assert "Long ago" not in block.text
    figure = re.search(r'class="chart-figure">(.*?)</script>', block.text, re.DOTALL)
    assert figure is not None
    [marks] = [t for t in json.loads(figure.group(1))["data"] if t["name"] == "Broadcasts"]
    assert marks["customdata"] == [f"/broadcasts/{sent}"]
    quiet = await client.get("/dashboard/blocks/activity", params={"days": 1})
    assert "broadcast-marks" not in quiet.text
