"""With only `coursedesk serve` running, rows the bot inserts with SQL show in the figures
within seconds: the folder runs inside it (a worker's is tested beside the workers)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from cli_process import run_coursedesk, start_serve
from coursedesk.config import FRESHNESS_BOUND_SECONDS
from coursedesk.web.threaded import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT_SECONDS = 60.0


def _serve(database_url: str, home: Path, port: int) -> subprocess.Popen[bytes]:
    settings = {
        "DATABASE_URL": database_url,
        "COURSEDESK_HOME": str(home),
        "SECRET_KEY": "serve-test-secret-key-0123",
    }
    return start_serve(port, settings)


def _stats(base_url: str, token: str) -> dict[str, int] | None:
    try:
        response = httpx.get(
            f"{base_url}/api/stats", headers={"Authorization": f"Bearer {token}"}, timeout=2
        )
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def test_figures_follow_the_bot_with_only_serve_running(
    capture: str, database_url: str, sync_engine: Engine, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    created = run_coursedesk(database_url, home, "admin", "create-token", "--role", "viewer")
    token = created.stdout.strip()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = _serve(database_url, home, port)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while _stats(base_url, token) is None:
            assert server.poll() is None, "serve stopped"
            assert time.monotonic() < deadline, "serve never answered"
            time.sleep(0.2)
        with sync_engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO bookings (user_id, course_id, confirmed)"
                    " VALUES (901, 1, 2), (902, 1, 1), (903, 1, -1);"
                    "INSERT INTO events (user_id, event_type) VALUES (904, 'start');"
                    "INSERT INTO free_lesson_registrations (user_id) VALUES (905)"
                )
            )
        committed = time.monotonic()
        wanted = {
            "total_users": 5,
            "active_bookings": 2,
            "confirmed_payments": 1,
            "free_lesson_registrations": 1,
        }
        while _stats(base_url, token) != wanted:
            assert time.monotonic() - committed < FRESHNESS_BOUND_SECONDS, _stats(base_url, token)
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
