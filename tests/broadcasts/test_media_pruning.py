"""Unused uploaded files are deleted once old enough; a file anything holds, or may be about
to hold, never is."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from broadcast_helpers import RunWorker, add_many_users, running_worker, scalar, send_broadcast
from broadcast_helpers import wait_for as wait_until
from media_samples import JPEG, MP4, uploaded
from sqlalchemy import Engine, text

from cli_process import RunCli
from coursedesk.broadcasts.media import CHUNK_BYTES
from coursedesk.broadcasts.media_pruning import keep_media, prune_media, unused_media
from coursedesk.db.engine import Database
from coursedesk.errors import InvalidInput

RETENTION_DAYS = 7


async def _file(
    client: httpx.AsyncClient, headers: dict[str, str], engine: Engine, *, age_days: float
) -> int:
    """A file uploaded `age_days` ago, of two slices."""
    media_id = int(
        (await uploaded(client, headers, MP4 + bytes(CHUNK_BYTES + 10), "a.mp4"))["media_id"]
    )
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE media_files SET created_at = now() - make_interval(secs => :age) "
                "WHERE id = :m"
            ),
            {"age": age_days * 86400, "m": media_id},
        )
    return media_id


def _kept(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT id FROM media_files ORDER BY id")))


async def test_only_old_files_nothing_holds_are_deleted_with_their_slices(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    database: Database,
) -> None:
    add_many_users(sync_engine, 1, 2)
    old_unused = await _file(client, operator_headers, sync_engine, age_days=7.01)
    older_unused = await _file(client, operator_headers, sync_engine, age_days=400)
    young_unused = await _file(client, operator_headers, sync_engine, age_days=6.9)
    old_sent = await _file(client, operator_headers, sync_engine, age_days=30)
    await send_broadcast(
        client, operator_headers, text="", audience={"type": "all"},
        media=[{"media_id": old_sent}],
    )  # fmt: skip

    async with database.primary.begin() as connection:
        would = await unused_media(connection, retention_days=RETENTION_DAYS)
    assert (would.files, would.bytes) == (2, 2 * (len(MP4) + CHUNK_BYTES + 10))
    assert _kept(sync_engine) == sorted([old_unused, older_unused, young_unused, old_sent])
    async with database.primary.begin() as connection:
        pruned = await prune_media(connection, retention_days=RETENTION_DAYS)

    assert (pruned.files, pruned.bytes) == (would.files, would.bytes)
    assert _kept(sync_engine) == sorted([young_unused, old_sent])
    assert scalar(
        sync_engine,
        "SELECT count(*) FROM media_chunks WHERE media_id = ANY(:ids)",
        ids=[old_unused, older_unused],
    ) == 0  # fmt: skip


async def test_files_a_draft_names_are_kept(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    database: Database,
) -> None:
    """A draft names its media in the composer's media_ids field; whatever else is in a
    draft, or in that field, holds nothing."""
    named, listed_too, unnamed = [
        await _file(client, operator_headers, sync_engine, age_days=10) for _ in range(3)
    ]
    with sync_engine.begin() as connection:
        owner = connection.execute(
            text(
                "INSERT INTO staff_users (username, password_hash, role) "
                "VALUES ('drafter', 'x', 'operator') RETURNING id"
            )
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO broadcast_drafts (owner_id, fields) VALUES "
                "(:o, CAST(:a AS jsonb)), (:o, CAST(:b AS jsonb)), (:o, CAST(:c AS jsonb))"
            ),
            {
                "o": owner,
                "a": f'{{"media_ids": "{named}, x, 99999999999999999999"}}',
                "b": f'{{"media_ids": " {listed_too} "}}',
                "c": f'{{"text": "no media", "media": [{{"media_id": {unnamed}}}]}}',
            },
        )

    async with database.primary.begin() as connection:
        pruned = await prune_media(connection, retention_days=RETENTION_DAYS)

    assert pruned.files == 1
    assert _kept(sync_engine) == sorted([named, listed_too])


async def test_a_file_being_taken_for_a_broadcast_is_skipped_then_kept(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    database: Database,
) -> None:
    media_id = await _file(client, operator_headers, sync_engine, age_days=10)

    async with database.transaction() as session:
        await keep_media(session, [media_id])
        async with database.primary.begin() as connection:
            pruned = await prune_media(connection, retention_days=RETENTION_DAYS)
        assert pruned.files == 0

    assert _kept(sync_engine) == [media_id]


async def test_a_broadcast_made_with_a_file_a_prune_is_deleting_is_refused_cleanly(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    database: Database,
) -> None:
    """The prune's deletion holds the row; the broadcast waits for it, finds the file
    gone, and is refused with a 400 naming it (no foreign key error, nothing kept)."""
    add_many_users(sync_engine, 1, 2)
    media_id = await _file(client, operator_headers, sync_engine, age_days=10)

    async with database.primary.begin() as connection:
        pruned = await prune_media(connection, retention_days=RETENTION_DAYS)
        assert pruned.files == 1
        sending = asyncio.create_task(
            client.post(
                "/api/messages/send",
                json={"text": "", "audience": {"type": "all"}, "media": [{"media_id": media_id}]},
                headers=operator_headers,
            )
        )
        await wait_until(
            lambda: (
                scalar(
                    sync_engine,
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                == 1
            ),
            within=10,
            what="the broadcast waiting for the prune",
        )

    response = await sending
    assert response.status_code == 400, response.text
    assert f"media: no media with id {media_id}" in response.text
    assert scalar(sync_engine, "SELECT count(*) FROM message_history") == 0


async def test_keep_media_names_a_file_that_is_gone(database: Database) -> None:
    async with database.transaction() as session:
        with pytest.raises(InvalidInput, match="media: no media with id 424242"):
            await keep_media(session, [424242])


async def test_a_worker_prunes_when_it_starts(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    start_worker: RunWorker,
) -> None:
    old = await _file(client, operator_headers, sync_engine, age_days=8)
    young = await _file(client, operator_headers, sync_engine, age_days=1)

    async with running_worker(start_worker):
        await wait_until(lambda: old not in _kept(sync_engine), within=20, what="the prune")

    assert _kept(sync_engine) == [young]


async def test_the_prune_command_says_what_would_go_and_deletes_only_with_execute(
    client: httpx.AsyncClient,
    operator_headers: dict[str, str],
    sync_engine: Engine,
    run_cli: RunCli,
) -> None:
    old = await _file(client, operator_headers, sync_engine, age_days=8)
    photo = int((await uploaded(client, operator_headers, JPEG, "a.jpg"))["media_id"])

    dry = run_cli("media", "prune")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 1 unused files (1.0 MB) uploaded over 7 days ago")
    assert _kept(sync_engine) == [old, photo]

    longer = run_cli("media", "prune", "--days", "9", "--execute")
    assert longer.stdout.strip() == "deleted 0 unused files (0.0 MB) uploaded over 9 days ago"
    done = run_cli("media", "prune", "--execute")
    assert done.stdout.strip() == "deleted 1 unused files (1.0 MB) uploaded over 7 days ago"
    assert _kept(sync_engine) == [photo]
    refused = run_cli("media", "prune", "--days", "0")
    assert refused.returncode == 2 and "--days" in refused.stderr
