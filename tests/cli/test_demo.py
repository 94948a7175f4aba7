"""`coursedesk demo` as a person runs it: no settings at all, then stopped by a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def _standin_log_url(demo: subprocess.Popen[str], printed: list[str]) -> str:
    """The stand-in's log, from the lines the demo printed on starting (kept in `printed`)."""
    assert demo.stdout is not None
    for line in demo.stdout:
        printed.append(line)
        found = re.search(r"\((?:what each chat received: )(http://\S+/_control/log)\)", line)
        if found:
            return found.group(1)
    raise AssertionError("the demo did not print the stand-in's address")


def _the_demo_broadcast_links_work(
    base_url: str, demo: subprocess.Popen[str], printed: list[str]
) -> None:
    """The demo's own broadcast reaches the stand-in with a tracked button that leads on."""
    log_url = _standin_log_url(demo, printed)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    photos: list[dict[str, Any]] = []
    while not photos and time.monotonic() < deadline:
        received = httpx.get(log_url, timeout=5).json()["messages"]
        photos = [message for message in received if message["kind"] == "photo"]
        time.sleep(0.3)
    assert photos, "the demo broadcast reached no chat"
    button = photos[0]["buttons"][0][0]
    assert button["url"].startswith(f"{base_url}/r/"), button
    followed = httpx.get(button["url"], timeout=5)
    assert followed.status_code == 302 and followed.headers["location"] == f"{base_url}/"
    assert httpx.get(f"{base_url}/r/forged", timeout=5).status_code == 404


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
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    demo = subprocess.Popen(
        [sys.executable, "-m", "coursedesk", "demo", "--port", str(port), "--users", "50"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    printed: list[str] = []
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(base_url, demo)
        login = httpx.get(f"{base_url}/login", timeout=5)
        assert login.status_code == 200 and 'name="password"' in login.text
        assert (home / "pgdata" / "postmaster.pid").exists()
        assert len(_processes_of(home)) >= 2  # the demo and its worker
        _the_demo_broadcast_links_work(base_url, demo, printed)

        demo.send_signal(signal.SIGTERM)
        output, _ = demo.communicate(timeout=STOP_TIMEOUT_SECONDS)
        output = "".join(printed) + output
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()

    assert demo.returncode == 0, output
    assert "sign in as admin with password" in output
    assert "The analytics capture reads the bot's changes from the WAL." in output
    assert _processes_of(home) == []
    assert not (home / "pgdata" / "postmaster.pid").exists()
