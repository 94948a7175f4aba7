"""`db seed`: deterministic realistic rows, loaded exactly, sequences advanced, refusals."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import Engine, text

from cli_process import run_coursedesk
from coursedesk.db.datagen.copydata import numeric_binary
from coursedesk.db.datagen.plan import HISTORY_DAYS, GenerationPlan
from coursedesk.db.datagen.rows import Dataset, generate_dataset, insert_dataset
from coursedesk.db.datagen.simulation import CHUNK_USERS
from coursedesk.db.datagen.vocabulary import COURSES, EVENT_TYPES
from coursedesk.db.seed import deferred_insert_triggers, seed_database
from coursedesk.errors import Conflict

ANCHOR = datetime(2026, 5, 1, 12, tzinfo=UTC)
SOURCE_QUERIES = {
    "bookings": "SELECT user_id, username, first_name, course_id, course_stream, confirmed, "
    "created_at, referral_code, discount_percent FROM bookings ORDER BY id",
    "events": "SELECT user_id, event_type, created_at, details FROM events ORDER BY id",
    "free_lessons": "SELECT user_id, username, first_name, email, registered_at, "
    "notification_sent, lesson_type, lesson_date FROM free_lesson_registrations ORDER BY id",
}


def _plan(users: int, seed: int = 7) -> GenerationPlan:
    return GenerationPlan(users=users, seed=seed, anchor=ANCHOR)


def _loaded(sync_engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with sync_engine.connect() as connection:
        return {
            name: [tuple(row) for row in connection.execute(text(query))]
            for name, query in SOURCE_QUERIES.items()
        }


def _expected(dataset: Dataset) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "bookings": [tuple(row.values()) for row in dataset.bookings],
        "events": [tuple(row.values()) for row in dataset.events],
        "free_lessons": [tuple(row.values()) for row in dataset.free_lessons],
    }


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate_dataset(_plan(800))


def test_the_same_seed_gives_the_same_rows_and_another_seed_others(dataset: Dataset) -> None:
    assert generate_dataset(_plan(800)) == dataset
    other = generate_dataset(_plan(800, seed=8))
    assert other.bookings != dataset.bookings
    assert {row["user_id"] for row in other.events}.isdisjoint(
        {row["user_id"] for row in dataset.events} - {None}
    )


def test_bookings_cover_statuses_courses_streams_and_referrals(dataset: Dataset) -> None:
    bookings = dataset.bookings
    assert set(Counter(row["confirmed"] for row in bookings)) == {-1, 1, 2}
    courses = {row["course_id"] for row in bookings}
    named = {course["id"] for course in dataset.courses}
    assert named < courses, "one course is booked but has no courses row"
    for course in courses:
        streams = {row["course_stream"] for row in bookings if row["course_id"] == course}
        assert len(streams - {None}) >= 3
    referred = [row for row in bookings if row["referral_code"]]
    assert 0.2 < len(referred) / len(bookings) < 0.4
    assert any(row["discount_percent"] == Decimal("25.00") for row in referred)
    assert any(row["discount_percent"] is None for row in referred)
    assert all(0 <= (row["discount_percent"] or 0) <= 100 for row in bookings)


def test_events_carry_types_anonymous_rows_and_lesson_details(dataset: Dataset) -> None:
    events = dataset.events
    assert {row["event_type"] for row in events} == set(EVENT_TYPES)
    assert 0 < sum(row["user_id"] is None for row in events) < len(events) * 0.05
    attended = [row for row in events if row["event_type"] == "lesson_attended"]
    assert attended
    for row in attended:
        assert row["details"] is not None
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["details"]["lesson_date"])
    registered = {
        (row["user_id"], row["lesson_type"], str(row["lesson_date"]))
        for row in dataset.free_lessons
    }
    matching = sum(
        (row["user_id"], row["details"]["lesson_type"], row["details"]["lesson_date"]) in registered
        for row in attended
        if row["details"]
    )
    assert 0.8 < matching / len(attended) < 1, "most attendances follow a registration"


def test_users_look_like_telegram_users_over_six_growing_months(dataset: Dataset) -> None:
    rows: list[dict[str, Any]] = [*dataset.bookings, *dataset.free_lessons]
    users = {row["user_id"] for row in dataset.events} - {None}
    assert len(users) == 800
    assert any(user > 2**31 for user in users) and any(user < 2**31 for user in users)
    assert any(row["username"] is None for row in rows)
    assert any(row["first_name"] is None for row in rows)
    names: dict[int, set[str]] = {}
    for row in rows:
        if row["username"]:
            names.setdefault(row["user_id"], set()).add(row["username"])
    assert any(len(seen) > 1 for seen in names.values()), "some users changed their username"
    assert any(row["email"] is None for row in dataset.free_lessons)
    assert {row["notification_sent"] for row in dataset.free_lessons} == {True, False}

    start = ANCHOR - timedelta(days=HISTORY_DAYS)
    times = [row["created_at"] for row in dataset.events]
    assert start <= min(times) and max(times) <= ANCHOR
    first_seen = [row["created_at"] for row in dataset.events if row["event_type"] == "/start"]
    middle = start + (ANCHOR - start) / 2
    assert sum(t >= middle for t in first_seen) > 1.3 * sum(t < middle for t in first_seen)


def test_seeding_loads_exactly_the_generated_rows(sync_engine: Engine, dataset: Dataset) -> None:
    result = seed_database(sync_engine, _plan(800))

    assert _loaded(sync_engine) == _expected(dataset)
    assert result.rows == {
        "courses": len([c for c in COURSES if c.name]),
        "bookings": len(dataset.bookings),
        "events": len(dataset.events),
        "free_lesson_registrations": len(dataset.free_lessons),
    }
    with sync_engine.connect() as connection:
        courses = connection.execute(text("SELECT id, name FROM courses ORDER BY id")).all()
        users = connection.scalar(
            text(
                "SELECT count(DISTINCT user_id) FROM (SELECT user_id FROM bookings "
                "UNION ALL SELECT user_id FROM events "
                "UNION ALL SELECT user_id FROM free_lesson_registrations) AS u"
            )
        )
    assert [tuple(row) for row in courses] == [(c["id"], c["name"]) for c in dataset.courses]
    assert users == 800


def test_tests_can_insert_a_small_generated_data_set(sync_engine: Engine) -> None:
    small = generate_dataset(_plan(30))
    with sync_engine.begin() as connection:
        insert_dataset(connection, small)
    assert _loaded(sync_engine) == _expected(small)


def test_sequences_are_advanced_past_the_seeded_ids(sync_engine: Engine) -> None:
    result = seed_database(sync_engine, _plan(100))
    with sync_engine.begin() as connection:
        new_ids = [
            connection.scalar(text(statement))
            for statement in (
                "INSERT INTO bookings (user_id, confirmed) VALUES (1, 2) RETURNING id",
                "INSERT INTO events (user_id, event_type) VALUES (1, 'start') RETURNING id",
                "INSERT INTO free_lesson_registrations (user_id) VALUES (1) RETURNING id",
            )
        ]
    assert new_ids == [
        result.rows["bookings"] + 1,
        result.rows["events"] + 1,
        result.rows["free_lesson_registrations"] + 1,
    ]


def test_a_seeded_table_is_refused_unless_appending(sync_engine: Engine) -> None:
    first = seed_database(sync_engine, _plan(60))
    before = _loaded(sync_engine)

    with pytest.raises(Conflict, match="--append"):
        seed_database(sync_engine, _plan(60, seed=9))
    assert _loaded(sync_engine) == before

    appended = seed_database(sync_engine, _plan(60, seed=9), append=True)
    after = _loaded(sync_engine)
    assert after["events"][: len(before["events"])] == before["events"]
    assert len(after["events"]) == first.rows["events"] + appended.rows["events"]
    with sync_engine.connect() as connection:
        ids = connection.execute(text("SELECT min(id), max(id), count(*) FROM events")).one()
    assert tuple(ids) == (1, len(after["events"]), len(after["events"]))


def test_zero_users_seed_only_the_course_names(sync_engine: Engine) -> None:
    result = seed_database(sync_engine, _plan(0))
    assert result.total_rows == result.rows["courses"] == 5
    assert _loaded(sync_engine) == {"bookings": [], "events": [], "free_lessons": []}


@given(
    st.integers(0, 6).flatmap(
        lambda places: st.decimals(min_value=0, max_value=10**12, places=places)
    )
)
def test_numerics_are_encoded_as_postgresql_encodes_them(value: Decimal) -> None:
    dumper = Transformer().get_dumper(value, PyFormat.BINARY)
    assert numeric_binary(str(value)) == bytes(dumper.dump(value) or b"")


def test_large_plans_generated_in_a_child_process_load_the_same_rows(
    sync_engine: Engine,
) -> None:
    plan = _plan(CHUNK_USERS + 300)
    result = seed_database(sync_engine, plan)
    assert result.users == CHUNK_USERS + 300
    assert _loaded(sync_engine) == _expected(generate_dataset(plan))


def test_deferred_insert_triggers_run_the_rebuild_once(sync_engine: Engine) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text("CREATE TABLE insert_statements (source text)"))
        connection.execute(
            text(
                "CREATE FUNCTION count_insert() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN INSERT INTO insert_statements VALUES ('trigger'); RETURN NULL; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER count_insert AFTER INSERT ON bookings "
                "FOR EACH STATEMENT EXECUTE FUNCTION count_insert()"
            )
        )
    hooks = deferred_insert_triggers("INSERT INTO insert_statements VALUES ('rebuild')")
    seed_database(sync_engine, _plan(CHUNK_USERS + 300), hooks=hooks)

    with sync_engine.begin() as connection:
        assert connection.execute(text("SELECT source FROM insert_statements")).all() == [
            ("rebuild",)
        ]
        enabled = connection.scalar(
            text("SELECT tgenabled FROM pg_trigger WHERE tgname = 'count_insert'")
        )
        connection.execute(text("INSERT INTO bookings (user_id, confirmed) VALUES (1, 1)"))
        after_load = connection.scalar(text("SELECT count(*) FROM insert_statements"))
    assert (enabled, after_load) == ("O", 2)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--users", "-5"], "--users"),
        (["--users", "abc"], "--users"),
        (["--users", "5000000"], "--users"),
        (["--anchor", "last tuesday"], "--anchor"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    database_url: str, tmp_path: Path, sync_engine: Engine, arguments: list[str], complaint: str
) -> None:
    result = run_coursedesk(database_url, tmp_path, "db", "seed", *arguments)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("coursedesk: error:")
    assert complaint in result.stderr
    assert _loaded(sync_engine) == {"bookings": [], "events": [], "free_lessons": []}


def test_an_unmigrated_database_is_refused_in_one_line(
    empty_database_url: str, tmp_path: Path
) -> None:
    result = run_coursedesk(empty_database_url, tmp_path, "db", "seed", "--users", "10")
    assert result.returncode == 1
    assert result.stderr.startswith("coursedesk: error: tables missing: courses, bookings")
    assert result.stderr.count("\n") == 1


def test_seed_command_reports_json_and_refuses_a_second_run(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    arguments = ["db", "seed", "--users", "40", "--seed", "3", "--anchor", "2026-05-01"]
    result = run_coursedesk(database_url, tmp_path, *arguments, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    loaded = _loaded(sync_engine)
    assert report["users"] == 40
    assert report["rows"]["events"] == len(loaded["events"])
    assert report["total_rows"] == sum(map(len, loaded.values())) + 5
    expected = generate_dataset(
        GenerationPlan(users=40, seed=3, anchor=datetime(2026, 5, 1, tzinfo=UTC))
    )
    assert loaded == _expected(expected)

    again = run_coursedesk(database_url, tmp_path, *arguments)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "--append" in again.stderr
    assert _loaded(sync_engine) == loaded


def test_seed_command_says_where_the_time_went(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    result = run_coursedesk(database_url, tmp_path, "db", "seed", "--users", "20")
    assert result.returncode == 0, result.stderr
    assert "20 users seeded" in result.stdout
    seconds = r"\d+\.\d\d s"
    assert re.fullmatch(
        rf"{seconds}, [\d,]+ rows/s \(generate and COPY {seconds}, indexes {seconds}, "
        rf"analytics summaries {seconds}, ANALYZE {seconds}\)",
        result.stdout.strip().splitlines()[-1],
    )
    assert len(_loaded(sync_engine)["bookings"]) > 0
