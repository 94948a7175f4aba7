"""Search (docs/reference.md §4): substring of @username or first_name, ids, and every
character literal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from users_data import Insert

from coursedesk.db.datagen.rows import booking_row, free_lesson_row
from coursedesk.sources.models import BOOKING_CONFIRMED
from coursedesk.users import queries

BIG_ID = 9_007_199_254_740_993  # above 2^53 too
NAMES = {
    1: ("anna_smith", "Anna"),
    2: ("bob%done", "Bob"),
    3: ("under_score", "O'Neil"),
    4: ("back\\slash", "Zoë"),
    5: (None, "Иван"),
    6: ("plain", None),
    123: ("x123", "Digits 4567"),
    4567: ("someone", "Else"),
    BIG_ID: ("big", "Big"),
}


@pytest.fixture
def named(add_bookings: Insert, add_registrations: Insert) -> None:
    start = datetime(2024, 6, 1, tzinfo=UTC)
    for n, (user, (username, first_name)) in enumerate(NAMES.items()):
        add_bookings(
            booking_row(user, username=username, first_name=first_name,
                        created_at=start + timedelta(minutes=n))
        )  # fmt: skip
    # An older, different name: only the most recent one is searched.
    add_registrations(free_lesson_row(6, username="ghost", first_name=None, registered_at=start))


async def _found(client: httpx.AsyncClient, headers: dict[str, str], q: str) -> set[int]:
    search = await client.get(f"/api/users/search?q={quote(q)}&limit=100", headers=headers)
    listed = await client.get(f"/api/users?search={quote(q)}&limit=500", headers=headers)
    assert search.status_code == listed.status_code == 200, search.text
    from_search = {u["user_id"] for u in search.json()["items"]}
    from_list = {u["user_id"] for u in listed.json()["items"]}
    assert from_search == from_list
    assert listed.json()["total"] == len(from_list)
    return from_search


@pytest.mark.parametrize(
    ("q", "users"),
    [
        ("anna", {1}),
        ("ANNA_", {1}),
        ("@anna", {1}),
        ("@@anna", set()),
        ("smith", {1}),
        ("%", {2}),
        ("_", {1, 3}),
        ("o%n", set()),
        ("b%d", {2}),
        ("bob%d", {2}),
        ("'", {3}),
        ("o'neil", {3}),
        ("\\", {4}),
        ("k\\s", {4}),
        ("zoë", {4}),
        ("ИВАН", {5}),
        ("ghost", set()),
        ("plain", {6}),
        ("123", {123}),
        ("4567", {123, 4567}),
        ("45", {123}),
        (str(BIG_ID), {BIG_ID}),
        ("99999999999999999999999", set()),
        ("' OR '1'='1", set()),
        ("x'; DROP TABLE bookings; --", set()),
        ("  anna  ", {1}),
    ],
)
async def test_search_semantics(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], named: None, q: str, users: set[int]
) -> None:
    assert await _found(client, viewer_headers, q) == users


async def test_search_answers_briefs_newest_first(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], named: None
) -> None:
    response = await client.get("/api/users/search?q=o&limit=3", headers=viewer_headers)
    assert response.json()["items"] == [
        {"user_id": 4567, "username": "someone", "first_name": "Else"},
        {"user_id": 4, "username": "back\\slash", "first_name": "Zoë"},
        {"user_id": 3, "username": "under_score", "first_name": "O'Neil"},
    ]
    blank = await client.get("/api/users/search?q=", headers=viewer_headers)
    assert [u["user_id"] for u in blank.json()["items"]][:2] == [BIG_ID, 4567]


@pytest.mark.parametrize("q", ["o", "n", "_", "4567", "@anna", "zz"])
@pytest.mark.parametrize("filters", ["", "&status=pending", "&stream=JS-1"])
async def test_pages_agree_whichever_index_answers_them(
    client: httpx.AsyncClient,
    viewer_headers: dict[str, str],
    named: None,
    add_bookings: Insert,
    monkeypatch: pytest.MonkeyPatch,
    q: str,
    filters: str,
) -> None:
    """A page within the most recent users is looked for in the first_seen index, any
    other through the trigram indexes: one user at a time through a window of four
    recent users, the pages give the users of one big page, in its order."""
    later = datetime(2024, 6, 2, tzinfo=UTC)
    add_bookings(
        booking_row(3, confirmed=BOOKING_CONFIRMED, course_stream="JS-1", created_at=later,
                    username="under_score", first_name="O'Neil")
    )  # fmt: skip
    search = f"/api/users?search={quote(q)}{filters}"
    whole = (await client.get(f"{search}&limit=500", headers=viewer_headers)).json()
    expected = [user["user_id"] for user in whole["items"]]

    monkeypatch.setattr(queries, "RECENT_USERS", 4)
    paged: list[int] = []
    for offset in range(len(expected) + 1):
        page = await client.get(f"{search}&limit=1&offset={offset}", headers=viewer_headers)
        assert page.json()["total"] == len(expected)
        paged += [user["user_id"] for user in page.json()["items"]]
    assert paged == expected
    if not filters:
        briefs = await client.get(f"/api/users/search?q={quote(q)}&limit=2", headers=viewer_headers)
        assert [user["user_id"] for user in briefs.json()["items"]] == expected[:2]


@pytest.mark.parametrize(
    "query", ["q=" + "a" * 5000, "q=a&limit=0", "q=a&limit=101", "q=a&limit=-3"]
)
async def test_bad_search_input(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], query: str
) -> None:
    response = await client.get(f"/api/users/search?{query}", headers=viewer_headers)
    assert response.status_code == 422
    assert response.json()["error"]
