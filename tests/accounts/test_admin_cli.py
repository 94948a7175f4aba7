"""`coursedesk admin …` run as a real process against the test database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

TOKEN_SHAPE = re.compile(r"cd_[A-Za-z0-9_-]{43}")


@pytest.fixture
def run_cli(database_url: str, tmp_path: Path) -> Any:
    """Run `coursedesk ARGS…` with DATABASE_URL pointing at this test's database."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "COURSEDESK_", "SECRET_KEY"))
    }
    env |= {"DATABASE_URL": database_url, "COURSEDESK_HOME": str(tmp_path / "home")}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coursedesk", *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    return run


async def test_create_token_prints_only_a_working_token(
    run_cli: Any, client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    result = run_cli("admin", "create-token", "--role", "operator", "--name", "ci deploy")
    assert result.returncode == 0, result.stderr
    assert TOKEN_SHAPE.fullmatch(result.stdout.rstrip("\n"))
    assert result.stdout.count("\n") == 1

    me = await client.get("/api/me", headers={"Authorization": f"Bearer {result.stdout.strip()}"})
    assert me.status_code == 200
    assert (me.json()["name"], me.json()["role"]) == ("ci deploy", "operator")
    with sync_engine.connect() as connection:
        stored = connection.execute(text("SELECT token_hash, created_by FROM api_tokens")).one()
        audit = connection.execute(
            text("SELECT actor, after FROM audit_log WHERE action = 'token.create'")
        ).one()
    assert result.stdout.strip() not in stored.token_hash
    assert stored.created_by.startswith("cli:")
    assert audit.actor == stored.created_by
    assert audit.after == {"name": "ci deploy", "role": "operator"}


async def test_create_user_with_password_on_stdin_can_sign_in(
    run_cli: Any, client: httpx.AsyncClient, login: Any, sync_engine: Engine
) -> None:
    result = run_cli(
        "admin",
        "create-user",
        "Olga",
        "--role",
        "viewer",
        "--password-stdin",
        stdin="s3cret pass\n",
    )
    assert result.returncode == 0, result.stderr
    assert "olga" in result.stdout

    assert (await login(client, "olga", "s3cret pass")).status_code == 303
    me = await client.get("/api/me")
    assert (me.json()["name"], me.json()["role"]) == ("olga", "viewer")
    with sync_engine.connect() as connection:
        audit = connection.execute(
            text("SELECT actor, target_type, after FROM audit_log WHERE action = 'user.create'")
        ).one()
    assert audit.actor.startswith("cli:")
    assert audit.target_type == "staff_user"
    assert audit.after == {"username": "olga", "role": "viewer"}


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("create-token", "--role", "root"), None, "'root' is not one of"),
        (("create-user", "bob", "--role", "king", "--password-stdin"), "long enough", "king"),
        (("create-user", "bob", "--role", "admin", "--password-stdin"), "short\n", "at least 8"),
        (("create-user", "bob", "--role", "admin"), None, "--password-stdin"),
        (("create-user", "b o b", "--role", "admin", "--password-stdin"), "long enough", "user"),
        (("create-token", "--role", "admin", "--name", " "), None, "token name"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run_cli: Any, sync_engine: Engine, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    result = run_cli("admin", *args, stdin=stdin)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("coursedesk: error:")
    assert message in result.stderr
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM staff_users")) == 0
        assert connection.scalar(text("SELECT count(*) FROM api_tokens")) == 0


def test_an_existing_user_is_refused_with_exit_1(run_cli: Any, sync_engine: Engine) -> None:
    args = ("admin", "create-user", "bob", "--role", "admin", "--password-stdin")
    assert run_cli(*args, stdin="first password").returncode == 0
    again = run_cli(*args, stdin="second password")
    assert again.returncode == 1
    assert again.stderr.strip() == "coursedesk: error: user 'bob' already exists"
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM audit_log")) == 1
