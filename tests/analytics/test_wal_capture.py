"""The capture read from the WAL: the same figures as the triggers give, no trigger on
the bot's tables, every transaction folded exactly once whatever fails between the
slot and the fold, and a lost slot mended by a rebuild."""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import pytest
from analytics_data import BotWriter, assert_summaries_match_a_rebuild, insert_edge_data
from sqlalchemy import Engine, text

from coursedesk.analytics import folding, wal_capture
from coursedesk.analytics.folding import fold_pending, rebuild_summaries, set_capture
from coursedesk.analytics.folding import folding as run_folder
from coursedesk.analytics.pgoutput import ProtocolError
from coursedesk.analytics.wal_capture import Snapshot, make_slot, slot_name
from coursedesk.db.datagen.plan import GenerationPlan
from coursedesk.db.engine import Database, libpq_url
from coursedesk.db.seed import default_anchor, seed_database
from coursedesk.db.verify import verify
from coursedesk.errors import Conflict

USER = 6_200_000_000


def _scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as connection:
        return connection.scalar(text(sql))


def _insert_events(engine: Engine, count: int, user: int = USER) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO events (user_id, event_type)"
                " SELECT :user + n % 50, 'start' FROM generate_series(1, :n) AS n"
            ),
            {"n": count, "user": user},
        )


def _events_counted(engine: Engine) -> object:
    return _scalar(engine, "SELECT coalesce(sum(events), 0) FROM event_type_figures")


@pytest.mark.parametrize(
    ("snapshot", "seen", "unseen"),
    [
        ("100:105:100,103", [5, 99, 101, 102, 104], [100, 103, 105, 106]),
        # Across the 32-bit wrap: xids are read as the full id nearest to xmax.
        (f"{2**32 - 2}:{2**32 + 3}:{2**32 + 1}", [2**32 - 3, 2**32 - 2, 0], [1, 3, 4]),
    ],
)
def test_a_snapshot_sees_what_committed_before_it_and_not_what_ran(
    snapshot: str, seen: list[int], unseen: list[int]
) -> None:
    parsed = Snapshot.parse(snapshot)
    assert [parsed.sees(xid) for xid in seen] == [True] * len(seen)
    assert [parsed.sees(xid) for xid in unseen] == [False] * len(unseen)


def test_the_edge_cases_fold_exactly_and_no_trigger_runs_on_the_bots_tables(
    wal_engine: Engine,
) -> None:
    insert_edge_data(BotWriter(wal_engine))
    assert_summaries_match_a_rebuild(wal_engine)
    triggers = _scalar(
        wal_engine,
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%capture%' AND NOT tgisinternal",
    )
    assert triggers == 0
    # Updates and deletes fold from the old rows the WAL carries.
    bot = BotWriter(wal_engine)
    bot.execute("UPDATE bookings SET confirmed = 1, course_stream = 'PY-9' WHERE confirmed = 2")
    bot.execute("DELETE FROM events WHERE event_type = 'lesson_attended'")
    bot.execute("DELETE FROM free_lesson_registrations")
    assert_summaries_match_a_rebuild(wal_engine)
    assert _scalar(wal_engine, "SELECT count(*) FROM analytics_changes") == 0


def test_a_truncate_read_from_the_wal_rebuilds(wal_engine: Engine) -> None:
    _insert_events(wal_engine, 30)
    fold_pending(wal_engine)
    with wal_engine.begin() as connection:
        connection.execute(text("TRUNCATE events"))
    _insert_events(wal_engine, 4)
    fold_pending(wal_engine)
    assert _events_counted(wal_engine) == 4
    assert_summaries_match_a_rebuild(wal_engine)


def test_a_slot_not_advanced_after_a_commit_gives_its_transactions_again_unfolded_twice(
    wal_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folding, "advance", lambda connection, pull: None)
    _insert_events(wal_engine, 20)
    fold_pending(wal_engine)
    _insert_events(wal_engine, 5)
    fold_pending(wal_engine)  # reads the first 20 again, and skips them
    assert _events_counted(wal_engine) == 25
    monkeypatch.undo()
    fold_pending(wal_engine)
    assert _events_counted(wal_engine) == 25
    assert_summaries_match_a_rebuild(wal_engine)


def test_a_transaction_open_across_batches_is_folded_once_when_it_commits(
    wal_engine: Engine, database_url: str
) -> None:
    with psycopg.connect(libpq_url(database_url)) as open_transaction:
        open_transaction.execute(
            "INSERT INTO events (user_id, event_type) VALUES (%s, 'start')", (USER,)
        )
        _insert_events(wal_engine, 10)
        fold_pending(wal_engine)
        assert _events_counted(wal_engine) == 10
        open_transaction.commit()
    fold_pending(wal_engine)
    assert _events_counted(wal_engine) == 11
    assert_summaries_match_a_rebuild(wal_engine)


def test_a_rebuild_counts_what_its_snapshot_sees_and_the_slot_the_rest(
    wal_engine: Engine, database_url: str
) -> None:
    with psycopg.connect(libpq_url(database_url)) as late:
        late.execute("INSERT INTO events (user_id, event_type) VALUES (%s, 'start')", (USER,))
        _insert_events(wal_engine, 7)
        rebuild_summaries(wal_engine)  # sees the 7, not the open one
        late.commit()
    fold_pending(wal_engine)  # the slot holds all 8; the 7 are skipped
    assert _events_counted(wal_engine) == 8
    assert_summaries_match_a_rebuild(wal_engine)


def test_a_dropped_slot_is_made_again_and_the_summaries_rebuilt(
    wal_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _insert_events(wal_engine, 10)
    with wal_engine.connect() as connection:
        slot = slot_name(connection)
        connection.execute(text("SELECT pg_drop_replication_slot(:slot)"), {"slot": slot})
        connection.commit()
    _insert_events(wal_engine, 3)  # written while no slot exists
    fold_pending(wal_engine)
    assert f"replication slot {slot} is missing" in caplog.text
    assert _events_counted(wal_engine) == 13
    assert _scalar(wal_engine, "SELECT count(*) FROM pg_replication_slots") == 1
    _insert_events(wal_engine, 2)
    fold_pending(wal_engine)
    assert _events_counted(wal_engine) == 15
    assert_summaries_match_a_rebuild(wal_engine)


def test_a_slot_the_server_gave_up_is_made_again(wal_engine: Engine, database_url: str) -> None:
    """Past max_slot_wal_keep_size the server invalidates the slot rather than keep WAL
    for it; the next batch finds it lost and starts over from a rebuild."""
    _insert_events(wal_engine, 10)
    with wal_engine.connect() as connection:
        slot = slot_name(connection)
    status = f"SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot}'"
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        kept = admin.execute("SHOW max_slot_wal_keep_size").fetchone()
        admin.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            deadline = time.monotonic() + 60
            while _scalar(wal_engine, status) != "lost":
                assert time.monotonic() < deadline, "the server never gave the slot up"
                _insert_events(wal_engine, 20_000, user=USER + 1000)
                admin.execute("SELECT pg_switch_wal()")
                admin.execute("CHECKPOINT")
        finally:
            assert kept is not None
            admin.execute(f"ALTER SYSTEM SET max_slot_wal_keep_size = '{kept[0]}'")
            admin.execute("SELECT pg_reload_conf()")
    fold_pending(wal_engine)
    assert _scalar(wal_engine, status) in ("reserved", "extended")
    assert _events_counted(wal_engine) == _scalar(wal_engine, "SELECT count(*) FROM events")
    assert_summaries_match_a_rebuild(wal_engine)


def test_a_seed_skips_decoding_its_load_and_leaves_the_figures_exact(wal_engine: Engine) -> None:
    seed_database(wal_engine, GenerationPlan(users=300, seed=3, anchor=default_anchor()))
    assert _scalar(wal_engine, "SELECT count(*) FROM pg_replication_slots") == 1
    assert _scalar(wal_engine, "SELECT wal_snapshot IS NOT NULL FROM analytics_fold_state")
    _insert_events(wal_engine, 5)
    fold_pending(wal_engine)
    assert _events_counted(wal_engine) == _scalar(wal_engine, "SELECT count(*) FROM events")
    assert_summaries_match_a_rebuild(wal_engine)


def test_switching_back_and_forth_keeps_every_write_and_verify_follows(
    wal_engine: Engine,
) -> None:
    report = verify(wal_engine)
    assert report.problems == [], [check.detail for check in report.problems]
    _insert_events(wal_engine, 6)
    assert set_capture(wal_engine, "triggers")
    assert not set_capture(wal_engine, "triggers")
    assert _scalar(wal_engine, "SELECT count(*) FROM pg_replication_slots") == 0
    _insert_events(wal_engine, 4)
    fold_pending(wal_engine)
    assert _events_counted(wal_engine) == 10
    report = verify(wal_engine)
    assert report.problems == [], [check.detail for check in report.problems]
    assert set_capture(wal_engine, "wal")
    _insert_events(wal_engine, 1)
    fold_pending(wal_engine)
    assert _events_counted(wal_engine) == 11
    assert_summaries_match_a_rebuild(wal_engine)


def test_verify_names_a_missing_slot_and_planted_drift(wal_engine: Engine) -> None:
    _insert_events(wal_engine, 3)
    fold_pending(wal_engine)
    with wal_engine.begin() as connection:
        connection.execute(text("UPDATE event_type_figures SET events = events + 1"))
    details = [check.detail for check in verify(wal_engine).problems]
    assert any("event_type_figures" in detail for detail in details), details
    with wal_engine.connect() as connection:
        connection.execute(
            text("SELECT pg_drop_replication_slot(:slot)"), {"slot": slot_name(connection)}
        )
        connection.execute(text("ALTER TABLE events REPLICA IDENTITY DEFAULT"))
        connection.commit()
    details = [check.detail for check in verify(wal_engine).problems]
    assert any("is missing" in detail for detail in details), details
    assert any("REPLICA IDENTITY FULL" in detail for detail in details), details


async def test_the_folder_reads_the_wal_and_the_lag_shows_it(
    wal_engine: Engine, database: Database
) -> None:
    async with run_folder(database.primary, name="test", interval=0.05):
        _insert_events(wal_engine, 40)
        deadline = time.monotonic() + 20
        while _events_counted(wal_engine) != 40:
            assert time.monotonic() < deadline, "the folder never folded the WAL"
            await asyncio.sleep(0.05)
        lag = _scalar(
            wal_engine,
            "SELECT extract(epoch FROM clock_timestamp() - wal_read_at) FROM analytics_fold_state",
        )
        assert 0 <= float(lag) < 5  # type: ignore[arg-type]
    assert_summaries_match_a_rebuild(wal_engine)


async def test_a_message_that_cannot_be_read_stops_the_folder_and_says_so(
    wal_engine: Engine,
    database: Database,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(folding, "FAILURE_RETRY_SECONDS", 0.1)

    def unreadable(connection: object) -> None:
        raise ProtocolError("a message cut short")

    monkeypatch.setattr(folding, "pull_changes", unreadable)
    _insert_events(wal_engine, 5)
    async with run_folder(database.primary, name="test", interval=0.05):
        deadline = time.monotonic() + 20
        while _scalar(wal_engine, "SELECT error FROM analytics_fold_state") is None:
            assert time.monotonic() < deadline, "the failure was never recorded"
            await asyncio.sleep(0.05)
        health = (await client.get("/api/health")).json()
        assert health["status"] == "degraded"
        assert health["analytics"]["error"] == "a message cut short"
        assert _events_counted(wal_engine) == 0
        monkeypatch.undo()
        while _events_counted(wal_engine) != 5:
            assert time.monotonic() < deadline + 20, "the folder never resumed"
            await asyncio.sleep(0.05)
    assert_summaries_match_a_rebuild(wal_engine)


def test_a_slot_made_but_not_joined_to_a_rebuild_stops_batches_until_one_is(
    wal_engine: Engine,
) -> None:
    """A process that dies between making a slot and the rebuild after it leaves the
    slot unready to count from; a rebuild taken meanwhile records nothing, and the next
    batch starts over."""
    _insert_events(wal_engine, 4)
    fold_pending(wal_engine)
    with wal_engine.connect() as connection:
        connection.execute(
            text("SELECT pg_drop_replication_slot(:slot)"), {"slot": slot_name(connection)}
        )
        connection.commit()
        make_slot(connection)  # the rebuild that should follow never comes
        connection.execute(text("UPDATE analytics_fold_state SET wal_slot_ready = false"))
        connection.commit()
    _insert_events(wal_engine, 3)
    rebuild_summaries(wal_engine)
    assert _scalar(wal_engine, "SELECT wal_snapshot FROM analytics_fold_state") is None
    fold_pending(wal_engine)
    assert _events_counted(wal_engine) == 7
    assert _scalar(wal_engine, "SELECT wal_snapshot IS NOT NULL FROM analytics_fold_state")
    assert_summaries_match_a_rebuild(wal_engine)


def test_a_switch_the_server_cannot_serve_safely_is_refused_and_changes_nothing(
    sync_engine: Engine, database_url: str, logical_wal: None
) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        kept = admin.execute("SHOW max_slot_wal_keep_size").fetchone()
        assert kept is not None
        admin.execute("ALTER SYSTEM SET max_slot_wal_keep_size = -1")
        admin.execute("SELECT pg_reload_conf()")
        try:
            with pytest.raises(Conflict, match="max_slot_wal_keep_size is -1"):
                set_capture(sync_engine, "wal")
        finally:
            admin.execute(f"ALTER SYSTEM SET max_slot_wal_keep_size = '{kept[0]}'")
            admin.execute("SELECT pg_reload_conf()")
    assert _scalar(sync_engine, "SELECT capture FROM analytics_fold_state") == "triggers"
    assert _scalar(sync_engine, "SELECT count(*) FROM pg_replication_slots") == 0
    assert _scalar(sync_engine, "SELECT count(*) FROM pg_publication") == 0


def test_a_slot_left_behind_is_named_by_verify_and_dropped_by_a_switch_to_triggers(
    wal_engine: Engine,
) -> None:
    with wal_engine.connect() as connection:
        connection.execute(text("UPDATE analytics_fold_state SET capture = 'triggers'"))
        connection.commit()
    details = [check.detail for check in verify(wal_engine).problems]
    assert any("is left while the capture uses triggers" in d for d in details), details
    assert not set_capture(wal_engine, "triggers")
    assert _scalar(wal_engine, "SELECT count(*) FROM pg_replication_slots") == 0
    assert _scalar(wal_engine, "SELECT count(*) FROM pg_publication") == 0


async def test_a_change_row_left_in_the_log_shows_in_the_lag_until_it_is_folded(
    wal_engine: Engine, client: httpx.AsyncClient
) -> None:
    # Reading the WAL, nothing writes analytics_changes; a row found there (written by
    # hand, say) is folded by the next batch all the same, and is behind until then.
    fold_pending(wal_engine)
    with wal_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO analytics_changes (captured_at, source, sign, data) VALUES"
                " (now() - interval '1 hour', 'event', 1, jsonb_build_object('id', 1,"
                " 'user_id', 5, 'event_type', 'start', 'created_at', now()))"
            )
        )
    health = (await client.get("/api/health")).json()
    assert health["status"] == "degraded"
    assert 3600 <= health["analytics_lag_seconds"] < 3700
    assert fold_pending(wal_engine) == 1
    health = (await client.get("/api/health")).json()
    assert health["status"] == "ok"
    assert 0 <= health["analytics_lag_seconds"] < 10


def test_a_batch_moves_the_slots_restart_point_up_to_what_it_folded(
    wal_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decoding starts at restart_lsn, which the server moves on only every 15 s under
    # load; a batch finding the slot further behind than the bound writes the record
    # that lets its advance move it (PostgreSQL 16 and later).
    if int(str(_scalar(wal_engine, "SHOW server_version_num"))) < 160000:
        pytest.skip("pg_log_standby_snapshot() came with PostgreSQL 16")
    monkeypatch.setattr(wal_capture, "RESTART_LAG_BOUND", 0)
    fold_pending(wal_engine)
    before = str(_scalar(wal_engine, "SELECT pg_current_wal_lsn()"))
    _insert_events(wal_engine, 500)
    fold_pending(wal_engine)
    with wal_engine.connect() as connection:
        moved = connection.scalar(
            text(
                "SELECT restart_lsn >= CAST(:before AS pg_lsn) FROM pg_replication_slots"
                " WHERE slot_name = :slot"
            ),
            {"before": before, "slot": slot_name(connection)},
        )
    assert moved is True
    assert _events_counted(wal_engine) == 500
