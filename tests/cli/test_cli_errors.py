"""The command line's promise (docs/reference.md §1–2): a wrong setting or argument is one
line on stderr and exit 2, a failure one line and exit 1, never a traceback; each command
run as a real process."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from cli_process import run_process
from coursedesk.web.threaded import free_port

# Any URL that parses: the commands refuse before they connect.
UNUSED_DATABASE = "postgresql://coursedesk@127.0.0.1:9/coursedesk"
SECRET_KEY = "cli-test-secret-key-0123"


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("coursedesk: error: ")
    assert message in result.stderr


@pytest.fixture
def home(tmp_path: Path) -> str:
    return str(tmp_path / "home")


BAD_SETTINGS = [
    (
        {"DATABASE_URL": "postgresql://x:abc/db"},
        "DATABASE_URL: not a usable PostgreSQL URL (Port could not be cast to integer",
    ),
    ({"DATABASE_URL": "postgresql://[::1"}, "DATABASE_URL: not a usable PostgreSQL URL"),
    ({"DATABASE_URL": "postgresql://u@h:0/db"}, "DATABASE_URL: not a usable PostgreSQL URL"),
    (
        {"DATABASE_URL": UNUSED_DATABASE, "DATABASE_REPLICA_URL": "postgresql://u@h:99999/d"},
        "DATABASE_REPLICA_URL: not a usable PostgreSQL URL (Port out of range",
    ),
    ({"COURSEDESK_HOME": "/dev/null/x"}, "COURSEDESK_HOME: cannot create /dev/null/x"),
]


@pytest.mark.parametrize("command", [("db", "status"), ("serve",), ("demo", "--users", "0")])
@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS)
def test_a_wrong_setting_is_one_line_naming_it_and_exit_2(
    home: str, command: tuple[str, ...], settings: dict[str, str], message: str
) -> None:
    port = ("--port", str(free_port())) if command[0] != "db" else ()
    env = {"COURSEDESK_HOME": home, "SECRET_KEY": SECRET_KEY} | settings
    result = run_process(*command, *port, env=env)
    assert_one_line(result, 2, message)
    assert result.stdout == ""


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("command", [("serve",), ("demo", "--users", "0")])
def test_a_port_in_use_is_one_line_before_anything_starts(
    database_url: str, home: str, taken_port: int, command: tuple[str, ...]
) -> None:
    env = {"DATABASE_URL": database_url, "COURSEDESK_HOME": home, "SECRET_KEY": SECRET_KEY}
    result = run_process(*command, "--port", str(taken_port), env=env)
    assert_one_line(result, 2, f"cannot listen on 127.0.0.1:{taken_port}: Address already in use")
    assert result.stdout == ""


def _broadcasts(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT count(*) FROM message_history")) or 0)


@pytest.mark.parametrize(
    ("arguments", "stdin", "message"),
    [
        (
            ("--text", "hi", "--audience", "stream:" + "x" * 201, "--dry-run"),
            b"",
            "--audience stream: String should have at most 200 characters",
        ),
        (("--text", "hi", "--audience", b"stream:\xff", "--dry-run"), b"", "--audience stream:"),
        (
            ("--text", "-", "--audience", "all"),
            b"hi\0there",
            "--text: a message cannot contain NUL",
        ),
        (("--text", "-", "--audience", "all"), b"hi \xff", "--text -: standard input is not UTF-8"),
    ],
)
def test_bad_broadcast_input_is_one_line_and_exit_2(
    database_url: str,
    home: str,
    sync_engine: Engine,
    arguments: tuple[str | bytes, ...],
    stdin: bytes,
    message: str,
) -> None:
    env = {"DATABASE_URL": database_url, "COURSEDESK_HOME": home}
    result = run_process("broadcast", "send", *arguments, env=env, stdin=stdin)
    assert_one_line(result, 2, message)
    assert result.stdout == ""
    assert _broadcasts(sync_engine) == 0


def test_a_password_that_is_not_utf8_is_one_line_and_exit_2(
    database_url: str, home: str, sync_engine: Engine
) -> None:
    env = {"DATABASE_URL": database_url, "COURSEDESK_HOME": home}
    arguments = ("admin", "create-user", "dave", "--role", "viewer", "--password-stdin")
    result = run_process(*arguments, env=env, stdin=b"\xffpassword123")
    assert_one_line(result, 2, "--password-stdin: standard input is not UTF-8 text")
    with sync_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM staff_users")) == 0


def _main_raising(exception: str) -> list[str]:
    """`python -c …`: the real main, with `db status` raising `exception` inside."""
    code = (
        "from coursedesk.cli import main\n"
        "from coursedesk.db import migrations\n"
        "def broken(engine):\n"
        f"    raise {exception}\n"
        "migrations.status = broken\n"
        "main(['db', 'status'])\n"
    )
    return ["-c", code]


def test_an_unexpected_error_is_one_line_and_exit_1(home: str) -> None:
    env = {"DATABASE_URL": UNUSED_DATABASE, "COURSEDESK_HOME": home}
    result = run_process(env=env, argv=_main_raising("RuntimeError('it broke\\nbadly')"))
    assert result.returncode == 1
    assert result.stderr == "coursedesk: error: unexpected RuntimeError: it broke badly\n"


@pytest.mark.parametrize(("exception", "code"), [("SystemExit(4)", 4), ("KeyboardInterrupt", 130)])
def test_system_exit_and_keyboard_interrupt_keep_their_exit_codes(
    home: str, exception: str, code: int
) -> None:
    env = {"DATABASE_URL": UNUSED_DATABASE, "COURSEDESK_HOME": home}
    result = run_process(env=env, argv=_main_raising(exception))
    assert result.returncode == code
    assert "unexpected" not in result.stderr
