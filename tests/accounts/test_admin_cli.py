"""`coursedesk admin …` run as a real process against the test database."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

TOKEN_SHAPE = re.compile(r"cd_[A-Za-z0-9_-]{43}")


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


def _actions(engine: Engine) -> list[str]:
    """What was done to staff users and tokens (sign-ins left out)."""
    with engine.connect() as connection:
        return list(
            connection.scalars(
                text("SELECT action FROM audit_log WHERE action !~ '^auth' ORDER BY id")
            )
        )


async def test_a_revoked_token_is_refused_from_then_on(
    run_cli: Any, client: httpx.AsyncClient, sync_engine: Engine
) -> None:
    token = run_cli("admin", "create-token", "--role", "admin", "--name", "laptop").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    listed = run_cli("admin", "list-tokens", "--json")
    [entry] = json.loads(listed.stdout)
    assert (entry["name"], entry["role"], entry["revoked_at"]) == ("laptop", "admin", None)
    assert entry["last_used_at"] is not None

    revoked = run_cli("admin", "revoke-token", str(entry["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"token {entry['id']} (laptop) revoked"
    assert (await client.get("/api/me", headers=headers)).status_code == 401
    again = run_cli("admin", "revoke-token", str(entry["id"]))
    assert again.stdout.strip() == f"token {entry['id']} (laptop) was already revoked"
    assert json.loads(run_cli("admin", "list-tokens", "--json").stdout)[0]["revoked_at"]
    assert _actions(sync_engine) == ["token.create", "token.revoke"]

    missing = run_cli("admin", "revoke-token", "999")
    assert (missing.returncode, missing.stderr) == (1, "coursedesk: error: no token 999\n")
    wrong = run_cli("admin", "revoke-token", "laptop")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1


async def test_a_disabled_user_is_signed_out_and_kept_out_until_enabled(
    run_cli: Any, client: httpx.AsyncClient, login: Any, sync_engine: Engine
) -> None:
    create = ("admin", "create-user", "olga", "--role", "operator", "--password-stdin")
    assert run_cli(*create, stdin="s3cret pass").returncode == 0
    assert (await login(client, "olga", "s3cret pass")).status_code == 303
    assert (await client.get("/api/me")).status_code == 200

    disabled = run_cli("admin", "disable-user", "Olga")
    assert disabled.stdout.strip() == "olga now may not sign in"
    assert (await client.get("/api/me")).status_code == 401
    assert (await login(client, "olga", "s3cret pass")).status_code != 303
    assert run_cli("admin", "disable-user", "olga").stdout.strip() == "olga already may not sign in"
    [listed] = json.loads(run_cli("admin", "list-users", "--json").stdout)
    assert (listed["username"], listed["role"], listed["active"]) == ("olga", "operator", False)

    assert run_cli("admin", "enable-user", "olga").stdout.strip() == "olga now may sign in"
    assert (await login(client, "olga", "s3cret pass")).status_code == 303
    assert _actions(sync_engine) == ["user.create", "user.disable", "user.enable"]
    missing = run_cli("admin", "disable-user", "nobody")
    assert (missing.returncode, missing.stderr) == (1, "coursedesk: error: no user 'nobody'\n")


async def test_a_new_password_signs_the_user_out_and_replaces_the_old_one(
    run_cli: Any, client: httpx.AsyncClient, login: Any, sync_engine: Engine
) -> None:
    create = ("admin", "create-user", "olga", "--role", "viewer", "--password-stdin")
    assert run_cli(*create, stdin="old password").returncode == 0
    assert (await login(client, "olga", "old password")).status_code == 303

    changed = run_cli("admin", "set-password", "olga", "--password-stdin", stdin="new password\n")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "new password set for olga"
    assert (await client.get("/api/me")).status_code == 401
    assert (await login(client, "olga", "old password")).status_code != 303
    assert (await login(client, "olga", "new password")).status_code == 303
    short = run_cli("admin", "set-password", "olga", "--password-stdin", stdin="short")
    assert short.returncode == 2 and "at least 8" in short.stderr
    assert _actions(sync_engine) == ["user.create", "user.password"]
