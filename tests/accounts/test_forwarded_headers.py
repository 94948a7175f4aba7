"""`coursedesk serve` believes X-Forwarded-For only from the proxies FORWARDED_ALLOW_IPS
names: behind no proxy, a client cannot pick the address its failed sign-ins count
against."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from cli_process import run_process, start_serve
from coursedesk.web.threaded import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT_SECONDS = 60.0
NONCE = re.compile(r'name="csrf_token" value="([^"]+)"')


def _fail_sign_in(base_url: str, claimed_address: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        form = client.get("/login")
        nonce = NONCE.search(form.text)
        assert nonce, form.text
        refused = client.post(
            "/login",
            data={"username": "nobody", "password": "wrong", "csrf_token": nonce.group(1)},
            headers={"X-Forwarded-For": claimed_address},
        )
        assert refused.status_code == 401


def _addresses(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT address FROM login_attempts ORDER BY id")))


@pytest.mark.parametrize(
    ("allowed", "counted_as"),
    [(None, "127.0.0.1"), ("10.0.0.0/8, 127.0.0.1", "203.0.113.9")],
)
def test_forwarded_for_counts_only_from_a_listed_proxy(
    database_url: str, sync_engine: Engine, tmp_path: Path, allowed: str | None, counted_as: str
) -> None:
    settings = {
        "DATABASE_URL": database_url,
        "COURSEDESK_HOME": str(tmp_path / "home"),
        "SECRET_KEY": "forwarded-test-secret-key",
    }
    if allowed is not None:
        settings["FORWARDED_ALLOW_IPS"] = allowed
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_serve(port, settings)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert server.poll() is None, "serve stopped"
            assert time.monotonic() < deadline, "serve never answered"
            try:
                if httpx.get(f"{base_url}/api/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        _fail_sign_in(base_url, "203.0.113.9")
        assert _addresses(sync_engine) == [counted_as]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_unusable_proxy_list_is_one_line_at_start(database_url: str, tmp_path: Path) -> None:
    finished = run_process(
        "serve",
        env={
            "DATABASE_URL": database_url,
            "COURSEDESK_HOME": str(tmp_path / "home"),
            "FORWARDED_ALLOW_IPS": "127.0.0.1, proxy.local",
        },
    )
    assert finished.returncode != 0
    assert finished.stderr.strip() == (
        "coursedesk: error: FORWARDED_ALLOW_IPS: 'proxy.local' is not an IP address or "
        "network (give addresses or networks, comma-separated, or *)"
    )
    assert "Traceback" not in finished.stderr
