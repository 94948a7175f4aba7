"""Migrations: up, down and up again, models in step, checksums, status and reset."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from coursedesk.config import load_settings
from coursedesk.db import migrations
from coursedesk.db.engine import create_tool_engine
from coursedesk.db.migrations import UnknownRevision
from coursedesk.db.registry import metadata
from coursedesk.errors import InvalidInput


@pytest.fixture
def empty_engine(empty_database_url: str) -> Engine:
    engine = create_tool_engine(empty_database_url, load_settings(database_url=None))
    yield engine  # type: ignore[misc]
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade(empty_engine: Engine) -> None:
    first = migrations.upgrade(empty_engine)
    assert first.is_current and first.current == first.head
    assert {"bookings", "events", "free_lesson_registrations", "message_recipients"} <= _tables(
        empty_engine
    )

    down = migrations.downgrade(empty_engine, "base", to_base=True)
    assert down.current is None and down.pending == down.applied + down.pending
    assert _tables(empty_engine) == {"alembic_version"}

    again = migrations.upgrade(empty_engine)
    assert again.is_current
    assert migrations.validate(empty_engine) == []


def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata())
    assert differences == []


def test_status_lists_pending_before_upgrade(empty_engine: Engine) -> None:
    before = migrations.status(empty_engine)
    assert before.current is None
    assert before.pending and before.pending[-1] == before.head
    assert not before.is_current


def test_validate_detects_an_edited_migration(
    empty_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations.upgrade(empty_engine)
    assert migrations.validate(empty_engine) == []

    copy = tmp_path / "alembic"
    shutil.copytree(migrations.SCRIPT_LOCATION, copy)
    head = migrations.status(empty_engine).head
    [edited] = [path for path in (copy / "versions").glob("*.py") if head in path.read_text()]
    edited.write_text(edited.read_text() + "\n# edited after it was applied\n")
    monkeypatch.setattr(migrations, "SCRIPT_LOCATION", copy)

    problems = migrations.validate(empty_engine)
    assert [(p.revision, p.problem) for p in problems] == [
        (head, "file edited after it was applied")
    ]


def test_unknown_revision_is_refused(empty_engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="unknown revision"):
        migrations.upgrade(empty_engine, "no-such-revision")
    assert migrations.status(empty_engine).current is None


@pytest.mark.parametrize(
    ("revision", "complaint"),
    [
        ("+1", "Relative revision +1 didn't produce 1 migrations"),
        ("-9", "Relative revision -9 didn't produce 9 migrations"),
        ("head", "is not below the current revision"),
        ("no-such-revision", "unknown revision"),
    ],
)
def test_an_impossible_downgrade_is_refused_and_changes_nothing(
    empty_engine: Engine, revision: str, complaint: str
) -> None:
    first, *_ = migrations.status(empty_engine).pending
    migrations.upgrade(empty_engine, first)
    with pytest.raises(InvalidInput, match=re.escape(complaint)):
        migrations.downgrade(empty_engine, revision)
    assert migrations.status(empty_engine).current == first


def test_an_impossible_upgrade_is_refused(empty_engine: Engine) -> None:
    beyond = len(migrations.status(empty_engine).pending) + 1
    with pytest.raises(
        InvalidInput, match=re.escape(f"Relative revision +{beyond} didn't produce {beyond}")
    ):
        migrations.upgrade(empty_engine, f"+{beyond}")
    assert migrations.status(empty_engine).current is None


def test_downgrading_to_base_takes_to_base(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    steps = len(migrations.status(empty_engine).applied)
    for revision in ("base", f"-{steps}"):
        with pytest.raises(InvalidInput, match="drops every table and row"):
            migrations.downgrade(empty_engine, revision)
        assert migrations.status(empty_engine).is_current
    assert migrations.downgrade(empty_engine, "-1").pending != []
    assert migrations.downgrade(empty_engine, f"-{steps - 1}", to_base=True).current is None


def _set_revision(engine: Engine, *revisions: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        for revision in revisions:
            connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:revision)"),
                {"revision": revision},
            )


@pytest.mark.parametrize("revisions", [("0099_future",), ("0001_initial", "0099_future")])
def test_a_revision_this_code_does_not_know_is_reported_not_raised(
    empty_engine: Engine, revisions: tuple[str, ...]
) -> None:
    migrations.upgrade(empty_engine)
    _set_revision(empty_engine, *revisions)

    status = migrations.status(empty_engine)
    assert (status.current, status.current_known, status.is_current) == (
        ", ".join(revisions),
        False,
        False,
    )
    assert (status.pending, status.applied) == ([], [])
    for refused in (
        lambda: migrations.upgrade(empty_engine),
        lambda: migrations.downgrade(empty_engine, "-1"),
        lambda: migrations.validate(empty_engine),
    ):
        with pytest.raises(UnknownRevision, match="which this code does not know"):
            refused()
    assert migrations.status(empty_engine).current == ", ".join(revisions)


def test_reset_drops_data_and_migrates_again(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(text("INSERT INTO bookings (user_id, confirmed) VALUES (1, 2)"))
    status = migrations.reset(empty_engine)
    assert status.is_current
    with empty_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM bookings")) == 0


def test_validate_accepts_the_checksum_of_an_earlier_equivalent_text(
    empty_engine: Engine,
) -> None:
    """0002 once generated its SQL itself; databases migrated with that text recorded its
    checksum, which the migration declares equivalent to the frozen SQL it applies now."""
    migrations.upgrade(empty_engine)
    earlier = "5715a8f2ee3b5dd835ea7c0656f75971bccf2259b65c8486b47ee376004545f8"
    with empty_engine.begin() as connection:
        connection.execute(
            text("UPDATE migration_checksums SET checksum = :c WHERE revision = '0002_analytics'"),
            {"c": earlier},
        )
    assert migrations.validate(empty_engine) == []
    with empty_engine.begin() as connection:
        connection.execute(
            text("UPDATE migration_checksums SET checksum = 'other' WHERE revision = :r"),
            {"r": "0002_analytics"},
        )
    assert [p.revision for p in migrations.validate(empty_engine)] == ["0002_analytics"]


def test_an_edited_frozen_sql_file_is_an_edited_migration(
    empty_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations.upgrade(empty_engine)
    copy = tmp_path / "alembic"
    shutil.copytree(migrations.SCRIPT_LOCATION, copy)
    frozen = copy / "versions" / "0002_analytics_triggers.sql"
    frozen.write_text(frozen.read_text() + "\n-- edited after it was applied\n")
    monkeypatch.setattr(migrations, "SCRIPT_LOCATION", copy)
    problems = migrations.validate(empty_engine)
    assert [(p.revision, p.problem) for p in problems] == [
        ("0002_analytics", "file edited after it was applied")
    ]
