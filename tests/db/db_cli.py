"""Runs the real `coursedesk` command in a process of its own, against a test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_coursedesk(
    database_url: str, home: Path, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`python -m coursedesk ARGS…` with DATABASE_URL set to `database_url`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "COURSEDESK_", "SECRET_KEY"))
    }
    env |= {"DATABASE_URL": database_url, "COURSEDESK_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "coursedesk", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
