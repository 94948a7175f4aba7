"""The summaries follow every write to the source tables: inserts, updates, deletes,
TRUNCATE, bulk loads, whoever makes them, once the change log is folded."""

from __future__ import annotations

import httpx
from analytics_data import (
    U1,
    U2,
    U3,
    U4,
    U5,
    BotWriter,
    EdgeData,
    assert_summaries_match_a_rebuild,
    at,
    summary_snapshot,
)
from sqlalchemy import text

from coursedesk.db.datagen.rows import booking_row, event_row
from coursedesk.db.seed import SUMMARY_REBUILD_SQL, deferred_insert_triggers


async def _get(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> dict:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


async def test_rows_inserted_by_sql_show_once_folded(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter
) -> None:
    assert (await _get(client, "/api/stats", viewer_headers))["total_users"] == 0
    bot.execute(
        "INSERT INTO bookings (user_id, username, course_id, confirmed) VALUES (:u, 'fresh', 5, 2)",
        u=U1,
    )
    bot.execute(
        "INSERT INTO events (user_id, event_type) VALUES (NULL, 'ping'), (:u, 'ping')", u=U2
    )
    stats = await _get(client, "/api/stats", viewer_headers)
    assert stats == {
        "total_users": 2,
        "active_bookings": 1,
        "confirmed_payments": 1,
        "free_lesson_registrations": 0,
    }
    today = await _get(client, "/api/stats/daily?days=1", viewer_headers)
    assert [(d["new_users"], d["bookings"], d["events"]) for d in today["items"]] == [(2, 1, 2)]
    user = await _get(client, f"/api/users/{U1}", viewer_headers)
    assert (user["username"], user["status"]) == ("fresh", "confirmed")


async def test_updates_change_status_stream_and_counters(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter, edge_data: EdgeData
) -> None:
    # U1's confirmed booking (stream PY-2) is cancelled by hand: the pending PY-1 one is
    # now their latest non-cancelled booking.
    bot.execute("UPDATE bookings SET confirmed = -1 WHERE id = :id", id=edge_data.bookings[1])
    user = await _get(client, f"/api/users/{U1}", viewer_headers)
    assert (user["status"], user["course_stream"]) == ("pending", "PY-1")
    courses = (await _get(client, "/api/courses", viewer_headers))["items"]
    assert (courses[0]["confirmed"], courses[0]["pending"], courses[0]["cancelled"]) == (0, 1, 1)
    stats = await _get(client, "/api/stats", viewer_headers)
    assert (stats["active_bookings"], stats["confirmed_payments"]) == (3, 1)
    assert_summaries_match_a_rebuild(bot.engine)


async def test_moving_rows_between_users(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter, edge_data: EdgeData
) -> None:
    newcomer = 8_000_000_000
    bot.execute("UPDATE events SET user_id = :new WHERE user_id = :old", new=newcomer, old=U2)
    stats = await _get(client, "/api/stats", viewer_headers)
    assert stats["total_users"] == 6
    missing = await client.get(f"/api/users/{U2}", headers=viewer_headers)
    assert missing.status_code == 404
    moved = await _get(client, f"/api/users/{newcomer}", viewer_headers)
    assert (moved["events_count"], moved["first_seen"]) == (2, "2024-03-11T18:10:00+00:00")
    assert_summaries_match_a_rebuild(bot.engine)


async def test_deletes_remove_users_and_groups(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter, edge_data: EdgeData
) -> None:
    bot.execute("DELETE FROM bookings WHERE user_id = :u", u=U3)
    bot.execute("DELETE FROM events WHERE user_id = :u AND event_type = 'lesson_attended'"
                " AND details ->> 'lesson_type' = 'python'", u=U5)  # fmt: skip
    stats = await _get(client, "/api/stats", viewer_headers)
    assert (stats["total_users"], stats["active_bookings"]) == (5, 4)
    courses = (await _get(client, "/api/courses", viewer_headers))["items"]
    assert [c["course_id"] for c in courses] == [1, 3]
    conversion = (await _get(client, "/api/free-lessons/conversion", viewer_headers))["items"]
    assert (conversion[0]["attendances"], conversion[0]["conversion_rate"]) == (1, 50.0)
    user = await _get(client, f"/api/users/{U5}", viewer_headers)
    assert (user["events_count"], user["first_seen"]) == (1, "2024-03-16T10:00:00+00:00")
    assert_summaries_match_a_rebuild(bot.engine)


async def test_an_update_that_changes_nothing_read_touches_no_summary(
    bot: BotWriter, edge_data: EdgeData
) -> None:
    with bot.engine.begin() as connection:
        before = summary_snapshot(connection)
    bot.execute("UPDATE free_lesson_registrations SET notification_sent = true")
    bot.execute("UPDATE bookings SET username = username")
    with bot.engine.begin() as connection:
        assert summary_snapshot(connection) == before


async def test_the_searched_names_are_written_only_when_a_name_changes(
    bot: BotWriter, edge_data: EdgeData
) -> None:
    def names() -> dict[int, tuple[str | None, str | None, str]]:
        with bot.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT user_id, username, first_name, xmin::text FROM user_names")
            )
            return {row.user_id: (row.username, row.first_name, row.xmin) for row in rows}

    before = names()
    bot.execute("INSERT INTO events (user_id, event_type) VALUES (:u, 'start')", u=U1)
    bot.execute("UPDATE bookings SET confirmed = 1 WHERE user_id = :u", u=U1)
    assert names() == before  # counts and status changed, no name: no row written

    bot.execute(
        "INSERT INTO bookings (user_id, username, first_name, course_id, confirmed)"
        " VALUES (:u, 'renamed', NULL, 5, 1)",
        u=U1,
    )
    renamed = names()
    assert renamed[U1][0] == "renamed" and renamed[U1][2] != before[U1][2]
    assert {u: row for u, row in renamed.items() if u != U1} == {
        u: row for u, row in before.items() if u != U1
    }

    # A user whose every named row goes keeps a summary, and leaves the names table.
    bot.execute("DELETE FROM bookings WHERE user_id = :u", u=U1)
    bot.execute("DELETE FROM free_lesson_registrations WHERE user_id = :u", u=U1)
    assert U1 not in names()
    assert_summaries_match_a_rebuild(bot.engine)


async def test_truncate_rebuilds(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter, edge_data: EdgeData
) -> None:
    bot.execute("TRUNCATE events")
    stats = await _get(client, "/api/stats", viewer_headers)
    assert stats["total_users"] == 4  # U2 and U5 had only events
    assert (await _get(client, "/api/events/top", viewer_headers))["items"] == []
    user = await _get(client, f"/api/users/{U1}", viewer_headers)
    assert (user["events_count"], user["last_seen"]) == (0, "2024-03-12T10:00:00+00:00")


async def test_a_bulk_load_skips_the_capture_and_rebuilds_once(
    client: httpx.AsyncClient, viewer_headers: dict[str, str], bot: BotWriter
) -> None:
    """What `db seed` does around its COPY: the capture off for the load, one rebuild."""
    hooks = deferred_insert_triggers(SUMMARY_REBUILD_SQL)
    assert hooks.before is not None and hooks.after is not None
    with bot.engine.begin() as connection:
        hooks.before(connection)
        disabled = connection.scalar(
            text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%_capture_insert'"
                 " AND tgenabled = 'D'")
        )  # fmt: skip
        assert disabled == 3
        connection.execute(
            text("INSERT INTO events (user_id, event_type, created_at)"
                 " SELECT n, 'start', :at FROM generate_series(1, 500) AS n"),
            {"at": at("2024-01-01 00:00")},
        )  # fmt: skip
        assert connection.scalar(text("SELECT count(*) FROM user_summaries")) == 0
        assert connection.scalar(text("SELECT count(*) FROM analytics_changes")) == 0
        hooks.after(connection)
    stats = await _get(client, "/api/stats", viewer_headers)
    assert stats["total_users"] == 500
    bot.events(event_row(501, "start"))
    assert (await _get(client, "/api/stats", viewer_headers))["total_users"] == 501


async def test_rebuild_matches_incremental_upkeep_on_edge_data(
    bot: BotWriter, edge_data: EdgeData
) -> None:
    bot.bookings(booking_row(U4, confirmed=-1, course_id=None, course_stream="NONE-1"))
    assert_summaries_match_a_rebuild(bot.engine)
