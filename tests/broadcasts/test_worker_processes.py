"""Real `coursedesk worker` processes: killed and restarted mid-broadcast, stopped, rate-bound."""

from __future__ import annotations

import signal
from collections import Counter

import httpx
import pytest
from broadcast_helpers import (
    PROCESS_IN_FLIGHT,
    StartProcess,
    add_many_users,
    figures_agree,
    rows,
    scalar,
    send_broadcast,
    wait_for,
)
from media_samples import JPEG, MP4, stream_headers, streamed_multipart, uploaded
from sqlalchemy import Engine, text

from coursedesk.config import FRESHNESS_BOUND_SECONDS
from coursedesk.telegram.standin import BotApiStandin

pytestmark = pytest.mark.slow


def calls_per_second(standin: BotApiStandin) -> Counter[int]:
    return Counter(int(call.at) for call in standin.calls() if call.method == "sendMessage")


def status_of(engine: Engine, message_id: int) -> str:
    return str(scalar(engine, "SELECT status FROM message_history WHERE id = :m", m=message_id))


async def test_workers_killed_and_restarted_lose_nothing(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_process: StartProcess,
) -> None:
    rate = 300
    first, count = 100_001, 3000
    blocked = list(range(first, first + 3000, 150))
    missing = list(range(first + 7, first + 3000, 300))
    standin.update_faults(
        {
            "seed": 11,
            "blocked_chats": blocked,
            "missing_chats": missing,
            "server_error_rate": 0.05,
            "flood_rate": 0.001,
            "flood_retry_after": 1,
            "latency_ms": 5,
            "jitter_ms": 10,
        }
    )
    add_many_users(sync_engine, first, count)
    created = await send_broadcast(client, operator_headers, text="hi", audience={"type": "all"})
    message_id = created["message_id"]
    workers = [start_process(rate) for _ in range(3)]
    kills = 0
    for victim, after in ((0, 500), (1, 1500)):
        await wait_for(lambda n=after: len(standin.received()) >= n, within=60, what="sending")
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        kills += 1
        workers[victim] = start_process(rate)
    await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=90, what="sent")

    deliverable = set(range(first, first + count)) - set(blocked) - set(missing)
    got = Counter(message.chat_id for message in standin.received())
    assert set(got) == deliverable
    duplicates = sum(times - 1 for times in got.values())
    assert duplicates <= kills * PROCESS_IN_FLIGHT
    assert max(calls_per_second(standin).values()) <= rate
    assert (
        scalar(
            sync_engine,
            "SELECT count(*) FROM message_recipients WHERE delivery_status = 'pending'",
        )
        == 0
    )
    figures_agree(sync_engine, message_id)
    statuses = dict(
        rows(
            sync_engine,
            "SELECT delivery_status, count(*) FROM message_recipients GROUP BY 1",
        )
    )
    assert statuses == {"sent": len(deliverable), "failed": len(blocked) + len(missing)}
    marked = {row.user_id for row in rows(sync_engine, "SELECT user_id FROM bot_users")}
    assert marked == set(blocked)


async def test_sigterm_finishes_in_flight_sends_and_exits_cleanly(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_process: StartProcess,
) -> None:
    standin.update_faults({"latency_ms": 20})
    add_many_users(sync_engine, 200_001, 500)
    created = await send_broadcast(client, operator_headers, text="hi", audience={"type": "all"})
    message_id = created["message_id"]
    worker = start_process(100, lease=30)
    await wait_for(lambda: len(standin.received()) >= 100, within=30, what="sending")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    leased = scalar(
        sync_engine,
        "SELECT count(*) FROM message_recipients WHERE lease_owner IS NOT NULL",
    )
    assert leased == 0
    recorded = scalar(
        sync_engine,
        "SELECT count(*) FROM message_recipients WHERE delivery_status = 'sent'",
    )
    assert recorded == len(standin.received())

    start_process(100, lease=30)
    await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=30, what="sent")
    got = Counter(message.chat_id for message in standin.received())
    assert set(got) == set(range(200_001, 200_501)) and set(got.values()) == {1}
    figures_agree(sync_engine, message_id)


async def test_three_workers_together_keep_the_rate(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_process: StartProcess,
) -> None:
    rate = 50
    add_many_users(sync_engine, 300_001, 300)
    workers = [start_process(rate) for _ in range(3)]
    await wait_for(
        lambda: (
            scalar(
                sync_engine,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'coursedesk-worker-listen'",
            )
            == 3
        ),
        within=30,
        what="three workers listening",
    )
    created = await send_broadcast(client, operator_headers, text="hi", audience={"type": "all"})
    await wait_for(
        lambda: status_of(sync_engine, created["message_id"]) == "sent", within=60, what="sent"
    )
    per_second = calls_per_second(standin)
    assert max(per_second.values()) <= rate
    assert sum(per_second.values()) == 300
    assert all(worker.poll() is None for worker in workers)


async def test_figures_follow_the_bot_with_only_a_worker_running(
    capture: str, sync_engine: Engine, start_process: StartProcess
) -> None:
    """No `serve` at all: the worker's folder keeps the summaries within seconds."""
    worker = start_process(rate=50)
    await wait_for(
        lambda: scalar(sync_engine, "SELECT folder FROM analytics_fold_state") is not None,
        within=30,
        what="the worker to take up folding",
    )
    assert str(scalar(sync_engine, "SELECT folder FROM analytics_fold_state")).startswith("worker@")
    with sync_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, course_id, course_stream, confirmed)"
                " VALUES (911, 2, 'W-1', 2), (912, 2, 'W-1', 1);"
                "INSERT INTO events (user_id, event_type) VALUES (913, 'start')"
            )
        )

    def folded() -> bool:
        [figures] = rows(
            sync_engine,
            "SELECT (SELECT count(*) FROM user_summaries WHERE user_id BETWEEN 911 AND 913),"
            " (SELECT unique_users FROM stream_figures WHERE course_stream = 'W-1')",
        )
        return tuple(figures) == (3, 2)

    await wait_for(folded, within=FRESHNESS_BOUND_SECONDS, what="the bot's rows in the figures")
    assert worker.poll() is None


async def test_a_worker_killed_mid_broadcast_leaves_the_file_uploaded_once(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_process: StartProcess,
) -> None:
    """The file_id is in the database, so the worker that takes over the killed one's
    recipients sends it by file_id too: one upload for the whole broadcast."""
    rate = 200
    first, count = 400_001, 1200
    add_many_users(sync_engine, first, count)
    standin.update_faults({"latency_ms": 5, "jitter_ms": 10})
    [photo] = [(await uploaded(client, operator_headers, JPEG, "poster.jpg"))["media_id"]]
    created = await send_broadcast(
        client, operator_headers, text="Autumn", audience={"type": "all"},
        media=[{"media_id": photo}],
    )  # fmt: skip
    message_id = created["message_id"]
    workers = [start_process(rate) for _ in range(2)]
    await wait_for(lambda: len(standin.received()) >= 300, within=60, what="sending")
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(10)
    start_process(rate)
    await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=90, what="sent")

    received = standin.received()
    got = Counter(message.chat_id for message in received)
    assert set(got) == set(range(first, first + count))
    assert sum(times - 1 for times in got.values()) <= PROCESS_IN_FLIGHT
    uploads = [m for m in received if m.files[0].uploaded]
    assert len(uploads) == 1
    assert {m.files[0].file_id for m in received} == {uploads[0].files[0].file_id}
    figures_agree(sync_engine, message_id)


async def test_a_worker_killed_halfway_through_uploading_an_album_leaves_each_file_uploaded_once(
    sync_engine: Engine,
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    standin: BotApiStandin,
    start_process: StartProcess,
) -> None:
    """The worker holding the upload lease is killed while the album's bytes are still on
    their way: Telegram took none of it, the lease runs out, and another worker uploads
    each file once; every chat gets the album once."""
    rate = 100
    first, count = 700_001, 200
    add_many_users(sync_engine, first, count)
    size = 4 * 2**20
    media_ids = []
    for name in ("one.mp4", "two.mp4", "three.mp4"):
        response = await client.post(
            "/api/media",
            content=streamed_multipart(MP4, size, name),
            headers=operator_headers | stream_headers(),
        )
        assert response.status_code == 201, response.text
        media_ids.append(response.json()["media_id"])
    # Twelve MB at 2 MB/s: six seconds in which to kill the uploader.
    standin.update_faults({"upload_bytes_per_second": 2 * 2**20})
    created = await send_broadcast(
        client, operator_headers, text="Recordings", audience={"type": "all"},
        media=[{"media_id": m} for m in media_ids],
    )  # fmt: skip
    message_id = created["message_id"]
    workers = {process.pid: process for process in (start_process(rate), start_process(rate))}

    def uploader() -> str | None:
        owner = scalar(
            sync_engine,
            "SELECT media_upload_owner FROM message_history WHERE id = :m",
            m=message_id,
        )
        return None if owner is None else str(owner)

    await wait_for(lambda: standin.multipart_bytes() > 2**20, within=60, what="the upload")
    owner = uploader()
    assert owner is not None and standin.received() == []
    killed = workers[int(owner.split(":")[1])]
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    assert standin.received() == [], "the upload ended before the kill"
    await wait_for(lambda: status_of(sync_engine, message_id) == "sent", within=120, what="sent")

    received = standin.received()
    assert Counter(m.chat_id for m in received) == Counter(range(first, first + count))
    uploads = Counter(f.file_name for m in received for f in m.files if f.uploaded)
    assert uploads == Counter({"one.mp4": 1, "two.mp4": 1, "three.mp4": 1})
    assert len({tuple(f.file_id for f in m.files) for m in received}) == 1
    assert uploader() is None
    figures_agree(sync_engine, message_id)
