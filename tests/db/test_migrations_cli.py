"""`coursedesk db` migration commands as a person runs them: a bad revision argument is one
line and exit 2, a database at a revision this code does not know one line and exit 1,
and neither changes anything."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from cli_process import run_coursedesk
from coursedesk.db import migrations

UNKNOWN = "the database is at revision '0099_future', which this code does not know"


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT version_num FROM alembic_version"))


def _one_line(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("coursedesk: error: ")
    assert message in result.stderr


def _head() -> str:
    found = migrations.script_directory().get_current_head()
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("upgrade", "+9"), "Relative revision +9 didn't produce 9 migrations"),
        (("upgrade", "no-such-revision"), "unknown revision 'no-such-revision'"),
        (("downgrade", "+1"), "Relative revision +1 didn't produce 1 migrations"),
        (("downgrade", "--", "-99"), "Relative revision -99 didn't produce 99 migrations"),
        (("downgrade", "-99"), "Relative revision -99 didn't produce 99 migrations"),
        (("downgrade", "base"), "drops every table and row; run again with --force"),
    ],
)
def test_a_bad_revision_is_one_line_and_exit_2(
    database_url: str,
    tmp_path: Path,
    sync_engine: Engine,
    arguments: tuple[str, ...],
    message: str,
) -> None:
    before = _revision(sync_engine)
    result = run_coursedesk(database_url, tmp_path, "db", *arguments)
    _one_line(result, 2, message)
    assert result.stdout == ""
    assert _revision(sync_engine) == before


def test_a_revision_above_the_current_one_is_not_a_downgrade_target(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    head = _head()
    assert run_coursedesk(database_url, tmp_path, "db", "downgrade", "-1").returncode == 0
    below = _revision(sync_engine)
    result = run_coursedesk(database_url, tmp_path, "db", "downgrade", head)
    _one_line(result, 2, f"revision '{head}' is not below the current revision {below}")
    assert _revision(sync_engine) == below


def test_downgrade_takes_a_negative_relative_revision_as_typed(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    result = run_coursedesk(database_url, tmp_path, "db", "downgrade", "-1")
    assert result.returncode == 0, result.stderr
    assert migrations.status(sync_engine).pending == [_head()]
    assert "pending" in result.stdout and _head() in result.stdout


def test_downgrade_to_base_needs_force(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    result = run_coursedesk(database_url, tmp_path, "db", "downgrade", "base", "--force")
    assert result.returncode == 0, result.stderr
    assert _revision(sync_engine) is None
    assert inspect(sync_engine).get_table_names() == ["alembic_version"]


@pytest.mark.parametrize(
    "arguments",
    [
        ("status",),
        ("status", "--json"),
        ("validate",),
        ("upgrade",),
        ("upgrade", "+1"),
        ("downgrade", "-1"),
        ("downgrade", "base", "--force"),
    ],
)
def test_a_database_at_an_unknown_revision_is_one_line_and_exit_1(
    database_url: str, tmp_path: Path, sync_engine: Engine, arguments: tuple[str, ...]
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    result = run_coursedesk(database_url, tmp_path, "db", *arguments)
    _one_line(result, 1, UNKNOWN)
    assert _revision(sync_engine) == "0099_future"
    if arguments == ("status",):
        assert "0099_future (unknown to this code)" in result.stdout
    if arguments == ("status", "--json"):
        shown = json.loads(result.stdout)
        assert (shown["current"], shown["current_known"]) == ("0099_future", False)


def test_verify_reports_an_unknown_revision_as_a_problem(
    database_url: str, tmp_path: Path, sync_engine: Engine
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    result = run_coursedesk(database_url, tmp_path, "db", "verify", "--json")
    assert result.returncode == 1
    assert result.stderr == "coursedesk: error: verification found 1 problem(s)\n"
    [migration_check] = [
        check for check in json.loads(result.stdout)["checks"] if check["name"] == "migrations"
    ]
    assert migration_check["status"] == "problem"
    assert UNKNOWN in migration_check["detail"]
