"""The real `coursedesk` command, run in a process of its own with only the settings a
test gives it (none of the environment's DATABASE_*, REDIS_*, … leak in)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

SETTING_PREFIXES = (
    "DATABASE_",
    "COURSEDESK_",
    "SECRET_KEY",
    "REDIS_",
    "TELEGRAM_",
    "BROADCAST_",
    "FORWARDED_",
)

Completed = subprocess.CompletedProcess[str]
RunCli = Callable[..., Completed]


def clean_environment() -> dict[str, str]:
    """This process's environment without any setting of coursedesk's."""
    return {key: value for key, value in os.environ.items() if not key.startswith(SETTING_PREFIXES)}


def start_serve(port: int, settings: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """`coursedesk serve --port PORT` in a process of its own, with only `settings`."""
    return subprocess.Popen(
        [sys.executable, "-m", "coursedesk", "serve", "--port", str(port)],
        env=clean_environment() | dict(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_process(
    *args: str | bytes,
    env: Mapping[str, str],
    stdin: str | bytes | None = None,
    argv: list[str] | None = None,
    timeout: float = 180,
) -> Completed:
    """`python -m coursedesk ARGS…` (or `python ARGV…`) with the settings in `env`; its
    output decoded as UTF-8, whatever the locale."""
    finished = subprocess.run(
        [sys.executable, *(argv or ["-m", "coursedesk", *args])],
        input=stdin.encode() if isinstance(stdin, str) else stdin or b"",
        capture_output=True,
        env=clean_environment() | {"COLUMNS": "200"} | dict(env),
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        finished.args, finished.returncode, finished.stdout.decode(), finished.stderr.decode()
    )


def run_coursedesk(
    database_url: str, home: Path, *args: str | bytes, stdin: str | bytes | None = None
) -> Completed:
    """The command against the database at `database_url`, with `home` as COURSEDESK_HOME."""
    settings = {"DATABASE_URL": database_url, "COURSEDESK_HOME": str(home)}
    return run_process(*args, env=settings, stdin=stdin)
