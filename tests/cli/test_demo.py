"""`coursedesk demo` as a person runs it: no settings at all, then stopped by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from coursedesk.web.threaded import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 60.0


def _wait_until_healthy(base_url: str, demo: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert demo.poll() is None, demo.communicate()[0]
        try:
            if httpx.get(f"{base_url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("the demo did not answer /api/health in time")


def _processes_of(home: Path) -> list[int]:
    """The processes whose environment names this COURSEDESK_HOME (demo and worker)."""
    marker = f"COURSEDESK_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find leftover processes")
def test_demo_serves_with_no_settings_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "COURSEDESK_", "SECRET_KEY", "TELEGRAM_", "REDIS_"))
    }
    env["COURSEDESK_HOME"] = str(home)
    demo = subprocess.Popen(
        [sys.executable, "-m", "coursedesk", "demo", "--port", str(port), "--users", "50"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(base_url, demo)
        login = httpx.get(f"{base_url}/login", timeout=5)
        assert login.status_code == 200 and 'name="password"' in login.text
        assert (home / "pgdata" / "postmaster.pid").exists()
        assert len(_processes_of(home)) >= 2  # the demo and its worker

        demo.send_signal(signal.SIGTERM)
        output, _ = demo.communicate(timeout=STOP_TIMEOUT_SECONDS)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()

    assert demo.returncode == 0, output
    assert "sign in as admin with password" in output
    assert _processes_of(home) == []
    assert not (home / "pgdata" / "postmaster.pid").exists()
