"""The folder: one process at a time folds, a killed one loses and repeats nothing, a row
that cannot be folded stops it loudly, and how far behind the figures are is visible."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from analytics_data import assert_summaries_match_a_rebuild
from sqlalchemy import Engine, text

from coursedesk.analytics import folding
from coursedesk.analytics.folding import Folder, fold_pending
from coursedesk.analytics.folding import folding as run_folder
from coursedesk.analytics.wal_capture import capture_state
from coursedesk.db.engine import Database, libpq_url
from page_text import text_of

pytestmark = pytest.mark.slow

EVENTS = 60_000
# A bookings change row without a user: the capture never writes one (bookings.user_id is
# NOT NULL), but a row written by hand, or by a bot that dropped that constraint, would be.
POISON = (
    "INSERT INTO analytics_changes (source, sign, data)"
    """ VALUES ('booking', 1, '{"id": 1, "confirmed": 2, "created_at": "2026-01-01T10:00:00Z"}')"""
)


async def _system_says(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """The text of the system page's analytics figures section."""
    page = await client.get("/system", headers=headers)
    assert page.status_code == 200
    section = page.text.split('id="analytics"', 1)[1].split("</section>", 1)[0]
    return text_of(section)


def _scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as connection:
        return connection.scalar(text(sql))


def _insert_events(engine: Engine, count: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO events (user_id, event_type)"
                " SELECT 7000000000 + n % 5000, 'start' FROM generate_series(1, :n) AS n"
            ),
            {"n": count},
        )


async def test_one_folder_at_a_time_and_the_next_takes_over(
    database: Database, sync_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folding, "LEADERSHIP_RETRY_SECONDS", 0.1)
    first = Folder(database.primary, name="first", interval=0.05)
    second = Folder(database.primary, name="second", interval=0.05)
    tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        await _until(lambda: first.leading or second.leading, "a folder to lead")
        await asyncio.sleep(0.3)
        assert [first.leading, second.leading].count(True) == 1
        leader, standby = (0, 1) if first.leading else (1, 0)
        _insert_events(sync_engine, 100)
        await _until(
            lambda: _scalar(sync_engine, "SELECT count(*) FROM analytics_changes") == 0,
            "the leader to fold",
        )
        tasks[leader].cancel()
        await _until(lambda: (first, second)[standby].leading, "the standby to take over")
        _insert_events(sync_engine, 100)
        await _until(
            lambda: _scalar(sync_engine, "SELECT count(*) FROM analytics_changes") == 0,
            "the new leader to fold",
        )
        folder = _scalar(sync_engine, "SELECT folder FROM analytics_fold_state")
        assert folder == ("first", "second")[standby]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert_summaries_match_a_rebuild(sync_engine)


async def _until(check: object, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


FOLDER_SCRIPT = """
import asyncio, sys
from coursedesk.analytics.folding import Folder
from coursedesk.config import load_settings
from coursedesk.db.engine import create_app_engine

engine = create_app_engine(sys.argv[1], load_settings(), application_name="doomed-folder")
asyncio.run(Folder(engine, name="doomed", interval=0.05).run())
"""


def test_a_folder_killed_mid_batch_loses_and_repeats_nothing(
    capture: str, database_url: str, sync_engine: Engine, tmp_path: Path
) -> None:
    _insert_events(sync_engine, EVENTS)
    process = subprocess.Popen(
        [sys.executable, "-c", FOLDER_SCRIPT, database_url],
        env=os.environ | {"COURSEDESK_HOME": str(tmp_path)},
    )
    try:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as observer:
            deadline = time.monotonic() + 60
            while True:
                active = observer.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                    " 'doomed-folder' AND state = 'active' AND query LIKE '%analytics_fold(%'"
                ).fetchone()
                if active and active[0]:
                    break
                assert time.monotonic() < deadline, "the folder never started a batch"
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            # The server ends the dead client's transaction: nothing of the batch stays.
            deadline = time.monotonic() + 60
            while observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'doomed-folder'"
            ).fetchone() != (0,):
                assert time.monotonic() < deadline, "the killed folder's session lingered"
                time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
    left = _scalar(sync_engine, "SELECT count(*) FROM analytics_changes")
    folded_before = _scalar(sync_engine, "SELECT coalesce(sum(events), 0) FROM event_type_figures")
    if capture == "triggers":  # batches of BATCH_ROWS change rows, each whole or not at all
        assert left + folded_before == EVENTS  # type: ignore[operator]
    else:  # from the WAL a batch takes everything its snapshot sees, and the slot keeps it
        assert (left, folded_before in (0, EVENTS)) == (0, True)
    fold_pending(sync_engine)
    assert _scalar(sync_engine, "SELECT events FROM event_type_figures") == EVENTS
    assert_summaries_match_a_rebuild(sync_engine)


async def test_a_row_that_cannot_be_folded_stops_the_folder_and_says_so(
    capture: str,
    database: Database,
    sync_engine: Engine,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(folding, "FAILURE_RETRY_SECONDS", 0.1)
    _insert_events(sync_engine, 10)
    with sync_engine.begin() as connection:
        connection.execute(text(POISON))
    with caplog.at_level(logging.ERROR, logger="coursedesk.analytics.folding"):
        async with run_folder(database.primary, name="test", interval=0.05):
            await _until(
                lambda: _scalar(sync_engine, "SELECT error FROM analytics_fold_state") is not None,
                "the failure to be recorded",
            )
            health = (await client.get("/api/health")).json()
            assert health["status"] == "degraded"
            assert health["analytics"]["status"] == "failing"
            assert health["analytics"]["error"].startswith("23502: ")
            assert "course_members" in health["analytics"]["error"]
            # Nothing was skipped: the rows stay (in the slot, when the capture reads the
            # WAL), the figures wait.
            left = 11 if capture == "triggers" else 1
            assert _scalar(sync_engine, "SELECT count(*) FROM analytics_changes") == left
            assert _scalar(sync_engine, "SELECT count(*) FROM event_type_figures") == 0
            metrics = (await client.get("/metrics", headers=admin_headers)).text
            assert "coursedesk_analytics_fold_failing 1.0" in metrics
            block = await client.get("/dashboard/blocks/freshness", headers=admin_headers)
            assert "updating them fails (23502: " in block.text
            assert 'see <a href="/system#analytics">System</a>' in block.text
            system = await _system_says(client, admin_headers)
            assert "Failing" in system and "Folding fails (last tried " in system
            assert "23502: " in system and "course_members" in system
            assert "tried again every 0.1 s" in system
            assert "Folding process test since" in system
            captured = "From the WAL" if capture == "wal" else "By triggers"
            assert f"Capture {captured}" in system
            assert health["analytics"]["folder_running"] is True
            with sync_engine.begin() as connection:
                connection.execute(
                    text("DELETE FROM analytics_changes WHERE data ->> 'user_id' IS NULL")
                )
            await _until(
                lambda: (
                    _scalar(sync_engine, "SELECT error FROM analytics_fold_state") is None
                    and _scalar(sync_engine, "SELECT sum(events) FROM event_type_figures") == 10
                ),
                "the folder to resume",
            )
    failures = [r.getMessage() for r in caplog.records if "fold failed" in r.getMessage()]
    assert len(failures) == 1, failures
    health = (await client.get("/api/health")).json()
    assert (health["status"], health["analytics"]["error"]) == ("ok", None)
    # The folder has stopped: the lease is free, and the page says who held it last.
    assert health["analytics"]["folder_running"] is False
    system = await _system_says(client, admin_headers)
    assert "Folding process None running now (the last was test" in system
    assert_summaries_match_a_rebuild(sync_engine)


async def test_health_metrics_and_dashboard_say_how_far_behind_the_figures_are(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    health = (await client.get("/api/health")).json()
    assert (health["status"], health["analytics_lag_seconds"]) == ("ok", 0)
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO events (user_id, event_type) VALUES (1, 'start');"
                "UPDATE analytics_changes SET captured_at = now() - interval '15 seconds'"
            )
        )
    health = (await client.get("/api/health")).json()
    assert health["status"] == "degraded"
    assert health["analytics"]["status"] == "behind"
    assert 15 <= health["analytics_lag_seconds"] < 60
    metrics = (await client.get("/metrics", headers=admin_headers)).text
    lag_line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("coursedesk_analytics_lag_seconds ")
    )
    assert 15 <= float(lag_line.split()[1]) < 60
    block = await client.get("/dashboard/blocks/freshness", headers=admin_headers)
    assert block.status_code == 200
    assert "Figures as of" in block.text and "behind the bot" in block.text
    system = await _system_says(client, admin_headers)
    assert "Behind" in system and "s behind the bot" in system
    assert "Folding process None has run yet: start serve, worker or demo" in system
    assert "Capture By triggers" in system
    # Where the server could read the WAL instead, the page says how; elsewhere why not.
    with sync_engine.connect() as connection:
        refused = capture_state(connection).wal_refused
    if refused is None:
        assert "coursedesk db capture wal takes coursedesk's triggers off" in system
    else:
        assert f"is not possible here: {refused}" in system
    fold_pending(sync_engine)
    health = (await client.get("/api/health")).json()
    assert (health["status"], health["analytics_lag_seconds"]) == ("ok", 0)
    block = await client.get("/dashboard/blocks/freshness", headers=admin_headers)
    assert block.text.strip() == ""
    system = await _system_says(client, admin_headers)
    assert "Up to date" in system and "Figures as of Now: every change is folded" in system
    assert "1 change folded in all" in system


async def test_a_folder_that_stops_on_an_error_gives_the_lease_back(
    database: Database, sync_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease is a session lock; the connection holding it must not go back to the
    pool, where another checkout would keep it and no folder could take it again."""
    monkeypatch.setattr(folding, "LEADERSHIP_RETRY_SECONDS", 0.5)
    failed = asyncio.Event()
    real = folding.fold_batch

    async def failing_once(
        connection: Any, batch_rows: int | None = folding.BATCH_ROWS, **options: Any
    ) -> int:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("something unexpected")
        return await real(connection, batch_rows, **options)

    monkeypatch.setattr(folding, "fold_batch", failing_once)
    async with run_folder(database.primary, name="test", interval=0.05):
        await asyncio.wait_for(failed.wait(), 10)
        await asyncio.sleep(0.1)
        # Whatever connection the pool has idle is busy elsewhere now.
        async with database.primary.connect() as elsewhere:
            await elsewhere.execute(text("SELECT 1"))
            _insert_events(sync_engine, 10)
            await _until(
                lambda: _scalar(sync_engine, "SELECT count(*) FROM analytics_changes") == 0,
                "the folder to lead again and fold",
            )
