"""`db verify`: a sound database passes; each kind of damage is named, and fails the command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text

from cli_process import run_coursedesk
from coursedesk.analytics.folding import fold_pending
from coursedesk.analytics.wal_capture import capture_mode
from coursedesk.config import load_settings
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.datagen.rows import event_row
from coursedesk.db.engine import create_tool_engine
from coursedesk.db.seed import seed_database
from coursedesk.db.verify import VerifyReport, verify
from coursedesk.db.verify_sql import Status
from coursedesk.sources.models import Event


def _execute(sync_engine: Engine, *statements: str) -> None:
    with sync_engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def _findings(report: VerifyReport, status: Status) -> list[tuple[str, str]]:
    return [(check.name, check.detail) for check in report.checks if check.status is status]


def _add_broadcast(sync_engine: Engine, *user_ids: int) -> None:
    _execute(
        sync_engine,
        "INSERT INTO message_history (message_text, recipient_type, audience) "
        """VALUES ('hi', 'group', '{"type": "all"}')""",
        *(
            "INSERT INTO message_recipients (message_id, user_id) "
            f"SELECT max(id), {user_id} FROM message_history"
            for user_id in user_ids
        ),
    )


def test_a_migrated_and_a_seeded_database_pass(sync_engine: Engine) -> None:
    fresh = verify(sync_engine)
    assert fresh.ok, fresh.problems
    assert fresh.warnings == []
    assert {check.name for check in fresh.checks} >= {
        "migrations",
        "migration checksums",
        "tables",
        "columns",
        "indexes",
        "constraints",
        "disabled triggers",
        "id sequences",
        "recipients without a message",
        "delivery figures",
    }

    seed_database(
        sync_engine, GenerationPlan(users=300, seed=1, anchor=datetime(2026, 5, 1, tzinfo=UTC))
    )
    seeded = verify(sync_engine)
    assert seeded.ok, seeded.problems
    assert seeded.warnings == []


def test_a_dropped_index_and_a_missing_table_are_problems(sync_engine: Engine) -> None:
    _execute(sync_engine, "DROP INDEX ix_events_created_at", "DROP TABLE telegram_updates")
    problems = _findings(verify(sync_engine), Status.problem)
    assert ("indexes", "index ix_events_created_at on events is missing") in problems
    assert ("tables", "table telegram_updates is missing") in problems
    assert len(problems) == 2


def test_a_changed_column_is_a_problem(sync_engine: Engine) -> None:
    _execute(
        sync_engine,
        "ALTER TABLE login_attempts ALTER COLUMN address TYPE varchar(40)",
        "ALTER TABLE login_attempts ALTER COLUMN username DROP NOT NULL",
    )
    assert _findings(verify(sync_engine), Status.problem) == [
        ("columns", "column login_attempts.username should be NOT NULL"),
        ("columns", "column login_attempts.address is character varying(40), expected text"),
    ]


def test_an_orphaned_recipient_is_a_problem(sync_engine: Engine) -> None:
    _add_broadcast(sync_engine, 11)
    with sync_engine.begin() as connection:
        connection.execute(text("INSERT INTO bot_users (user_id) VALUES (11)"))
        # Replica mode skips the foreign key's cascade: the way rows get orphaned.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text("DELETE FROM message_history"))
    problems = _findings(verify(sync_engine), Status.problem)
    orphaned = "1 message_recipients rows point to no message_history row"
    assert problems == [("recipients without a message", orphaned)]


def test_an_unvalidated_foreign_key_and_a_disabled_trigger_are_problems(
    sync_engine: Engine,
) -> None:
    _execute(
        sync_engine,
        "ALTER TABLE web_sessions DROP CONSTRAINT fk_web_sessions_user_id_staff_users",
        "ALTER TABLE web_sessions ADD CONSTRAINT fk_web_sessions_user_id_staff_users "
        "FOREIGN KEY (user_id) REFERENCES staff_users (id) ON DELETE CASCADE NOT VALID",
        "ALTER TABLE bookings DISABLE TRIGGER bookings_audit",
    )
    problems = _findings(verify(sync_engine), Status.problem)
    assert (
        "constraints",
        "constraint fk_web_sessions_user_id_staff_users on web_sessions is not validated",
    ) in problems
    assert ("disabled triggers", "trigger bookings.bookings_audit is disabled") in problems
    assert len(problems) == 2


def test_a_sequence_behind_its_rows_is_a_problem(sync_engine: Engine) -> None:
    _execute(sync_engine, "INSERT INTO bookings (id, user_id, confirmed) VALUES (500, 1, 2)")
    assert _findings(verify(sync_engine), Status.problem) == [
        (
            "id sequences",
            "bookings_id_seq would hand out 1, but bookings.id already reaches 500",
        )
    ]


def test_figures_that_disagree_with_recipients_are_a_problem(sync_engine: Engine) -> None:
    _add_broadcast(sync_engine, 11, 12)
    _execute(sync_engine, "UPDATE message_history SET successful_deliveries = 2")
    problems = _findings(verify(sync_engine), Status.problem)
    assert [name for name, _ in problems] == ["delivery figures"]


def test_migrations_behind_or_edited_are_problems(sync_engine: Engine) -> None:
    _execute(
        sync_engine,
        "UPDATE migration_checksums SET checksum = 'edited' WHERE revision = '0001_initial'",
    )
    problems = _findings(verify(sync_engine), Status.problem)
    assert problems == [
        ("migration checksums", "0001_initial.py (0001_initial): file edited after it was applied")
    ]


def test_strange_but_harmless_rows_are_warnings(sync_engine: Engine) -> None:
    _add_broadcast(sync_engine, 424242)
    with sync_engine.begin() as connection:
        connection.execute(
            insert(Event),
            [
                event_row(5, "lesson_attended", details={"lesson_type": "python_intro"}),
                event_row(5, "lesson_attended", details={"lesson_type": "a", "lesson_date": "1"}),
            ],
        )
    report = verify(sync_engine)
    assert report.ok
    assert _findings(report, Status.warning) == [
        ("recipients who are not users", "1 recipients are in no source table nor in bot_users"),
        (
            "lesson attendance details",
            "2 lesson_attended events lack a lesson_type or a YYYY-MM-DD lesson_date "
            "(they are left out of lesson conversion)",
        ),
    ]


def test_verify_command_exits_0_then_1_with_one_line(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    sound = run_coursedesk(database_url, tmp_path, "db", "verify")
    assert sound.returncode == 0, sound.stderr
    assert "database verified" in sound.stdout

    _execute(sync_engine, "DROP INDEX ix_bookings_created_at")
    broken = run_coursedesk(database_url, tmp_path, "db", "verify")
    assert broken.returncode == 1
    assert broken.stderr == "coursedesk: error: verification found 1 problem(s)\n"
    assert "index ix_bookings_created_at on bookings is missing" in broken.stdout

    as_json = run_coursedesk(database_url, tmp_path, "db", "verify", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["problems"]) == (False, 1)
    assert {
        "name": "indexes",
        "status": "problem",
        "detail": "index ix_bookings_created_at on bookings is missing",
    } in report["checks"]


@pytest.mark.slow
def test_setup_migrates_seeds_and_verifies_an_empty_database(
    empty_database_url: str, tmp_path: Path
) -> None:
    first = run_coursedesk(empty_database_url, tmp_path, "db", "setup", "--users", "50")
    assert first.returncode == 0, first.stderr
    assert "database verified" in first.stdout
    engine = create_tool_engine(empty_database_url, load_settings(database_url=None))
    try:
        with engine.connect() as connection:
            level = connection.scalar(text("SHOW wal_level"))
            mode = capture_mode(connection)
    finally:
        engine.dispose()
    # A new database reads the bot's changes from the WAL where the server allows it.
    if level == "logical":
        assert mode == "wal"
        assert "The analytics capture reads the bot's changes from the WAL." in first.stdout
    else:
        assert mode == "triggers"
        assert f"stays with triggers: the server runs with wal_level = {level}" in first.stdout

    again = run_coursedesk(empty_database_url, tmp_path, "db", "setup", "--users", "50")
    assert again.returncode == 0, again.stderr
    assert "seeding skipped" in again.stdout

    counted = run_coursedesk(empty_database_url, tmp_path, "db", "schema", "--json")
    tables = {table["name"]: table for table in json.loads(counted.stdout)["tables"]}
    assert tables["events"]["row_estimate"] > 50


def test_drift_in_a_summary_is_named(sync_engine: Engine) -> None:
    seed_database(
        sync_engine, GenerationPlan(users=200, seed=3, anchor=datetime(2026, 5, 1, tzinfo=UTC))
    )
    _execute(
        sync_engine,
        "UPDATE course_figures SET confirmed = confirmed + 1"
        " WHERE course_id = (SELECT min(course_id) FROM course_figures)",
    )
    [(name, detail)] = _findings(verify(sync_engine), Status.problem)
    assert name == "analytics summaries"
    assert detail.startswith("course_figures differs from the source tables: ")
    assert "1 expected rows missing or different, 1 rows not expected" in detail


def test_a_searched_name_that_differs_from_the_summary_is_named(sync_engine: Engine) -> None:
    _execute(
        sync_engine,
        "INSERT INTO bookings (user_id, username, course_id, confirmed) VALUES (80, 'ann', 3, 1)",
    )
    fold_pending(sync_engine)
    _execute(sync_engine, "UPDATE user_names SET username = 'bob' WHERE user_id = 80")
    [(name, detail)] = _findings(verify(sync_engine), Status.problem)
    assert name == "analytics summaries"
    assert detail.startswith("user_names differs from the source tables: ")
    assert "(80,ann,)" in detail and "(80,bob,)" in detail


def test_a_write_that_skipped_the_capture_is_found(sync_engine: Engine) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            text("INSERT INTO bookings (user_id, course_id, confirmed) VALUES (77, 3, 2)")
        )
    problems = _findings(verify(sync_engine), Status.problem)
    tables = [detail.split(" ", 1)[0] for name, detail in problems]
    assert {name for name, _ in problems} == {"analytics summaries"}
    assert tables[0] == "user_summaries"
    assert {"course_figures", "course_members", "activity_buckets"} <= set(tables)


def test_changes_not_yet_folded_are_no_drift(sync_engine: Engine) -> None:
    _execute(
        sync_engine,
        "INSERT INTO bookings (user_id, course_id, confirmed) VALUES (78, 3, 2)",
        "UPDATE bookings SET confirmed = 1 WHERE user_id = 78",
    )
    report = verify(sync_engine)
    assert report.ok, report.problems
    # verify folds in a transaction of its own that it rolls back.
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM analytics_changes")) == 3


def test_rebuild_summaries_mends_drift(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    _execute(sync_engine, "INSERT INTO events (user_id, event_type) VALUES (79, 'start')")
    fold_pending(sync_engine)
    _execute(sync_engine, "UPDATE user_summaries SET events_count = 5")
    assert not verify(sync_engine).ok
    rebuilt = run_coursedesk(database_url, tmp_path, "db", "rebuild-summaries")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "analytics summaries rebuilt" in rebuilt.stdout
    assert verify(sync_engine).ok


def test_the_capture_command_switches_where_the_server_can_and_says_why_where_not(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    with sync_engine.connect() as connection:
        level = connection.scalar(text("SHOW wal_level"))
    shown = run_coursedesk(database_url, tmp_path, "db", "capture")
    assert shown.returncode == 0, shown.stderr
    assert "reads the bot's changes from: triggers" in shown.stdout
    # Where the server could read the WAL, it says so; elsewhere, why it cannot.
    assert ("`coursedesk db capture wal` takes" in shown.stdout) == (level == "logical")
    assert ("not possible here: the server runs with wal_level" in shown.stdout) == (
        level != "logical"
    )
    switched = run_coursedesk(database_url, tmp_path, "db", "capture", "wal")
    if level != "logical":  # the second server of CI runs with wal_level = replica
        assert switched.returncode == 1
        assert switched.stderr == (
            f"coursedesk: error: the server runs with wal_level = {level}: reading the "
            "changes from the WAL needs wal_level = logical (postgresql.conf, then a "
            "restart of the server)\n"
        )
        assert verify(sync_engine).ok  # nothing changed
        return
    assert switched.returncode == 0, switched.stderr
    assert "reads from wal; summaries rebuilt" in switched.stdout
    shown = run_coursedesk(database_url, tmp_path, "db", "capture")
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout == "the analytics capture reads the bot's changes from: wal\n"
    _execute(sync_engine, "INSERT INTO events (user_id, event_type) VALUES (80, 'start')")
    fold_pending(sync_engine)
    report = verify(sync_engine)
    assert report.ok, report.problems
    wrong = run_coursedesk(database_url, tmp_path, "db", "capture", "wall")
    assert wrong.returncode == 2 and "wall" in wrong.stderr
    back = run_coursedesk(database_url, tmp_path, "db", "capture", "triggers")
    assert back.returncode == 0, back.stderr
    assert verify(sync_engine).ok
